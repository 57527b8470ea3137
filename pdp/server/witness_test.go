package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/ciampdp/pdp/pdp/trail"
)

// TestWitnessedStore: the witness file gets each new checkpoint once (a
// tree that has not grown adds nothing), in a form 'pdp log verify
// --witness' parses; a failed append is logged at Error once and is the
// store's LastCheckpointError until an append succeeds; Close appends the
// final checkpoint.
func TestWitnessedStore(t *testing.T) {
	skey, vkey, err := note.GenerateKey(rand.Reader, "pdp/trail")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	fl, err := trail.OpenFile(t.TempDir(), trail.FileOptions{Origin: "pdp/trail", Signer: signer, CheckpointInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(t.TempDir(), "later")
	file := filepath.Join(outside, "w")
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	st, err := witnessStore(fl, TrailConfig{WitnessFile: file, CheckpointInterval: time.Hour, Origin: "pdp/trail"}, vkey, log)
	if err != nil {
		t.Fatal(err)
	}
	ws := st.(*witnessedStore)
	// What the store's own loop does at each tick.
	witness := func() {
		t.Helper()
		if _, err := fl.Checkpoint(); err != nil {
			t.Fatal(err)
		}
		ws.sync()
	}
	add := func(i int) {
		t.Helper()
		rec := trail.Record{Kind: "decision", ID: fmt.Sprintf("d-%d", i), Time: time.Unix(int64(i), 0).UTC(), Body: json.RawMessage(`{}`)}
		if _, err := fl.Append(context.Background(), rec); err != nil {
			t.Fatal(err)
		}
	}
	sizes := func() []uint64 {
		t.Helper()
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		cps, err := trail.ParseWitnessFile(data)
		if err != nil {
			t.Fatal(err)
		}
		var out []uint64
		for _, c := range cps {
			h, err := trail.OpenCheckpoint(vkey, c.Signed)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, h.Size)
		}
		return out
	}

	add(0)
	witness() // the folder is missing
	witness()
	if err := st.LastCheckpointError(); err == nil || !strings.Contains(err.Error(), "witness file") {
		t.Fatalf("LastCheckpointError after a failed append: %v", err)
	}
	if n := strings.Count(logs.String(), `"level":"ERROR"`); n != 1 {
		t.Fatalf("%d Error lines for one outage, want 1:\n%s", n, logs.String())
	}
	if err := os.Mkdir(outside, 0o700); err != nil {
		t.Fatal(err)
	}
	witness() // the same checkpoint, now appended
	if err := st.LastCheckpointError(); err != nil {
		t.Fatalf("LastCheckpointError after the append succeeded: %v", err)
	}
	witness() // not grown: nothing added
	add(1)
	add(2)
	witness()
	add(3)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(sizes()); got != "[1 3 4]" {
		t.Fatalf("witnessed sizes %s, want [1 3 4]", got)
	}
}

func TestWitnessStoreOff(t *testing.T) {
	fl, err := trail.OpenFile(t.TempDir(), trail.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	st, err := witnessStore(fl, TrailConfig{}, "", slog.Default())
	if err != nil || st != TrailStore(fl) {
		t.Fatalf("without trail.witness_file: %T %v, want the store itself", st, err)
	}
}
