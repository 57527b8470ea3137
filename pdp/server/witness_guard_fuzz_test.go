package server

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp/trail"
)

// FuzzWitnessCutTornTail: whatever follows a whole checkpoint in the
// witness file, the check of its end either leaves the file byte-identical
// (with an error when the end is not a note of the trail's), or cuts only
// a tail shorter than a whole note that starts with (a part of) the
// trail's origin line, after which the file parses whole.
func FuzzWitnessCutTornTail(f *testing.F) {
	r := newWitnessRig(f, time.Hour)
	defer r.fl.Close()
	r.add(1)
	first := r.checkpoint()
	f.Add([]byte("pdp/trail\n2\n"))
	f.Add([]byte("pdp/tr"))
	f.Add([]byte("\n\npdp/trail\n"))
	f.Add([]byte("listen: :8080\n"))
	f.Add([]byte("other/trail\n2\n"))
	f.Add(first)
	s := &witnessedStore{path: r.file, origin: "pdp/trail", vkey: r.vkey, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	f.Fuzz(func(t *testing.T, tail []byte) {
		orig := append(bytes.Clone(first), tail...)
		if err := os.WriteFile(r.file, orig, 0o600); err != nil {
			t.Fatal(err)
		}
		w, err := os.OpenFile(r.file, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		rd, err := os.Open(r.file)
		if err != nil {
			t.Fatal(err)
		}
		_, cutErr := s.cutTornTail(w, rd, len(first))
		w.Close()
		rd.Close()
		got, err := os.ReadFile(r.file)
		if err != nil {
			t.Fatal(err)
		}
		if cutErr != nil || bytes.Equal(got, orig) {
			if !bytes.Equal(got, orig) {
				t.Fatalf("changed the file and failed: %v", cutErr)
			}
			return
		}
		if !bytes.HasPrefix(orig, got) || len(bytes.TrimLeft(orig[len(got):], "\n")) >= len(first) {
			t.Fatalf("cut %q to %q", orig, got)
		}
		cut := bytes.TrimLeft(orig[len(got):], "\n")
		line := []byte("pdp/trail\n")
		if !bytes.HasPrefix(cut, line) && !bytes.HasPrefix(line, cut) {
			t.Fatalf("cut %q, not a note of the trail's", cut)
		}
		cps, err := trail.ParseWitnessFile(got)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cps {
			if c.Err != nil {
				t.Fatalf("after the cut %q: %v", got, c.Err)
			}
		}
	})
}
