package trail

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// zRec is a record whose body repeats what its neighbours hold, as
// decisions do.
func zRec(i int) Record {
	return Record{
		Kind: "decision", ID: fmt.Sprintf("d-%05d", i), Time: epoch.Add(time.Duration(i) * time.Millisecond),
		Body: json.RawMessage(fmt.Sprintf(`{"i":%d,"effect":"allow","principal":{"type":"Customer","id":"alice-%d"},"policies":["consent-required","delegation-scope","kyc-verified"],"note":"<&>\n"}`, i, i%7)),
	}
}

// codecs are the compression modes with a dictionary: every compression
// test runs for each.
var codecs = []string{CompressionS2, CompressionZstd}

// forCodecs runs f as a subtest per codec.
func forCodecs(t *testing.T, f func(t *testing.T, codec string)) {
	for _, c := range codecs {
		t.Run(c, func(t *testing.T) { f(t, c) })
	}
}

// zTrail writes n records into a trail compressed with codec whose
// dictionary is made after dictSize bytes, closes it (a final checkpoint)
// and returns its directory, verifier key and the records as written.
func zTrail(t *testing.T, codec string, n, dictSize int) (string, string, []Record) {
	t.Helper()
	dir := t.TempDir()
	signer, vkey := newKeys(t)
	l := openLog(t, dir, FileOptions{Signer: signer, Compression: codec, DictionarySize: dictSize})
	var recs []Record
	for i := range n {
		r := zRec(i)
		if _, err := l.Append(context.Background(), r); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
		if i == n/2 {
			if _, err := l.Checkpoint(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, vkey, recs
}

// readBack scans the whole trail, dictionaries apart.
func readBack(t *testing.T, l *FileLog) []Record {
	t.Helper()
	var got []Record
	if err := l.Scan(0, l.Size(), func(r Record) error {
		if r.Kind != KindDictionary {
			got = append(got, r)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return got
}

func sameRecords(t *testing.T, got, want []Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("read %d records, wrote %d", len(got), len(want))
	}
	for i := range want {
		wb, err := json.Marshal(want[i].Body) // canonical: as the trail stores it
		if err != nil {
			t.Fatal(err)
		}
		g := got[i]
		if g.Kind != want[i].Kind || g.ID != want[i].ID || !g.Time.Equal(want[i].Time) || !bytes.Equal(g.Body, wb) {
			t.Fatalf("record %d reads back as %s %s %s, wrote %s %s %s", i, g.Kind, g.ID, g.Body, want[i].Kind, want[i].ID, wb)
		}
	}
}

// TestCompressionMixedRecords: records written before the dictionary
// stay as they are, later ones are compressed; both read back, verify,
// prove and survive reopening with compression on or off.
func TestCompressionMixedRecords(t *testing.T) { forCodecs(t, testCompressionMixedRecords) }

func testCompressionMixedRecords(t *testing.T, codec string) {
	dir, vkey, recs := zTrail(t, codec, 200, 2048)
	lines := recordLines(t, dir)
	var plain, z, dicts int
	for _, line := range lines {
		p, err := parseFrame(line)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case p[0] == zMark:
			z++
		case isDictionary(p):
			dicts++
		default:
			plain++
		}
	}
	if dicts != 1 || plain == 0 || z < 150 {
		t.Fatalf("%d plain, %d compressed, %d dictionary records; want some plain, one dictionary, the rest compressed", plain, z, dicts)
	}

	for _, mode := range []string{CompressionOff, codec} {
		t.Run(mode, func(t *testing.T) {
			l := openLog(t, dir, FileOptions{Compression: mode})
			if l.Damaged() != nil {
				t.Fatal(l.Damaged())
			}
			sameRecords(t, readBack(t, l), recs)
			if rep := mustVerify(t, l, vkey); rep.Checkpoints == 0 {
				t.Fatalf("no checkpoints: %v", rep)
			}
			// Inclusion proof of a compressed record, from its decoded form.
			last := l.Size() - 1
			rec, err := l.Get(last)
			if err != nil {
				t.Fatal(err)
			}
			cps := l.Checkpoints()
			p, err := l.Prove(last, cps[len(cps)-1])
			if err != nil {
				t.Fatal(err)
			}
			if err := CheckProof(vkey, cps[len(cps)-1], rec, p); err != nil {
				t.Fatal(err)
			}
		})
	}

	// Appending with compression off after compressed records stores them
	// as they are; with the codec again the trail's dictionary is used.
	for _, mode := range []string{CompressionOff, codec} {
		l := openLog(t, dir, FileOptions{Compression: mode})
		r := zRec(len(recs))
		seqs, err := l.Append(context.Background(), r)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		lines := recordLines(t, dir)
		p, _ := parseFrame(lines[seqs[0]])
		if compressed := p[0] == zMark; compressed != (mode == codec) {
			t.Fatalf("%s: record %d stored compressed=%v", mode, seqs[0], compressed)
		}
	}
	l := openLog(t, dir, FileOptions{})
	sameRecords(t, readBack(t, l), recs)
	if got := len(recordLines(t, dir)); got != 203 {
		t.Fatalf("%d frames, want 203 (one dictionary)", got)
	}
}

// TestCompressionTamperDetected: a compressed body changed under a
// recomputed frame checksum is found by Verify, whether it still
// decompresses (to other bytes) or not.
func TestCompressionTamperDetected(t *testing.T) { forCodecs(t, testCompressionTamperDetected) }

func testCompressionTamperDetected(t *testing.T, codec string) {
	for _, tc := range []struct {
		name string
		edit func([]byte) []byte
	}{
		{"flipped byte", func(p []byte) []byte { p[len(p)-5] ^= 0x40; return p }},
		{"truncated", func(p []byte) []byte { return p[:len(p)-3] }},
		{"other dictionary", func(p []byte) []byte {
			seq, _, z, err := parseZHeader(p)
			if err != nil {
				panic(err)
			}
			return appendZPayload(nil, seq, 3, z)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, vkey, _ := zTrail(t, codec, 120, 2048)
			lines := recordLines(t, dir)
			const target = 100
			if p, _ := parseFrame(lines[target]); p[0] != zMark {
				t.Fatalf("record %d is not compressed", target)
			}
			lines[target] = reframe(t, lines[target], tc.edit)
			writeLines(t, dir, lines)
			l := openLog(t, dir, FileOptions{Compression: codec})
			rep, err := l.Verify(context.Background(), vkey, 0, l.Size())
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK || rep.Seq != target {
				t.Fatalf("verify: %v, want a problem at %d", rep, target)
			}
		})
	}
}

// TestCompressionDictionaryDamage: a dictionary record that was changed or
// removed is named by Verify, and reading a record compressed with a
// dictionary the trail lacks fails with ErrDictionary, never with other
// bytes.
func TestCompressionDictionaryDamage(t *testing.T) { forCodecs(t, testCompressionDictionaryDamage) }

func testCompressionDictionaryDamage(t *testing.T, codec string) {
	dictAt := func(t *testing.T, lines [][]byte) int {
		for i, line := range lines {
			if p, _ := parseFrame(line); isDictionary(p) {
				return i
			}
		}
		t.Fatal("no dictionary record")
		return 0
	}
	t.Run("changed", func(t *testing.T) {
		dir, vkey, _ := zTrail(t, codec, 120, 2048)
		lines := recordLines(t, dir)
		d := dictAt(t, lines)
		lines[d] = reframe(t, lines[d], func(p []byte) []byte {
			// Another well-formed dictionary: its id is its content's hash.
			var r Record
			if err := json.Unmarshal(p, &r); err != nil {
				t.Fatal(err)
			}
			other, err := dictionaryRecord(dictCodeOf(codec), bytes.Repeat([]byte("other "), 400), r)
			if err != nil {
				t.Fatal(err)
			}
			other.Seq = r.Seq
			b, err := Canonical(other)
			if err != nil {
				t.Fatal(err)
			}
			return b
		})
		writeLines(t, dir, lines)
		l := openLog(t, dir, FileOptions{})
		rep, err := l.Verify(context.Background(), vkey, 0, l.Size())
		if err != nil {
			t.Fatal(err)
		}
		if rep.OK || rep.Seq != uint64(d) {
			t.Fatalf("verify: %v, want a problem at the dictionary, %d", rep, d)
		}
	})
	t.Run("corrupt", func(t *testing.T) {
		dir, vkey, _ := zTrail(t, codec, 120, 2048)
		lines := recordLines(t, dir)
		d := dictAt(t, lines)
		lines[d] = reframe(t, lines[d], func(p []byte) []byte {
			return bytes.Replace(p, []byte(`"content":"`), []byte(`"content":"AAAA`), 1)
		})
		writeLines(t, dir, lines)
		l := openLog(t, dir, FileOptions{})
		rep, err := l.Verify(context.Background(), vkey, 0, l.Size())
		if err != nil {
			t.Fatal(err)
		}
		if rep.OK || rep.Seq != uint64(d) {
			t.Fatalf("verify: %v, want a problem at the dictionary, %d", rep, d)
		}
		err = l.Scan(uint64(d+1), l.Size(), func(Record) error { return nil })
		if !errors.Is(err, ErrDictionary) {
			t.Fatalf("scan past a corrupt dictionary: %v, want ErrDictionary", err)
		}
	})
	t.Run("missing", func(t *testing.T) {
		dir, vkey, _ := zTrail(t, codec, 120, 2048)
		lines := recordLines(t, dir)
		d := dictAt(t, lines)
		lines = append(lines[:d:d], lines[d+1:]...)
		writeLines(t, dir, lines)
		l := openLog(t, dir, FileOptions{})
		rep, err := l.Verify(context.Background(), vkey, 0, l.Size())
		if err != nil {
			t.Fatal(err)
		}
		if rep.OK || rep.Seq != uint64(d) {
			t.Fatalf("verify: %v, want a problem at %d", rep, d)
		}
	})
}

// TestCompressionPruneKeepsDictionary: retention turns compressed records
// into tombstones carrying the leaf of their canonical bytes; the
// dictionary stays, and a retention rule for it is refused.
func TestCompressionPruneKeepsDictionary(t *testing.T) {
	forCodecs(t, testCompressionPruneKeepsDictionary)
}

func testCompressionPruneKeepsDictionary(t *testing.T, codec string) {
	dir, vkey, recs := zTrail(t, codec, 120, 2048)
	l := openLog(t, dir, FileOptions{Compression: codec})
	cut := recs[110].Time
	n, err := l.Prune(context.Background(), "decision", cut)
	if err != nil {
		t.Fatal(err)
	}
	if n != 110 {
		t.Fatalf("pruned %d, want 110", n)
	}
	mustVerify(t, l, vkey)
	sameRecords(t, readBack(t, l)[110:], recs[110:])
	if err := ValidateRetention([]RetentionRule{{Kind: KindDictionary, Keep: time.Hour}}); !errors.Is(err, ErrBadOption) {
		t.Fatalf("retention of dictionaries: %v", err)
	}
}

func TestCompressionOptionValidate(t *testing.T) {
	for _, o := range []FileOptions{{Compression: "gzip"}, {Compression: "s2-dict"}, {DictionarySize: -1}} {
		if err := o.Validate(); !errors.Is(err, ErrBadOption) {
			t.Errorf("%+v: %v", o, err)
		}
	}
	if _, err := OpenFile(filepath.Join(t.TempDir(), "x"), FileOptions{Compression: "lz4"}); !errors.Is(err, ErrBadOption) {
		t.Fatal(err)
	}
}

// FuzzExpandFrame feeds arbitrary payloads to the decoder of stored
// records: it must return canonical bytes or an error, never panic, and a
// payload it accepts decodes as a record with the sequence number it
// claims.
func FuzzExpandFrame(f *testing.F) {
	// Dictionary 0 is zstd, 1 is S2; records 2 and 3 are compressed with them.
	sample := bytes.Repeat([]byte(`{"kind":"decision","id":"d-1","time":"2026-11-28T12:00:00Z","body":{"i":1}}`), 20)
	var dicts dictSet
	tail, _ := appendCanonicalTail(nil, CompactRecord("decision", "d-2", epoch, []byte(`{"i":2}`)))
	for seq, code := range []string{codeZstd, codeS2} {
		content := dictionaryContent(code, sample, len(sample))
		dict, err := dictionaryRecord(code, content, Record{Time: epoch})
		if err != nil {
			f.Fatal(err)
		}
		dict.Seq = uint64(seq)
		canon, err := Canonical(dict)
		if err != nil {
			f.Fatal(err)
		}
		if _, _, ok := dicts.see(canon); !ok {
			f.Fatal("dictionary not registered")
		}
		f.Add(canon)
		w, err := newDictCodec(code, content, true)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(appendZPayload(nil, uint64(seq+2), uint64(seq), w.appendCompressed(nil, tail)))
	}
	f.Add(appendZPayload(nil, 1, 0, []byte{stuffEsc, 1, stuffEsc}))
	f.Add([]byte(`z1,0,`))
	f.Add([]byte(`z01,0,x`))
	f.Add([]byte("z3,1,\x80\x80\x80\x80\x01"))
	f.Fuzz(func(t *testing.T, payload []byte) {
		frame := appendFrame(nil, payload)
		p, err := parseFrame(frame[:len(frame)-1])
		if err != nil {
			return // a payload with a newline is no frame
		}
		out, err := expand(p, &dicts)
		if err != nil {
			return
		}
		if len(p) > 0 && p[0] == zMark {
			seq, ok := payloadSeq(p)
			if want := fmt.Sprintf(`{"seq":%d,`, seq); !ok || !bytes.HasPrefix(out, []byte(want)) {
				t.Fatalf("payload %q expands to %q", p, out)
			}
		}
		_, _ = decodeRecord(out)
	})
}

// TestCompressionConcurrent: appenders and readers run while the
// dictionary is made; every record reads back and the trail verifies.
func TestCompressionConcurrent(t *testing.T) { forCodecs(t, testCompressionConcurrent) }

func testCompressionConcurrent(t *testing.T, codec string) {
	signer, vkey := newKeys(t)
	l := openLog(t, t.TempDir(), FileOptions{Signer: signer, Compression: codec, DictionarySize: 4096})
	const workers, each = 8, 60
	errs := make(chan error, workers+1)
	done := make(chan struct{})
	go func() { // a reader throughout
		defer func() { errs <- nil }()
		for {
			select {
			case <-done:
				return
			default:
			}
			if err := l.Scan(0, l.Size(), func(Record) error { return nil }); err != nil {
				errs <- err
				return
			}
		}
	}()
	ids := make(chan string, workers*each)
	for w := range workers {
		go func() {
			for i := range each {
				r := zRec(w*each + i)
				if _, err := l.Append(context.Background(), r); err != nil {
					errs <- err
					return
				}
				ids <- r.ID
			}
			errs <- nil
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	close(ids)
	got := map[string]bool{}
	for _, r := range readBack(t, l) {
		got[r.ID] = true
	}
	for id := range ids {
		if !got[id] {
			t.Fatalf("record %s missing", id)
		}
	}
	if _, err := l.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	mustVerify(t, l, vkey)
}

// TestCompressionCodecSwitch: a trail reopened with another codec gathers
// a dictionary of that codec and compresses the records after it with it;
// the records of both codecs read back and verify, and reopened with the
// first codec again it gathers one more.
func TestCompressionCodecSwitch(t *testing.T) {
	dir := t.TempDir()
	signer, vkey := newKeys(t)
	var recs []Record
	write := func(codec string, n int) {
		t.Helper()
		l := openLog(t, dir, FileOptions{Signer: signer, Compression: codec, DictionarySize: 2048})
		for range n {
			r := zRec(len(recs))
			if _, err := l.Append(context.Background(), r); err != nil {
				t.Fatal(err)
			}
			recs = append(recs, r)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	write(CompressionZstd, 60)
	write(CompressionS2, 60)
	write(CompressionZstd, 60)

	var codes []string
	var dicts dictSet
	for _, line := range recordLines(t, dir) {
		p, err := parseFrame(line)
		if err != nil {
			t.Fatal(err)
		}
		if body, _, ok := dicts.see(p); ok {
			codes = append(codes, body.Codec)
		}
	}
	if want := []string{codeZstd, codeS2, codeZstd}; !slices.Equal(codes, want) {
		t.Fatalf("dictionaries %v, want %v", codes, want)
	}
	l := openLog(t, dir, FileOptions{})
	sameRecords(t, readBack(t, l), recs)
	mustVerify(t, l, vkey)
}

// TestDictionaryAPI: a dictionary made for another store compresses and
// expands bodies with either codec, reopens from its record, and a
// tampered or foreign record is refused.
func TestDictionaryAPI(t *testing.T) {
	var sample []byte
	for i := range 40 {
		tail, _ := appendCanonicalTail(nil, zRec(i))
		sample = append(sample, tail...)
	}
	body := []byte(zRec(99).Body)
	forCodecs(t, func(t *testing.T, codec string) {
		d, rec, err := NewDictionary(codec, sample, len(sample), epoch)
		if err != nil {
			t.Fatal(err)
		}
		z := d.Compress(body)
		if len(z) >= len(body)/2 {
			t.Fatalf("%d bytes compressed to %d", len(body), len(z))
		}
		canon, err := Canonical(rec)
		if err != nil {
			t.Fatal(err)
		}
		stored, err := decodeRecord(canon)
		if err != nil {
			t.Fatal(err)
		}
		r, err := OpenDictionary(stored, false)
		if err != nil {
			t.Fatal(err)
		}
		got, err := r.Expand([]byte("prefix:"), z)
		if err != nil || string(got) != "prefix:"+string(body) {
			t.Fatalf("expand: %q %v", got, err)
		}
		if _, err := r.Expand(nil, z[:len(z)/2]); err == nil {
			t.Fatal("a truncated body expanded")
		}
		bad := stored
		bad.ID = "sha256:00"
		if _, err := OpenDictionary(bad, false); !errors.Is(err, ErrDictionary) {
			t.Fatalf("tampered id: %v", err)
		}
		bad = stored
		bad.Kind = "decision"
		if _, err := OpenDictionary(bad, false); !errors.Is(err, ErrDictionary) {
			t.Fatalf("not a dictionary: %v", err)
		}
	})
	if _, _, err := NewDictionary(CompressionOff, sample, len(sample), epoch); !errors.Is(err, ErrBadOption) {
		t.Fatalf("off: %v", err)
	}
}

// TestCompressionDictionaryRotates: when the records change shape and the
// dictionary compresses them markedly worse than it did its first
// records, the trail gathers a new dictionary from the records being
// written and compresses the later ones with it; every record reads back
// and the trail verifies, also after reopening. Records of an unchanged
// shape never rotate it.
func TestCompressionDictionaryRotates(t *testing.T) {
	other := func(i int) Record { // another shape: other names, other values
		return Record{
			Kind: "decision", ID: fmt.Sprintf("e-%05d", i), Time: epoch.Add(time.Duration(i) * time.Millisecond),
			Body: json.RawMessage(fmt.Sprintf(`{"subjectAttributes":{"assuranceLevel":"substantial","jurisdiction":"EU-%d"},"obligationsFulfilled":["retention-7y","privacy-notice-v%d"],"guardianOf":["minor-%d"],"seq":%d}`, i%5, i%3, i%11, i)),
		}
	}
	forCodecs(t, func(t *testing.T, codec string) {
		dir := t.TempDir()
		signer, vkey := newKeys(t)
		opts := FileOptions{Signer: signer, Compression: codec, DictionarySize: 4096, rotateWindow: 32}
		l := openLog(t, dir, opts)
		var recs []Record
		add := func(r Record) {
			t.Helper()
			if _, err := l.Append(context.Background(), r); err != nil {
				t.Fatal(err)
			}
			recs = append(recs, r)
		}
		for i := range 600 {
			add(zRec(i))
		}
		if n := countDictionaries(t, dir); n != 1 {
			t.Fatalf("unchanged records: %d dictionaries, want 1", n)
		}
		for i := range 1200 {
			add(other(i))
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if n := countDictionaries(t, dir); n != 2 {
			t.Fatalf("records of another shape: %d dictionaries, want 2", n)
		}
		// The last records, compressed with the new dictionary, are
		// smaller than those of their shape compressed with the first.
		lines := recordLines(t, dir)
		var dicts dictSet
		sizeBy := map[uint64][]int{}
		for _, line := range lines {
			p, _ := parseFrame(line)
			if _, _, ok := dicts.see(p); ok {
				continue
			}
			if p[0] == zMark && bytes.Contains(mustExpand(t, p, &dicts), []byte(`"e-`)) {
				_, d, z, _ := parseZHeader(p)
				sizeBy[d] = append(sizeBy[d], len(z))
			}
		}
		if len(sizeBy) != 2 {
			t.Fatalf("records of the second shape under %d dictionaries, want 2", len(sizeBy))
		}
		var avg []float64
		for _, d := range slices.Sorted(maps.Keys(sizeBy)) {
			sum := 0
			for _, n := range sizeBy[d] {
				sum += n
			}
			avg = append(avg, float64(sum)/float64(len(sizeBy[d])))
		}
		if avg[1] >= avg[0] {
			t.Fatalf("second shape: %.0f bytes on average with the first dictionary, %.0f with its own: want smaller", avg[0], avg[1])
		}
		l = openLog(t, dir, FileOptions{Compression: codec})
		sameRecords(t, readBack(t, l), recs)
		mustVerify(t, l, vkey)
	})
}

func countDictionaries(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	for _, line := range recordLines(t, dir) {
		if p, _ := parseFrame(line); isDictionary(p) {
			n++
		}
	}
	return n
}

func mustExpand(t *testing.T, p []byte, dicts *dictSet) []byte {
	t.Helper()
	out, err := expand(p, dicts)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
