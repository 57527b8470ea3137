package jsonl

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var errCorrupt = errors.New("corrupt")

// decodeID accepts a JSON object with a non-empty "id".
func decodeID(ids *[]string) func([]byte) error {
	return func(body []byte) error {
		var v struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(body, &v); err != nil {
			return err
		}
		if v.ID == "" {
			return errors.New("no id")
		}
		*ids = append(*ids, v.ID)
		return nil
	}
}

// TestOpenCutsAndLogsTornTail: a torn last line is cut, and the cut is
// logged with the file, the offset and the bytes cut; a bad line in the
// middle is an error.
func TestOpenCutsAndLogsTornTail(t *testing.T) {
	tests := []struct {
		name     string
		content  string
		wantIDs  int
		wantTorn int64
		wantErr  bool
	}{
		{"clean", "{\"id\":\"a\"}\n{\"id\":\"b\"}\n", 2, 0, false},
		{"no newline", "{\"id\":\"a\"}\n{\"id\":\"b\"}", 1, 10, false},
		{"half a record", "{\"id\":\"a\"}\n{\"id\":\"b\",\"x\":\n", 1, 15, false},
		{"bad line in the middle", "{\"id\":\"a\"}\nnot json\n{\"id\":\"b\"}\n", 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "s.jsonl")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			var logs bytes.Buffer
			var ids []string
			f, err := Open(path, Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil)), Corrupt: errCorrupt}, decodeID(&ids))
			if tt.wantErr {
				if !errors.Is(err, errCorrupt) {
					t.Fatalf("Open: %v, want an error wrapping errCorrupt", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if len(ids) != tt.wantIDs || f.TornBytes() != tt.wantTorn {
				t.Fatalf("ids %v torn %d, want %d ids, %d torn", ids, f.TornBytes(), tt.wantIDs, tt.wantTorn)
			}
			if tt.wantTorn == 0 {
				if logs.Len() != 0 {
					t.Errorf("logged without a cut: %s", logs.String())
				}
				return
			}
			var rec map[string]any
			if err := json.Unmarshal(logs.Bytes(), &rec); err != nil {
				t.Fatalf("log %q: %v", logs.String(), err)
			}
			off := int64(len(tt.content)) - tt.wantTorn
			if rec["level"] != "WARN" || rec["file"] != path || rec["offset"] != float64(off) || rec["bytes"] != float64(tt.wantTorn) {
				t.Errorf("cut logged as %v, want WARN file %s offset %d bytes %d", rec, path, off, tt.wantTorn)
			}
			if fi, _ := os.Stat(path); fi.Size() != off {
				t.Errorf("file is %d bytes after the cut, want %d", fi.Size(), off)
			}
			if err := f.Append([]byte(`{"id":"c"}`)); err != nil {
				t.Fatal(err)
			}
			if data, _ := os.ReadFile(path); !strings.HasSuffix(string(data), "\n{\"id\":\"c\"}\n") {
				t.Errorf("after an append: %q", data)
			}
		})
	}
}

// TestFatalIsNotTorn: a last line that decode marks Fatal is an error, not
// a cut.
func TestFatalIsNotTorn(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.jsonl")
	if err := os.WriteFile(path, []byte("{\"id\":\"a\"}\n{\"id\":\"a\"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	_, err := Open(path, Options{Corrupt: errCorrupt}, func(body []byte) error {
		if seen[string(body)] {
			return Fatal(errors.New("twice"))
		}
		seen[string(body)] = true
		return nil
	})
	if !errors.Is(err, errCorrupt) || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("Open: %v, want corrupt at line 2", err)
	}
}

// FuzzReplay: replaying any bytes never panics, and what it accepts it
// accepts again after the torn tail is cut.
func FuzzReplay(f *testing.F) {
	f.Add([]byte(""))
	f.Add([]byte("{\"id\":\"dlg-1\",\"version\":1}\n"))
	f.Add([]byte("{\"id\":\"dlg-1\"}\n{\"id\":\"dlg-1\",\"version\":2}\n{\"id\""))
	f.Add([]byte("\n\n{}\n"))
	f.Add([]byte("{\"id\":\"x\"}\nnot json\n{\"id\":\"y\"}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		jf := &File{corrupt: errCorrupt}
		var ids []string
		good, total, _, err := jf.replay(bytes.NewReader(data), decodeID(&ids))
		if err != nil {
			if !errors.Is(err, errCorrupt) {
				t.Fatalf("error %v does not wrap the corrupt sentinel", err)
			}
			return
		}
		if total != int64(len(data)) || good > total {
			t.Fatalf("good %d total %d for %d bytes", good, total, len(data))
		}
		var again []string
		good2, total2, _, err := jf.replay(bytes.NewReader(data[:good]), decodeID(&again))
		if err != nil || good2 != good || total2 != good || len(again) != len(ids) {
			t.Fatalf("replay of the good prefix: %v good %d total %d, %d vs %d records", err, good2, total2, len(again), len(ids))
		}
	})
}

// TestOneWriter: a file open in one store cannot be opened by another
// until it is closed.
func TestOneWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.jsonl")
	var ids []string
	f, err := Open(path, Options{}, decodeID(&ids))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, Options{}, decodeID(&ids)); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	g, err := Open(path, Options{}, decodeID(&ids))
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	_ = g.Close()
}
