package jsonl

import (
	"path/filepath"
	"slices"
	"testing"
)

// TestAppendLines: the lines of one AppendLines come back in order after
// a reopen, between the lines of single Appends (a write that fails is
// cut back whole: signalledger's TestDiskFullKeepsNoPartOfASET).
func TestAppendLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.jsonl")
	var ids []string
	f, err := Open(path, Options{Corrupt: errCorrupt}, decodeID(&ids))
	if err != nil {
		t.Fatal(err)
	}
	for _, lines := range [][][]byte{{[]byte(`{"id":"a"}`)}, {[]byte(`{"id":"b"}`), []byte(`{"id":"c"}`), []byte(`{"id":"d"}`)}, {}} {
		if err := f.AppendLines(lines...); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Append([]byte(`{"id":"e"}`)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	f, err = Open(path, Options{Corrupt: errCorrupt}, decodeID(&ids))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	if want := []string{"a", "b", "c", "d", "e"}; !slices.Equal(ids, want) || f.TornBytes() != 0 {
		t.Fatalf("lines %v (%d bytes torn), want %v", ids, f.TornBytes(), want)
	}
}
