package trail

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// recordLines reads records.log as lines without their newlines.
func recordLines(t *testing.T, dir string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, recordsFile))
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Split(bytes.TrimSuffix(b, []byte{'\n'}), []byte{'\n'})
}

func writeLines(t *testing.T, dir string, lines [][]byte) {
	t.Helper()
	b := append(bytes.Join(lines, []byte{'\n'}), '\n')
	if err := os.WriteFile(filepath.Join(dir, recordsFile), b, 0o640); err != nil {
		t.Fatal(err)
	}
}

// reframe edits a frame's payload the way a careful tamperer would: the
// length and checksum are recomputed, so only the Merkle tree can tell.
func reframe(t *testing.T, line []byte, edit func([]byte) []byte) []byte {
	t.Helper()
	payload, err := parseFrame(line)
	if err != nil {
		t.Fatal(err)
	}
	fr := appendFrame(nil, edit(bytes.Clone(payload)))
	return fr[:len(fr)-1]
}

// tamperedTrail writes 20 records with checkpoints at 10 and 20 (on Close),
// applies tamper to the record lines, and reopens the trail.
func tamperedTrail(t *testing.T, tamper func([][]byte) [][]byte) (*FileLog, string) {
	t.Helper()
	dir := t.TempDir()
	signer, vkey := newKeys(t)
	l, err := OpenFile(dir, FileOptions{Signer: signer})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 0, 10)
	if _, err := l.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 10, 10)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if tamper != nil {
		writeLines(t, dir, tamper(recordLines(t, dir)))
	}
	return openLog(t, dir, FileOptions{Signer: signer}), vkey
}

func TestVerifyFindsTampering(t *testing.T) {
	tests := []struct {
		name    string
		tamper  func([][]byte) [][]byte
		problem Problem
		seq     uint64
	}{
		{name: "untouched"},
		{
			name: "byte flipped",
			tamper: func(ls [][]byte) [][]byte {
				i := bytes.Index(ls[4], []byte("allow"))
				ls[4][i] = 'A'
				return ls
			},
			problem: Changed, seq: 4,
		},
		{
			name: "byte flipped, checksum fixed",
			tamper: func(ls [][]byte) [][]byte {
				ls[13] = reframe(t, ls[13], func(p []byte) []byte {
					return bytes.Replace(p, []byte(`"allow"`), []byte(`"deny"`), 1)
				})
				return ls
			},
			problem: Changed, seq: 13,
		},
		{
			name:    "record deleted",
			tamper:  func(ls [][]byte) [][]byte { return append(ls[:4:4], ls[5:]...) },
			problem: Dropped, seq: 4,
		},
		{
			name:    "last record deleted",
			tamper:  func(ls [][]byte) [][]byte { return ls[:19] },
			problem: Dropped, seq: 19,
		},
		{
			name: "records swapped",
			tamper: func(ls [][]byte) [][]byte {
				ls[3], ls[6] = ls[6], ls[3]
				return ls
			},
			problem: Reordered, seq: 3,
		},
		{
			name: "neighbours swapped",
			tamper: func(ls [][]byte) [][]byte {
				ls[11], ls[12] = ls[12], ls[11]
				return ls
			},
			problem: Reordered, seq: 11,
		},
		{
			name: "record inserted",
			tamper: func(ls [][]byte) [][]byte {
				forged := reframe(t, ls[4], func(p []byte) []byte {
					return bytes.Replace(p, []byte(`"d-0004"`), []byte(`"d-forged"`), 1)
				})
				return append(ls[:5:5], append([][]byte{forged}, ls[5:]...)...)
			},
			problem: Inserted, seq: 5,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, vkey := tamperedTrail(t, tt.tamper)
			rep := mustVerify(t, l, vkey)
			if tt.problem == "" {
				if !rep.OK || rep.Anchored != 20 || rep.Checkpoints != 2 {
					t.Fatalf("untouched trail: %+v", rep)
				}
				return
			}
			if rep.OK || rep.Problem != tt.problem || rep.Seq != tt.seq {
				t.Fatalf("got %v (%+v), want %s at %d", rep, rep, tt.problem, tt.seq)
			}
			t.Logf("%v", rep)
			if tt.problem != Changed {
				// Structural damage is caught on open: no appends on top of it.
				if _, err := l.Append(context.Background(), mkRec(99)); !errors.Is(err, ErrDamaged) {
					t.Fatalf("append to damaged log: %v", err)
				}
			}
		})
	}
}

func TestVerifyRange(t *testing.T) {
	l, vkey := tamperedTrail(t, func(ls [][]byte) [][]byte {
		ls[13] = reframe(t, ls[13], func(p []byte) []byte { return bytes.Replace(p, []byte("allow"), []byte("deny!"), 1) })
		return ls
	})
	ctx := context.Background()
	rep, err := l.Verify(ctx, vkey, 0, 10)
	if err != nil || !rep.OK || rep.To != 10 {
		t.Fatalf("[0,10): %+v %v", rep, err)
	}
	rep, err = l.Verify(ctx, vkey, 10, 20)
	if err != nil || rep.OK || rep.Seq != 13 {
		t.Fatalf("[10,20): %+v %v", rep, err)
	}
}

// When the side file is tampered along with the records, the checkpoints
// still catch it, without pinpointing the record.
func TestVerifySideFileRecomputed(t *testing.T) {
	l, vkey := tamperedTrail(t, nil)
	dir := l.dir
	signer := l.opts.Signer
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	lines := recordLines(t, dir)
	lines[13] = reframe(t, lines[13], func(p []byte) []byte { return bytes.Replace(p, []byte("allow"), []byte("deny!"), 1) })
	writeLines(t, dir, lines)
	var tree memTree
	for _, ln := range lines {
		p, _ := parseFrame(ln)
		if err := tree.add(tlog.RecordHash(p)); err != nil {
			t.Fatal(err)
		}
	}
	var side []byte
	for _, h := range tree.hashes {
		side = append(side, h[:]...)
	}
	if err := os.WriteFile(filepath.Join(dir, hashesFile), side, 0o640); err != nil {
		t.Fatal(err)
	}
	l2 := openLog(t, dir, FileOptions{Signer: signer})
	rep := mustVerify(t, l2, vkey)
	if rep.OK || rep.Problem != Changed || rep.Seq != 10 {
		t.Fatalf("got %+v", rep)
	}
}

func TestVerifyWrongKeyOrOrigin(t *testing.T) {
	l, vkey := tamperedTrail(t, nil)
	_, other := newKeys(t)
	rep := mustVerify(t, l, other)
	if rep.OK || rep.Problem != BadCheckpoint {
		t.Fatalf("got %+v", rep)
	}
	l.opts.Origin = "another/trail"
	if rep := mustVerify(t, l, vkey); rep.Problem != BadCheckpoint {
		t.Fatalf("other origin: %+v", rep)
	}
	if _, err := l.Verify(context.Background(), "not a key", 0, 1); err == nil {
		t.Fatal("bad key accepted")
	}
}

func TestProve(t *testing.T) {
	signer, vkey := newKeys(t)
	l := openLog(t, t.TempDir(), FileOptions{Signer: signer})
	appendN(t, l, 0, 5)
	early, err := l.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 5, 18)
	cp, err := l.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	for seq := range uint64(23) {
		rec, err := l.Get(seq)
		if err != nil {
			t.Fatal(err)
		}
		p, err := l.Prove(seq, cp)
		if err != nil {
			t.Fatal(err)
		}
		// A third party gets the proof as JSON.
		b, _ := json.Marshal(p)
		var p2 Proof
		if err := json.Unmarshal(b, &p2); err != nil {
			t.Fatal(err)
		}
		if err := CheckProof(vkey, cp, rec, p2); err != nil {
			t.Fatalf("seq %d: %v", seq, err)
		}
	}
	rec, _ := l.Get(3)
	p, err := l.Prove(3, early)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckProof(vkey, early, rec, p); err != nil {
		t.Fatal(err)
	}
	if err := CheckProof(vkey, cp, rec, p); !errors.Is(err, ErrProof) {
		t.Fatalf("proof against the wrong checkpoint: %v", err)
	}
	if _, err := l.Prove(7, early); !errors.Is(err, ErrNotFound) {
		t.Fatalf("prove beyond checkpoint: %v", err)
	}

	changed := rec
	changed.Body = json.RawMessage(`{"i":3,"effect":"deny"}`)
	if err := CheckProof(vkey, early, changed, p); !errors.Is(err, ErrProof) {
		t.Fatalf("changed record: %v", err)
	}
	other, _ := l.Get(4)
	p4, _ := l.Prove(4, early)
	p4.RecordHash = p.RecordHash
	if err := CheckProof(vkey, early, other, p4); !errors.Is(err, ErrProof) {
		t.Fatalf("swapped hash: %v", err)
	}
	_, otherKey := newKeys(t)
	if err := CheckProof(otherKey, early, rec, p); err == nil {
		t.Fatal("proof checked under another key")
	}
	forged := bytes.Replace(early, []byte("\n5\n"), []byte("\n6\n"), 1)
	if err := CheckProof(vkey, forged, rec, p); err == nil {
		t.Fatal("forged checkpoint accepted")
	}
}

func TestVerifyStoredHashTampered(t *testing.T) {
	l, vkey := tamperedTrail(t, nil)
	dir, signer := l.dir, l.opts.Signer
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(dir, hashesFile), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0xff}, tlog.StoredHashIndex(0, 5)*tlog.HashSize); err != nil {
		t.Fatal(err)
	}
	f.Close()
	l2 := openLog(t, dir, FileOptions{Signer: signer})
	rep := mustVerify(t, l2, vkey)
	if rep.OK || rep.Problem != StoredHashes || rep.Seq != 5 {
		t.Fatalf("got %+v", rep)
	}
	// Deleting the side file rebuilds it from the records.
	if err := l2.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, hashesFile)); err != nil {
		t.Fatal(err)
	}
	l3 := openLog(t, dir, FileOptions{Signer: signer})
	if rep := mustVerify(t, l3, vkey); !rep.OK {
		t.Fatalf("after rebuild: %+v", rep)
	}
}

// A cut-off last record that a checkpoint covers is evidence, not a torn
// write: it is reported, and the file is left as found.
func TestCoveredTailIsNotTruncated(t *testing.T) {
	l, vkey := tamperedTrail(t, nil)
	dir, signer := l.dir, l.opts.Signer
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, recordsFile)
	st, _ := os.Stat(path)
	if err := os.Truncate(path, st.Size()-1); err != nil {
		t.Fatal(err)
	}
	l2 := openLog(t, dir, FileOptions{Signer: signer})
	if !errors.Is(l2.Damaged(), ErrDamaged) || l2.Recovery().TruncatedBytes != 0 {
		t.Fatalf("damaged %v recovery %+v", l2.Damaged(), l2.Recovery())
	}
	if st2, _ := os.Stat(path); st2.Size() != st.Size()-1 {
		t.Fatal("records file changed on open")
	}
	if rep := mustVerify(t, l2, vkey); rep.Problem != Dropped || rep.Seq != 19 {
		t.Fatalf("got %+v", rep)
	}
}
