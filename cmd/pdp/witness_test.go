package main

import (
	"context"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	pdpserver "github.com/ciampdp/pdp/pdp/server"
	"github.com/ciampdp/pdp/pdp/trail"
)

// appendCheckpoint is 'pdp log checkpoint ARGS… >> file'.
func appendCheckpoint(t *testing.T, file string, args ...string) trail.TreeHead {
	t.Helper()
	code, cp, errOut := logRun(append([]string{"checkpoint"}, args...)...)
	if code != exitOK {
		t.Fatalf("log checkpoint: %d %s", code, errOut)
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(cp); err != nil {
		t.Fatal(err)
	}
	h, err := trail.UnverifiedHead([]byte(cp))
	if err != nil {
		t.Fatalf("checkpoint %q: %v", cp, err)
	}
	return h
}

// askN answers decisions from, …, from+n-1.
func askN(t *testing.T, url string, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if a, err := ask(url, i); err != nil || !a.Decision {
			t.Fatalf("ask %d: %v %+v", i, err, a)
		}
	}
}

// foreignWitness writes a witness file with a checkpoint of the trail's
// origin signed by another key.
func foreignWitness(t *testing.T) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "foreign.witness")
	if err := os.WriteFile(file, foreignCheckpoint(t), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// foreignCheckpoint is a checkpoint of the trail's origin (size 1) signed
// by a key of its own.
func foreignCheckpoint(t *testing.T) []byte {
	t.Helper()
	skey, _, err := note.GenerateKey(rand.Reader, "pdp/trail")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := trail.TreeHead{Origin: "pdp/trail", Size: 1, Root: tlog.RecordHash([]byte("x"))}.Sign(signer)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

// checkBadWitnesses: a checkpoint signed by another key fails (exit 1,
// naming it), and so does a garbled chunk (naming its line); a missing
// witness file is a usage error, and so is --witness with another
// subcommand. trail is the flags naming it.
func checkBadWitnesses(t *testing.T, good string, trailArgs ...string) {
	t.Helper()
	verify := func(args ...string) (int, string) {
		code, out, errOut := logRun(append(append([]string{"verify"}, trailArgs...), args...)...)
		return code, out + errOut
	}
	foreign := foreignWitness(t)
	if code, out := verify("--witness", foreign); code != exitFailure ||
		!strings.Contains(out, "FAILED: witnessed checkpoint of 1 records (root ") || !strings.Contains(out, foreign+": checkpoint 1, line 1") ||
		!strings.Contains(out, "signature does not check with the verifier key") {
		t.Fatalf("verify --witness with another key's checkpoint: %d %s", code, out)
	}
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	garbled := filepath.Join(t.TempDir(), "garbled.witness")
	// The second checkpoint's empty line lost: its signature runs into its text.
	lines := strings.SplitAfter(string(data), "\n")
	if len(lines) < 10 {
		t.Fatalf("witness file of %d lines, want 2 checkpoints", len(lines))
	}
	if err := os.WriteFile(garbled, []byte(strings.Join(append(lines[:8:8], lines[9:]...), "")), 0o600); err != nil {
		t.Fatal(err)
	}
	// The garbled chunk fails by itself, naming its line; the checkpoint
	// before it is still checked.
	if code, out := verify("--witness", garbled); code != exitFailure ||
		!strings.Contains(out, "FAILED: witness "+garbled+": checkpoint 2, line 6, is not a checkpoint: trail: malformed witness file: line 6: a signature line where the checkpoint text goes on") ||
		strings.Contains(out, "checkpoint 1,") {
		t.Fatalf("verify --witness %s: %d %s", garbled, code, out)
	}
	for _, tc := range []struct{ file, want string }{
		{filepath.Join(t.TempDir(), "none"), "--witness: open "},
	} {
		if code, out := verify("--witness", tc.file); code != exitUsage || !strings.Contains(out, tc.want) {
			t.Fatalf("verify --witness %s: %d %s, want exit %d with %q", tc.file, code, out, exitUsage, tc.want)
		}
	}
	if code, _, errOut := logRun(append(append([]string{"checkpoint"}, trailArgs...), "--witness", good)...); code != exitUsage || !strings.Contains(errOut, "verify only") {
		t.Fatalf("checkpoint --witness: %d %s", code, errOut)
	}
}

// TestLogVerifyWitnessFileTrail: decisions on a file trail, checkpoints
// kept outside it (pdp log checkpoint >> FILE, and the PDP's own
// trail.witness_file), more decisions: verify --witness holds for both
// files; an older copy of the trail (records cut) fails naming the
// checkpoint; another key's checkpoint and a garbled file are clear errors.
func TestLogVerifyWitnessFileTrail(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "trail")
	outside := t.TempDir()
	manual, auto := filepath.Join(outside, "manual.witness"), filepath.Join(outside, "auto.witness")
	t.Setenv("PDP_TRAIL_WITNESS_FILE", auto)
	t.Setenv("PDP_TRAIL_CHECKPOINT_INTERVAL", "50ms")

	url, stop := serveTrail(t, pdpserver.TrailSync, dir)
	askN(t, url, 0, 4)
	stop()
	first := appendCheckpoint(t, manual, "--dir", dir)
	early := filepath.Join(t.TempDir(), "early")
	if out, err := exec.Command("cp", "-a", dir, early).CombinedOutput(); err != nil {
		t.Fatalf("copy the trail: %v %s", err, out)
	}

	url, stop = serveTrail(t, pdpserver.TrailSync, dir)
	askN(t, url, 4, 5)
	stop()
	last := appendCheckpoint(t, manual, "--dir", dir)
	if first.Size != 5 || last.Size != 11 { // each start records its policy activation
		t.Fatalf("witnessed sizes %d and %d, want 5 and 11", first.Size, last.Size)
	}
	vkey := publishedKey(t, dir)

	code, out, errOut := logRun("verify", "--dir", dir, "--key", vkey, "--witness", manual, "--witness", auto)
	if code != exitOK || !strings.Contains(out, "OK: witness "+manual+": 2 checkpoints checked, the largest of 11 records") ||
		!regexp.MustCompile(`OK: witness `+regexp.QuoteMeta(auto)+`: \d+ checkpoints checked, the largest of 11 records`).MatchString(out) {
		t.Fatalf("verify --witness: %d %s %s", code, out, errOut)
	}
	t.Logf("verify --witness: %s", out)

	// The early copy verifies by itself: its own checkpoints are consistent.
	if code, out, errOut := logRun("verify", "--dir", early, "--key", vkey); code != exitOK {
		t.Fatalf("verify of the early copy: %d %s %s", code, out, errOut)
	}
	code, out, errOut = logRun("verify", "--dir", early, "--key", vkey, "--witness", manual)
	if code != exitFailure || !strings.Contains(out, "FAILED: witnessed checkpoint of 11 records (root "+last.Root.String()[:12]+"…, "+manual+": checkpoint 2, line 6): the trail has 5 records; the witness saw 11: records were cut") {
		t.Fatalf("verify --witness of the early copy: %d %s %s", code, out, errOut)
	}
	if strings.Contains(out, "checkpoint 1,") {
		t.Fatalf("the first witnessed checkpoint holds for the early copy: %s", out)
	}
	t.Logf("verify --witness of the early copy: %s", out)

	checkBadWitnesses(t, manual, "--dir", dir, "--key", vkey)
}

// publishedKey is the verifier key of the trail in dir.
func publishedKey(t *testing.T, dir string) string {
	t.Helper()
	skey, err := os.ReadFile(filepath.Join(dir, pdpserver.TrailKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	vkey, err := pdpserver.VerifierKey(strings.TrimSpace(string(skey)))
	if err != nil {
		t.Fatal(err)
	}
	return vkey
}

// TestLogVerifyWitnessPostgres: decisions on a PostgreSQL trail, its
// checkpoint kept outside (pdp log checkpoint >> FILE while the PDP runs,
// and trail.witness_file), more decisions. Untouched, verify --witness
// holds. Then a decision record is rewritten with every stored hash above
// it and the head's root, and the stored checkpoints deleted: the
// consistent forgery plain verify cannot see (it passes), and verify
// --witness names. Then the newest records are cut with the head.
func TestLogVerifyWitnessPostgres(t *testing.T) {
	dbURL := testDatabase(t)
	key, skey := trailKeyFile(t)
	vkey, err := pdpserver.VerifierKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	outside := t.TempDir()
	manual, auto := filepath.Join(outside, "manual.witness"), filepath.Join(outside, "auto.witness")
	t.Setenv("PDP_TRAIL_STORE", pdpserver.TrailPostgres)
	t.Setenv("PDP_TRAIL_POSTGRES_URL", dbURL)
	t.Setenv("PDP_TRAIL_SIGNING_KEY_FILE", key)
	t.Setenv("PDP_TRAIL_WITNESS_FILE", auto)
	t.Setenv("PDP_TRAIL_CHECKPOINT_INTERVAL", "50ms")
	pg := []string{"--postgres-url", dbURL, "--key", vkey}

	url, stop := serveTrailBundle(t, pdpserver.TrailSync, filepath.Join(t.TempDir(), "a"), todoDir)
	askN(t, url, 0, 6)
	// While the PDP runs: wait for a checkpoint of all 7 records.
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, cp, _ := logRun(append([]string{"checkpoint"}, pg...)...)
		if code == exitOK && strings.HasPrefix(cp, "pdp/trail\n7\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint of 7 records: %d %q", code, cp)
		}
		time.Sleep(50 * time.Millisecond)
	}
	first := appendCheckpoint(t, manual, pg...)
	askN(t, url, 6, 5)
	stop()
	last := appendCheckpoint(t, manual, pg...)
	if first.Size != 7 || last.Size != 12 {
		t.Fatalf("witnessed sizes %d and %d, want 7 and 12", first.Size, last.Size)
	}
	verify := func(args ...string) (int, string) {
		code, out, errOut := logRun(append(append([]string{"verify", "--key", vkey}, pg...), args...)...)
		return code, out + errOut
	}
	if code, out := verify("--witness", manual, "--witness", auto); code != exitOK ||
		!strings.Contains(out, "OK: witness "+manual+": 2 checkpoints checked, the largest of 12 records") ||
		!regexp.MustCompile(`OK: witness `+regexp.QuoteMeta(auto)+`: \d+ checkpoints checked, the largest of 12 records`).MatchString(out) {
		t.Fatalf("verify --witness: %d %s", code, out)
	}
	checkBadWitnesses(t, manual, append([]string{"--key", vkey}, pg...)...)

	// The consistent forgery: decision record 3 rewritten, every stored
	// hash and the root to match, the stored checkpoints deleted.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	forgeConsistently(ctx, t, conn, 3)
	if code, out := verify(); code != exitOK || !strings.Contains(out, "OK: ") {
		t.Fatalf("plain verify of the consistent forgery: %d %s (the README says it cannot see it)", code, out)
	}
	code, out := verify("--witness", manual)
	if code != exitFailure ||
		!strings.Contains(out, "FAILED: witnessed checkpoint of 7 records (root "+first.Root.String()[:12]+"…, "+manual+": checkpoint 1, line 1): the first 7 records no longer hash to the witnessed root: records before 7 were changed") ||
		!strings.Contains(out, "checkpoint 2, line 6): the first 12 records no longer hash") {
		t.Fatalf("verify --witness of the consistent forgery: %d %s", code, out)
	}
	t.Logf("verify --witness of the consistent forgery: %s", out)

	// Records 9 and after cut, the head and its root to match.
	cutTo(ctx, t, conn, 9)
	code, out = verify("--witness", manual)
	if code != exitFailure || !strings.Contains(out, manual+": checkpoint 2, line 6): the trail has 9 records; the witness saw 12: records were cut") {
		t.Fatalf("verify --witness of the cut trail: %d %s", code, out)
	}
	t.Logf("verify --witness of the cut trail: %s", out)
}

// forgeConsistently rewrites record seq (a trailing space: still its
// JSON, another leaf), recomputes every stored hash (the up columns) and
// the head's root from the leaves, and deletes the stored checkpoints.
func forgeConsistently(ctx context.Context, t *testing.T, conn *pgx.Conn, seq int64) {
	t.Helper()
	if _, err := conn.Exec(ctx, `UPDATE trail_records SET body = body || '\x20'::bytea, leaf = sha256('\x00'::bytea || body || '\x20'::bytea) WHERE seq = $1`, seq); err != nil {
		t.Fatal(err)
	}
	rehash(ctx, t, conn)
}

// cutTo deletes the records from n on and cuts the head and its root to
// match, and deletes the stored checkpoints.
func cutTo(ctx context.Context, t *testing.T, conn *pgx.Conn, n int64) {
	t.Helper()
	if _, err := conn.Exec(ctx, `DELETE FROM trail_records WHERE seq >= $1`, n); err != nil {
		t.Fatal(err)
	}
	rehash(ctx, t, conn)
}

// rehash rewrites every up column and the head's size and root from the
// leaf columns, and deletes the stored checkpoints.
func rehash(ctx context.Context, t *testing.T, conn *pgx.Conn) {
	t.Helper()
	rows, err := conn.Query(ctx, `SELECT seq, leaf FROM trail_records ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	var leaves []tlog.Hash
	var seq int64
	var leaf []byte
	if _, err := pgx.ForEachRow(rows, []any{&seq, &leaf}, func() error {
		leaves = append(leaves, tlog.Hash(leaf))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var tree memTree
	for i, l := range leaves {
		hs, err := tlog.StoredHashesForRecordHash(int64(i), l, tree)
		if err != nil {
			t.Fatal(err)
		}
		var up []byte
		for _, h := range hs[1:] {
			up = append(up, h[:]...)
		}
		tree = append(tree, hs...)
		if _, err := conn.Exec(ctx, `UPDATE trail_records SET up = $2 WHERE seq = $1`, i, up); err != nil {
			t.Fatal(err)
		}
	}
	root, err := tlog.TreeHash(int64(len(leaves)), tree)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `UPDATE trail_head SET size = $1, root_size = $1, root = $2`, len(leaves), root[:]); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `DELETE FROM trail_checkpoints`); err != nil {
		t.Fatal(err)
	}
}

// memTree is a tlog.HashReader over stored hashes in memory.
type memTree []tlog.Hash

func (m memTree) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, idx := range indexes {
		out[i] = m[idx]
	}
	return out, nil
}

// TestWitnessFileFailureOverHTTP: the real binary with a witness file it
// cannot write (its folder is missing) goes on answering decisions, logs
// the failure at Error and shows it in pdp_trail_checkpoint_failing; once
// the folder exists the checkpoints are appended again and the gauge
// drops, and after a clean stop the file witnesses the whole trail.
func TestWitnessFileFailureOverHTTP(t *testing.T) {
	bin := sharedBinary(t)
	dir := filepath.Join(t.TempDir(), "trail")
	outside := filepath.Join(t.TempDir(), "later")
	witness := filepath.Join(outside, "pdp.witness")
	p := startProc(t, bin, listeningMsg, []string{"PDP_TRAIL_DIR=" + dir, "PDP_LOG_FORMAT=json", "PDP_POLICY_DIR=" + todoDir,
		"PDP_TRAIL_CHECKPOINT_INTERVAL=50ms", "PDP_TRAIL_WITNESS_FILE=" + witness}, "serve", "--addr", "127.0.0.1:0")
	s := &server{URL: p.URL}
	askN(t, p.URL, 0, 3)
	eventually(t, "the failed append shows", func() bool { return s.metric(t, "pdp_trail_checkpoint_failing") == 1 })
	if logs := p.logs.String(); !strings.Contains(logs, `"level":"ERROR"`) || !strings.Contains(logs, "witness file") {
		t.Fatalf("no Error naming the witness file; log:\n%s", logs)
	}
	askN(t, p.URL, 3, 3) // decisions go on
	if err := os.Mkdir(outside, 0o700); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the appends succeed again", func() bool { return s.metric(t, "pdp_trail_checkpoint_failing") == 0 })
	askN(t, p.URL, 6, 2)
	if _, code := p.signal(t, syscall.SIGTERM, 15*time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM; log:\n%s", code, p.logs)
	}
	code, out, errOut := logRun("verify", "--dir", dir, "--key", publishedKey(t, dir), "--witness", witness)
	if code != exitOK || !strings.Contains(out, "the largest of 9 records") {
		t.Fatalf("verify --witness: %d %s %s", code, out, errOut)
	}
}
