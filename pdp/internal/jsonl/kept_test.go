package jsonl

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestFailedCutKeptInFile: an append whose fsync fails and whose cut back
// fails too leaves its lines in the file: the error says so
// (ErrKeptInFile) when the file holds them whole, and a reopen reads
// them; when the cut succeeds (its fsync failing), it does not.
func TestFailedCutKeptInFile(t *testing.T) {
	for _, tc := range []struct {
		name         string
		truncateFail bool
		kept         bool
	}{
		{"the cut fails", true, true},
		{"the cut is made, its fsync fails", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "s.jsonl")
			var ids []string
			f, err := Open(path, Options{Corrupt: errCorrupt}, decodeRecords(&ids))
			if err != nil {
				t.Fatal(err)
			}
			if err := f.Append([]byte(`{"id":"a"}`)); err != nil {
				t.Fatal(err)
			}
			eio := errors.New("input/output error")
			f.Sync = func(*os.File) error { return eio }
			if tc.truncateFail {
				f.Truncate = func(*os.File, int64) error { return errors.New("read-only file system") }
			}
			err = f.AppendLines([]byte(`{"id":"b","more":true}`), []byte(`{"id":"c"}`))
			if !errors.Is(err, eio) || errors.Is(err, ErrKeptInFile) != tc.kept {
				t.Fatalf("AppendLines: %v, kept in file %v", err, tc.kept)
			}
			if err := f.Append([]byte(`{"id":"d"}`)); err == nil {
				t.Fatal("an append after the failed fsync was taken")
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			ids = nil
			g, err := Open(path, Options{Corrupt: errCorrupt}, decodeRecords(&ids))
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			if want := map[bool]int{true: 3, false: 1}[tc.kept]; len(ids) != want {
				t.Fatalf("reopened: %v, want %d records", ids, want)
			}
		})
	}
}
