package consent

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// unstoredLine is one line Close logs for activity it could not store.
type unstoredLine struct {
	Level    string    `json:"level"`
	Msg      string    `json:"msg"`
	Subject  string    `json:"subject"`
	At       time.Time `json:"at"`
	Subjects int       `json:"subjects"`
}

// unstoredLines returns the lines of logs about activity not stored.
func unstoredLines(t *testing.T, logs string) []unstoredLine {
	t.Helper()
	var out []unstoredLine
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		if line == "" {
			continue
		}
		var l unstoredLine
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if strings.Contains(l.Msg, "not stored at close") {
			out = append(out, l)
		}
	}
	return out
}

// TestCloseLogsActivityItCouldNotStore: with a real file store whose
// directory is gone (its activity file cannot be written), Close's final
// flush fails and every mark it could not store is logged at Error with
// its subject and time (marks the store took in memory at an earlier
// failed flush included), at most maxUnstoredLines lines and one with
// the count left; a flush that fails and later succeeds stores them and
// logs nothing.
func TestCloseLogsActivityItCouldNotStore(t *testing.T) {
	for _, tc := range []struct {
		name    string
		touched int
		earlier int  // of them, touched and flushed (failing) before Close
		restore bool // the directory comes back before Close
	}{
		{"a few marks: one line each", 3, 0, false},
		{"marks a failed periodic flush gave the store: logged too", 5, 2, false},
		{"many marks: bounded, then the count left", maxUnstoredLines + 50, 0, false},
		{"a failed flush, then the directory back: stored, nothing logged", 4, 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "state")
			path := filepath.Join(dir, "consent.jsonl")
			st, err := OpenFile(path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = st.Close() })
			var logs syncBuffer
			e := newLenv(t, st, "", func(c *LedgerConfig) {
				c.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
				c.ActivityFlushInterval = time.Hour // only the test and Close flush
			})
			want := map[string]time.Time{}
			touch := func(i int) {
				r := e.user(fmt.Sprintf("active-%03d", i))
				at := ledgerToday.Add(-time.Duration(i) * time.Minute)
				e.l.Touch(r, at)
				want[r.String()] = at
			}
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
			for i := range tc.earlier {
				touch(i)
			}
			if tc.earlier > 0 {
				if err := e.l.FlushActivity(context.Background()); err == nil {
					t.Fatal("a flush into a removed directory succeeded")
				}
			}
			for i := tc.earlier; i < tc.touched; i++ {
				touch(i)
			}
			if tc.restore {
				if err := os.MkdirAll(dir, 0o700); err != nil {
					t.Fatal(err)
				}
			}
			err = e.l.Close()
			lines := unstoredLines(t, logs.String())
			if tc.restore {
				if err != nil || len(lines) != 0 {
					t.Fatalf("Close: %v, logged %v; want stored, nothing logged", err, lines)
				}
				again, err := OpenFile(path)
				if err != nil {
					t.Fatal(err)
				}
				defer again.Close()
				all, _ := again.AllActivity(context.Background())
				for r, at := range all {
					if !want[r.String()].Equal(at) {
						t.Errorf("%s stored at %v, want %v", r, at, want[r.String()])
					}
				}
				if len(all) != len(want) {
					t.Fatalf("%d marks stored, want %d", len(all), len(want))
				}
				return
			}
			if err == nil {
				t.Fatal("Close succeeded with the activity file's directory gone")
			}
			var logged []string
			more := 0
			for _, l := range lines {
				if l.Level != "ERROR" {
					t.Errorf("logged at %s: %+v", l.Level, l)
				}
				if l.Subject == "" {
					more += l.Subjects
					continue
				}
				if !want[l.Subject].Equal(l.At) {
					t.Errorf("%s logged at %v, want %v", l.Subject, l.At, want[l.Subject])
				}
				logged = append(logged, l.Subject)
			}
			wantLines := min(tc.touched, maxUnstoredLines)
			if len(logged) != wantLines || more != tc.touched-wantLines {
				t.Fatalf("logged %d subjects and %d more, want %d and %d", len(logged), more, wantLines, tc.touched-wantLines)
			}
			if tc.touched > maxUnstoredLines && len(lines) != maxUnstoredLines+1 {
				t.Fatalf("%d lines, want %d", len(lines), maxUnstoredLines+1)
			}
			if !slices.IsSorted(logged) || len(slices.Compact(slices.Clone(logged))) != len(logged) {
				t.Fatalf("subjects logged out of order or twice: %v", logged)
			}
			e.l.Touch(e.user("late"), ledgerToday)
			if n := len(unstoredLines(t, logs.String())); n != len(lines) {
				t.Fatalf("a Touch after Close logged as not stored at close")
			}
		})
	}
}

// TestCloseLogsActivityPostgresGone: with a real PostgreSQL store whose
// pool is closed under the ledger (the database gone at shutdown), the
// batched write of Close's final flush fails and each mark is logged at
// Error with its subject and time.
func TestCloseLogsActivityPostgresGone(t *testing.T) {
	st, sfx := openPostgresT(t)
	var logs syncBuffer
	e := newLenv(t, st, sfx, func(c *LedgerConfig) {
		c.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
		c.ActivityFlushInterval = time.Hour
	})
	want := map[string]time.Time{}
	for i := range 3 {
		r := e.user(fmt.Sprintf("active-%d", i))
		at := ledgerToday.Add(-time.Duration(i) * time.Minute)
		e.l.Touch(r, at)
		want[r.String()] = at
	}
	_ = st.(*PostgresStore).Close()
	if err := e.l.Close(); err == nil {
		t.Fatal("Close succeeded with the store's pool closed")
	}
	lines := unstoredLines(t, logs.String())
	if len(lines) != len(want) {
		t.Fatalf("logged %d lines, want %d: %+v", len(lines), len(want), lines)
	}
	for _, l := range lines {
		if l.Level != "ERROR" || !want[l.Subject].Equal(l.At) {
			t.Errorf("logged %+v, want an error with the subject's time %v", l, want[l.Subject])
		}
	}
}
