package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	pdpserver "github.com/ciampdp/pdp/pdp/server"
	"github.com/ciampdp/pdp/pdp/trail"
	"github.com/jackc/pgx/v5"
)

// TestWitnessFileSecondRound, through the running PDP and the CLI on a
// file trail: a witness file left with a torn note at its end is cut back
// and appended to by the next start, so it parses whole and verifies;
// 'pdp log checkpoint' refuses a checkpoint that does not check with the
// key it is given; after a key rotation verify takes the old and the new
// key (--key, --key-file, repeatable) and the witnessed checkpoints of
// both check; a bad chunk in the middle of a witness file is one FAILED
// entry naming its line, and the checkpoints after it are still checked.
func TestWitnessFileSecondRound(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "trail")
	outside := t.TempDir()
	auto, manual := filepath.Join(outside, "auto.witness"), filepath.Join(outside, "manual.witness")
	t.Setenv("PDP_TRAIL_WITNESS_FILE", auto)
	t.Setenv("PDP_TRAIL_CHECKPOINT_INTERVAL", "50ms")

	url, stop := serveTrail(t, pdpserver.TrailSync, dir)
	askN(t, url, 0, 3)
	stop()
	oldKey := publishedKey(t, dir)
	first := appendCheckpoint(t, manual, "--dir", dir, "--key", oldKey)

	// A torn append at the end of the PDP's witness file.
	data, err := os.ReadFile(auto)
	if err != nil {
		t.Fatal(err)
	}
	torn := append(bytes.Clone(data), data[:40]...)
	if err := os.WriteFile(auto, torn, 0o600); err != nil {
		t.Fatal(err)
	}

	// 'pdp log checkpoint' with a key that did not sign it.
	_, otherKey, err := note.GenerateKey(rand.Reader, "pdp/trail")
	if err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := logRun("checkpoint", "--dir", dir, "--key", otherKey); code != exitFailure || out != "" ||
		!strings.Contains(errOut, "the latest stored checkpoint does not check") {
		t.Fatalf("log checkpoint with another key: %d %q %s", code, out, errOut)
	}

	// Key rotation: the next start signs with a new key.
	newKeyFile, newSkey := trailKeyFile(t)
	newKey, err := pdpserver.VerifierKey(newSkey)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("PDP_TRAIL_SIGNING_KEY_FILE", newKeyFile)
	url, stop = serveTrail(t, pdpserver.TrailSync, dir)
	askN(t, url, 3, 3)
	stop()
	last := appendCheckpoint(t, manual, "--dir", dir, "--key", newKey)
	if first.Size >= last.Size {
		t.Fatalf("witnessed sizes %d then %d", first.Size, last.Size)
	}

	// The torn note was cut: the file parses whole.
	data, err = os.ReadFile(auto)
	if err != nil {
		t.Fatal(err)
	}
	cps, err := trail.ParseWitnessFile(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cps {
		if c.Err != nil {
			t.Fatalf("the PDP's witness file after a torn append and a start: %v\n%s", c.Err, data)
		}
	}

	oldKeyFile := filepath.Join(t.TempDir(), "old.vkey")
	if err := os.WriteFile(oldKeyFile, []byte(oldKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, keys := range [][]string{
		{"--key", oldKey, "--key", newKey},
		{"--key-file", oldKeyFile, "--key-file", newKeyFile},
		{"--key", newKey, "--key-file", oldKeyFile},
	} {
		args := append(append([]string{"verify", "--dir", dir}, keys...), "--witness", manual, "--witness", auto)
		if code, out, errOut := logRun(args...); code != exitOK || !strings.Contains(out, "OK: witness "+manual+": 2 checkpoints checked") ||
			!strings.Contains(out, "OK: witness "+auto+": ") {
			t.Fatalf("verify %v: %d %s %s", keys, code, out, errOut)
		}
	}
	code, out, errOut := logRun("verify", "--dir", dir, "--key", newKey, "--witness", manual)
	if code != exitFailure || !strings.Contains(out, manual+": checkpoint 1, line 1): signature does not check") || strings.Contains(out, "checkpoint 2,") {
		t.Fatalf("verify with the new key only: %d %s %s", code, out, errOut)
	}

	// A bad chunk in the middle; a foreign checkpoint after it.
	foreign := foreignCheckpoint(t)
	manualData, err := os.ReadFile(manual)
	if err != nil {
		t.Fatal(err)
	}
	mid := filepath.Join(outside, "mid.witness")
	if err := os.WriteFile(mid, append(append(bytes.Clone(manualData), "no checkpoint\nhere\n\n"...), foreign...), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = logRun("verify", "--dir", dir, "--key", oldKey, "--key", newKey, "--witness", mid)
	if code != exitFailure ||
		!strings.Contains(out, "FAILED: witness "+mid+": checkpoint 3, line 11, is not a checkpoint") ||
		!strings.Contains(out, mid+": checkpoint 4, line 14): signature does not check") ||
		strings.Contains(out, "checkpoint 1,") || strings.Contains(out, "checkpoint 2,") {
		t.Fatalf("verify --witness with a bad chunk in the middle: %d %s %s", code, out, errOut)
	}
	t.Logf("verify --witness with a bad chunk in the middle:\n%s", out)
}

// TestWitnessPlantedCheckpointPostgres, through the running PDP on a
// PostgreSQL trail with trail.witness_file: a latest checkpoint row
// rewritten in the database (another key's note of the same size) while
// the tree does not grow is refused by the store's own checkpoint loop
// (pdp_trail_checkpoint_failing, logged at Error), never copied to the
// witness file; 'pdp log checkpoint' refuses to print it (exit 1).
func TestWitnessPlantedCheckpointPostgres(t *testing.T) {
	dbURL := testDatabase(t)
	bin := sharedBinary(t)
	key, skey := trailKeyFile(t)
	vkey, err := pdpserver.VerifierKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	witness := filepath.Join(t.TempDir(), "pdp.witness")
	p := startProc(t, bin, listeningMsg, []string{"PDP_TRAIL_STORE=" + pdpserver.TrailPostgres, "PDP_TRAIL_POSTGRES_URL=" + dbURL,
		"PDP_TRAIL_SIGNING_KEY_FILE=" + key, "PDP_LOG_FORMAT=json", "PDP_POLICY_DIR=" + todoDir,
		"PDP_TRAIL_CHECKPOINT_INTERVAL=50ms", "PDP_TRAIL_WITNESS_FILE=" + witness}, "serve", "--addr", "127.0.0.1:0")
	s := &server{URL: p.URL}
	askN(t, p.URL, 0, 3)
	var size uint64
	eventually(t, "the witness file has the checkpoint of every record", func() bool {
		data, err := os.ReadFile(witness)
		if err != nil {
			return false
		}
		cps, err := trail.ParseWitnessFile(data)
		if err != nil {
			return false
		}
		h, err := trail.UnverifiedHead(cps[len(cps)-1].Signed)
		size = h.Size
		return err == nil && h.Size == 4 // the policy activation and 3 decisions
	})
	before, err := os.ReadFile(witness)
	if err != nil {
		t.Fatal(err)
	}
	fskey, _, err := note.GenerateKey(rand.Reader, "pdp/trail")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(fskey)
	if err != nil {
		t.Fatal(err)
	}
	planted, err := trail.TreeHead{Origin: "pdp/trail", Size: size, Root: tlog.RecordHash([]byte("x"))}.Sign(signer)
	if err != nil {
		t.Fatal(err)
	}
	db, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())
	if _, err := db.Exec(t.Context(), `UPDATE trail_checkpoints SET signed = $1 WHERE size = $2`, string(planted), int64(size)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the planted row shows", func() bool { return s.metric(t, "pdp_trail_checkpoint_failing") == 1 })
	if logs := p.logs.String(); !strings.Contains(logs, `"level":"ERROR"`) || !strings.Contains(logs, "the latest checkpoint") {
		t.Fatalf("no Error naming the latest checkpoint; log:\n%s", logs)
	}
	if code, out, errOut := logRun("checkpoint", "--postgres-url", dbURL, "--key", vkey); code != exitFailure || out != "" ||
		!strings.Contains(errOut, "does not check") {
		t.Fatalf("log checkpoint of the planted row: %d %q %s", code, out, errOut)
	}
	if after, _ := os.ReadFile(witness); !bytes.Equal(after, before) {
		t.Fatalf("the witness file changed:\n%s", after[len(before):])
	}
}
