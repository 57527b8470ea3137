package jsonl

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// decodeRecords accepts JSON objects with an "id"; one with "more": true
// continues on the next line (ErrContinued), and a record's ids reach
// *ids only with its last line.
func decodeRecords(ids *[]string) func([]byte) error {
	var open []string
	return func(body []byte) error {
		var v struct {
			ID   string `json:"id"`
			More bool   `json:"more"`
		}
		if err := json.Unmarshal(body, &v); err != nil {
			return err
		}
		if v.ID == "" {
			return errors.New("no id")
		}
		open = append(open, v.ID)
		if v.More {
			return ErrContinued
		}
		*ids = append(*ids, open...)
		open = nil
		return nil
	}
}

// TestOpenCutsAnIncompleteRecord: a record of several lines that the file
// ends in (its last line missing, torn, or blank lines after a part) is
// cut whole with a torn line, and the cut logged with file, offset and
// bytes; whole records stay.
func TestOpenCutsAnIncompleteRecord(t *testing.T) {
	const whole = "{\"id\":\"a\"}\n{\"id\":\"b\",\"more\":true}\n{\"id\":\"c\"}\n"
	for _, tc := range []struct {
		name, tail string
		want       []string
	}{
		{"whole", "", []string{"a", "b", "c"}},
		{"a record whole and a single line", "{\"id\":\"d\"}\n", []string{"a", "b", "c", "d"}},
		{"last line missing", "{\"id\":\"d\",\"more\":true}\n", []string{"a", "b", "c"}},
		{"last line torn", "{\"id\":\"d\",\"more\":true}\n{\"id\":\"e\"", []string{"a", "b", "c"}},
		{"last line without its newline", "{\"id\":\"d\",\"more\":true}\n{\"id\":\"e\"}", []string{"a", "b", "c"}},
		{"two lines of three", "{\"id\":\"d\",\"more\":true}\n{\"id\":\"e\",\"more\":true}\n", []string{"a", "b", "c"}},
		{"blank lines after a part", "{\"id\":\"d\",\"more\":true}\n\n\n", []string{"a", "b", "c"}},
		{"garbage after a part", "{\"id\":\"d\",\"more\":true}\n{\"id\x00\x00", []string{"a", "b", "c"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "s.jsonl")
			if err := os.WriteFile(path, []byte(whole+tc.tail), 0o600); err != nil {
				t.Fatal(err)
			}
			var logs bytes.Buffer
			var ids []string
			f, err := Open(path, Options{Corrupt: errCorrupt, Logger: slog.New(slog.NewTextHandler(&logs, nil))}, decodeRecords(&ids))
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = f.Close() }()
			if !slices.Equal(ids, tc.want) {
				t.Fatalf("records %v, want %v", ids, tc.want)
			}
			wantSize := len(whole)
			if len(tc.want) == 4 {
				wantSize += len(tc.tail)
			}
			if fi, _ := os.Stat(path); fi.Size() != int64(wantSize) || f.TornBytes() != int64(len(whole)+len(tc.tail)-wantSize) {
				t.Fatalf("file %d bytes (%d torn), want %d", fi.Size(), f.TornBytes(), wantSize)
			}
			if f.TornBytes() > 0 {
				for _, w := range []string{"file=" + path, "offset=" + strconv.Itoa(len(whole)), "bytes=" + strconv.Itoa(len(tc.tail))} {
					if !strings.Contains(logs.String(), w) {
						t.Errorf("the cut's warning lacks %q:\n%s", w, logs.String())
					}
				}
			}
		})
	}
}

// TestFailedFsyncCutsTheLinesBack: when the fsync after AppendLines fails,
// the lines are cut off the file again (so a restart does not find them,
// or a part of them), the cut is fsynced, and the file refuses writes
// until it is reopened.
func TestFailedFsyncCutsTheLinesBack(t *testing.T) {
	for _, tc := range []struct {
		name     string
		failures int // fsyncs that fail
		cut      bool
	}{
		{"the cut is synced", 1, true},
		{"the cut cannot be synced", 2, false},
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
			size := f.size
			eio := errors.New("input/output error")
			fails := tc.failures
			f.Sync = func(*os.File) error {
				if fails > 0 {
					fails--
					return eio
				}
				return nil
			}
			err = f.AppendLines([]byte(`{"id":"b","more":true}`), []byte(`{"id":"c"}`))
			if !errors.Is(err, eio) || strings.Contains(err.Error(), "cut off again)") != tc.cut {
				t.Fatalf("AppendLines with a failing fsync: %v", err)
			}
			if fi, _ := os.Stat(path); fi.Size() != size {
				t.Fatalf("file %d bytes after the failed fsync, want %d (cut back)", fi.Size(), size)
			}
			if err := f.Append([]byte(`{"id":"d"}`)); !errors.Is(err, eio) {
				t.Fatalf("an append after the failed fsync: %v, want refused", err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			ids = nil
			f, err = Open(path, Options{Corrupt: errCorrupt}, decodeRecords(&ids))
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = f.Close() }()
			if !slices.Equal(ids, []string{"a"}) {
				t.Fatalf("after a reopen: %v, want [a]", ids)
			}
			if err := f.AppendLines([]byte(`{"id":"b","more":true}`), []byte(`{"id":"c"}`)); err != nil {
				t.Fatalf("append after the reopen: %v", err)
			}
		})
	}
}

// FuzzReplayRecords: replaying any bytes with records of several lines
// never panics; the good prefix ends at a record's end and replays whole.
func FuzzReplayRecords(f *testing.F) {
	f.Add([]byte("{\"id\":\"a\"}\n{\"id\":\"b\",\"more\":true}\n{\"id\":\"c\"}\n"))
	f.Add([]byte("{\"id\":\"a\"}\n{\"id\":\"b\",\"more\":true}\n{\"id\":\"c\""))
	f.Add([]byte("{\"id\":\"b\",\"more\":true}\n\n"))
	f.Add([]byte("{\"id\":\"b\",\"more\":true}\nnot json\n{\"id\":\"c\"}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		jf := &File{corrupt: errCorrupt}
		var ids []string
		good, total, why, err := jf.replay(bytes.NewReader(data), decodeRecords(&ids))
		if err != nil {
			if !errors.Is(err, errCorrupt) {
				t.Fatalf("error %v does not wrap the corrupt sentinel", err)
			}
			return
		}
		if total != int64(len(data)) || good > total || (good < total) != (why != nil) {
			t.Fatalf("good %d total %d why %v for %d bytes", good, total, why, len(data))
		}
		var again []string
		good2, total2, why2, err := jf.replay(bytes.NewReader(data[:good]), decodeRecords(&again))
		if err != nil || good2 != good || total2 != good || why2 != nil || !slices.Equal(again, ids) {
			t.Fatalf("replay of the good prefix: %v good %d total %d why %v, %v vs %v", err, good2, total2, why2, again, ids)
		}
	})
}
