package delegation

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fileWithHistory writes a store file with three records, one updated, and
// returns its path and the records as stored.
func fileWithHistory(t *testing.T) (string, []Delegation) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "d.jsonl")
	s, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	alice, bob, carol := Ref{"user", "alice"}, Ref{"user", "bob"}, Ref{"user", "carol"}
	a := record("dlg-a", alice, bob, today)
	b := record("dlg-b", alice, carol, today.Add(time.Second))
	c := record("dlg-c", carol, bob, today.Add(2*time.Second))
	for _, d := range []Delegation{a, b, c} {
		if err := s.Create(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	b2 := b.Clone()
	b2.addEvent(EventAccepted, today.Add(time.Hour), as(carol), "", StatusActive)
	b2.Version = 2
	if err := s.Update(ctx, b2, 1); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return path, []Delegation{a, b2, c}
}

func listAll(t *testing.T, s Store) []Delegation {
	t.Helper()
	ds, err := s.List(context.Background(), Filter{})
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

func TestFileStoreReopen(t *testing.T) {
	path, want := fileWithHistory(t)
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("file mode %v, want 0600", perm)
	}
	raw, _ := os.ReadFile(path)
	if n := bytes.Count(raw, []byte("\n")); n != 4 {
		t.Errorf("file has %d lines, want 4 (3 creates, 1 update)", n)
	}
	s, err := OpenFile(path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	if got := listAll(t, s); jsonOf(t, got) != jsonOf(t, want) {
		t.Errorf("after reopen:\n%s\nwant\n%s", jsonOf(t, got), jsonOf(t, want))
	}
	carol := Ref{"user", "carol"}
	if got, _ := s.List(context.Background(), Filter{Agent: &carol}); len(got) != 1 || got[0].Version != 2 {
		t.Errorf("index by agent after reopen: %s", jsonOf(t, got))
	}
	if s.TornBytes() != 0 {
		t.Errorf("TornBytes = %d on a clean file", s.TornBytes())
	}
}

func TestFileStoreTornLastLine(t *testing.T) {
	tests := []struct {
		name string
		tail string
	}{
		{"half a record", `{"id":"dlg-d","principal":{"type":"us`},
		{"record without newline", `{"id":"dlg-d","version":1}`},
		{"zeros", "\x00\x00\x00\x00"},
		{"garbage line with newline", "#@!\n"},
		{"torn then blank lines", "{\"id\":\n\n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, want := fileWithHistory(t)
			clean, _ := os.ReadFile(path)
			if err := os.WriteFile(path, append(bytes.Clone(clean), tt.tail...), 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := OpenFile(path)
			if err != nil {
				t.Fatalf("OpenFile with a torn last line: %v", err)
			}
			if got := listAll(t, s); jsonOf(t, got) != jsonOf(t, want) {
				t.Errorf("state:\n%s\nwant\n%s", jsonOf(t, got), jsonOf(t, want))
			}
			if s.TornBytes() != int64(len(tt.tail)) {
				t.Errorf("TornBytes = %d, want %d", s.TornBytes(), len(tt.tail))
			}
			// The torn bytes are gone, so the next record starts a line.
			d := record("dlg-e", Ref{"user", "erin"}, Ref{"user", "frank"}, today)
			if err := s.Create(context.Background(), d); err != nil {
				t.Fatal(err)
			}
			s.Close()
			s2, err := OpenFile(path)
			if err != nil {
				t.Fatalf("reopen after writing past a torn line: %v", err)
			}
			defer s2.Close()
			if n := len(listAll(t, s2)); n != 4 {
				t.Errorf("%d records after reopen, want 4", n)
			}
		})
	}
}

func TestFileStoreCorruptMiddleLine(t *testing.T) {
	path, _ := fileWithHistory(t)
	raw, _ := os.ReadFile(path)
	lines := strings.SplitAfter(string(raw), "\n")
	lines[1] = `{"id": "dlg-b", "version": "two"}` + "\n" // line 2 of 4
	if err := os.WriteFile(path, []byte(strings.Join(lines, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := OpenFile(path)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("OpenFile = %v, want ErrCorrupt naming line 2", err)
	}
	// A file the store cannot read is not touched.
	if after, _ := os.ReadFile(path); string(after) != strings.Join(lines, "") {
		t.Error("OpenFile changed a corrupt file")
	}
}

// TestFileStoreSync: every write is fsynced before it returns; a failed
// fsync fails the write, leaves the state unchanged and refuses later
// writes until the file is reopened.
func TestFileStoreSync(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new", "dir", "d.jsonl")
	s, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var syncs int
	fail := false
	s.file.Sync = func(f *os.File) error {
		syncs++
		if fail {
			return errors.New("EIO")
		}
		return f.Sync() // the real one
	}
	ctx := context.Background()
	a := record("dlg-a", Ref{"user", "alice"}, Ref{"user", "bob"}, today)
	if err := s.Create(ctx, a); err != nil {
		t.Fatal(err)
	}
	a2 := a.Clone()
	a2.addEvent(EventAccepted, today, as(a.Agent), "", StatusActive)
	a2.Version = 2
	if err := s.Update(ctx, a2, 1); err != nil {
		t.Fatal(err)
	}
	if syncs != 2 {
		t.Errorf("%d fsyncs for 2 writes", syncs)
	}
	fail = true
	b := record("dlg-b", Ref{"user", "alice"}, Ref{"user", "carol"}, today)
	if err := s.Create(ctx, b); err == nil || !strings.Contains(err.Error(), "EIO") {
		t.Fatalf("Create with a failing fsync = %v", err)
	}
	if _, err := s.Get(ctx, "dlg-b"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a write whose fsync failed is visible: %v", err)
	}
	fail = false
	if err := s.Create(ctx, record("dlg-c", Ref{"user", "alice"}, Ref{"user", "dave"}, today)); err == nil {
		t.Error("the store accepted a write after a failed fsync")
	}
	if _, err := s.Get(ctx, "dlg-a"); err != nil {
		t.Errorf("reads after a failed fsync: %v", err)
	}
}

func TestOpenFileErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := OpenFile(""); err == nil {
		t.Error("OpenFile(\"\"): no error")
	}
	if _, err := OpenFile(dir); err == nil {
		t.Error("OpenFile(a directory): no error")
	}
}
