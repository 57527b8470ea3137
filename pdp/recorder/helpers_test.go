package recorder

import (
	"crypto/rand"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/ciampdp/pdp/pdp/trail"
)

func newKeys(t testing.TB) (note.Signer, string) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, "northbank-pdp")
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return s, vkey
}

// testLog is a file trail in dir, closed when the test ends.
type testLog struct {
	*trail.FileLog
	dir string
}

func openLog(t testing.TB, dir string, opts trail.FileOptions) testLog {
	t.Helper()
	l, err := trail.OpenFile(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return testLog{l, dir}
}
