package consent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fileWithEvents writes a ledger file with n events and returns its path
// and the events as stored.
func fileWithEvents(t *testing.T, n int) (string, []Event) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "consent.jsonl")
	s, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []Event
	for i := range n {
		e := storeEvent(fmt.Sprintf("cev-%d", i), Ref{"user", fmt.Sprintf("u%d", i%2)}, EventGiven, "financial_advice", ledgerToday)
		got, err := s.Append(context.Background(), e)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return path, out
}

func allEvents(t *testing.T, s *FileStore) []Event {
	t.Helper()
	evs, err := s.EventsAfter(context.Background(), 0, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func TestFileStoreReopen(t *testing.T) {
	path, want := fileWithEvents(t, 3)
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("file mode %o, want 600", perm)
	}
	s, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := allEvents(t, s); jsonOf(t, got) != jsonOf(t, want) {
		t.Errorf("after reopen:\n%s\nwant\n%s", jsonOf(t, got), jsonOf(t, want))
	}
	e, err := s.Append(context.Background(), storeEvent("cev-next", Ref{"user", "u0"}, EventRefused, "marketing", ledgerToday))
	if err != nil || e.Position != 4 {
		t.Errorf("Append after reopen: position %d, %v; want 4", e.Position, err)
	}
}

func TestFileStoreTornLastLine(t *testing.T) {
	for _, torn := range []string{`{"position":4,"id":"cev-3","ty`, `{"position":4,"id":"cev-3","type":"given","subject":{"type":"user","id":"u"}}`} {
		path, want := fileWithEvents(t, 3)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = f.WriteString(torn) // no newline: the write never returned
		_ = f.Close()
		s, err := OpenFile(path)
		if err != nil {
			t.Fatalf("OpenFile with a torn last line: %v", err)
		}
		if s.TornBytes() != int64(len(torn)) {
			t.Errorf("TornBytes = %d, want %d", s.TornBytes(), len(torn))
		}
		if got := allEvents(t, s); jsonOf(t, got) != jsonOf(t, want) {
			t.Errorf("events after dropping the torn line:\n%s", jsonOf(t, got))
		}
		if e, err := s.Append(context.Background(), storeEvent("cev-3", Ref{"user", "u1"}, EventRefused, "marketing", ledgerToday)); err != nil || e.Position != 4 {
			t.Errorf("Append after the torn line: %d, %v", e.Position, err)
		}
		_ = s.Close()
		s, err = OpenFile(path)
		if err != nil {
			t.Fatalf("reopen after repair: %v", err)
		}
		if n := len(allEvents(t, s)); n != 4 || s.TornBytes() != 0 {
			t.Errorf("after repair: %d events, %d torn bytes", n, s.TornBytes())
		}
		_ = s.Close()
	}
}

func TestFileStoreCorrupt(t *testing.T) {
	tests := []struct {
		name   string
		change func(lines []string) []string
		want   string
	}{
		{"bad json in the middle", func(l []string) []string { l[1] = `{"position": 2, "id": ` + "\n"; return l }, "line 2"},
		{"no id", func(l []string) []string { l[1] = `{"position":2,"type":"given"}` + "\n"; return l }, "line 2: consent: append: event without id"},
		{"positions out of order", func(l []string) []string { l[1], l[2] = l[2], l[1]; return l }, "line 3: position 2 does not follow 3"},
		{"a position twice", func(l []string) []string { l[2] = l[1]; return l }, "line 3: position 2 does not follow 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, _ := fileWithEvents(t, 3)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.SplitAfter(string(b), "\n")
			lines = tt.change(lines[:3])
			if err := os.WriteFile(path, []byte(strings.Join(lines, "")), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err = OpenFile(path)
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("OpenFile = %v, want ErrCorrupt naming %q", err, tt.want)
			}
		})
	}
}

func TestFileStoreFsyncFailure(t *testing.T) {
	s, err := OpenFile(filepath.Join(t.TempDir(), "c.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.file.Sync = func(*os.File) error { return errors.New("disk on fire") }
	ctx := context.Background()
	if _, err := s.Append(ctx, storeEvent("cev-1", Ref{"user", "u"}, EventRefused, "marketing", ledgerToday)); err == nil {
		t.Fatal("Append with a failing fsync: no error")
	}
	s.file.Sync = (*os.File).Sync
	if _, err := s.Append(ctx, storeEvent("cev-2", Ref{"user", "u"}, EventRefused, "marketing", ledgerToday)); err == nil || !strings.Contains(err.Error(), "refuses writes") {
		t.Errorf("Append after a failed fsync = %v, want refused", err)
	}
}

func TestFileStoreActivityFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.jsonl")
	s, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	heidi, ivan := Ref{"user", "heidi"}, Ref{"user", "ivan:x"}
	_ = s.SetActivity(ctx, heidi, ymd(2023, 1, 10))
	if err := s.FlushActivity(); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path + ".activity")
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("activity file: %v, %v", info, err)
	}
	_ = s.SetActivity(ctx, ivan, ymd(2026, 11, 1)) // flushed by Close
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for who, want := range map[Ref]time.Time{heidi: ymd(2023, 1, 10), ivan: ymd(2026, 11, 1)} {
		if at, ok, _ := s.Activity(ctx, who); !ok || !at.Equal(want) {
			t.Errorf("Activity(%s) after reopen = %v, %v; want %v", who, at, ok, want)
		}
	}
	if err := os.WriteFile(path+".activity", []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = s.Close() // one store at a time on a file
	if _, err := OpenFile(path); !errors.Is(err, ErrCorrupt) {
		t.Errorf("OpenFile with a corrupt activity file = %v, want ErrCorrupt", err)
	}
}

// helperProcessEnv makes the test binary a writer that TestFileStoreSIGKILL
// kills (see TestMain).
const helperProcessEnv = "PDP_CONSENT_KILL_HELPER"

// runHelperProcess appends events to the file named by helperProcessEnv
// and prints "position id" after each Append returned, until it is killed.
func runHelperProcess() int {
	s, err := OpenFile(os.Getenv(helperProcessEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	w := bufio.NewWriter(os.Stdout)
	for i := 0; i < 100000; i++ {
		e := storeEvent(fmt.Sprintf("cev-kill-%d", i), Ref{"user", "k"}, EventGiven, "marketing", ledgerToday)
		got, err := s.Append(context.Background(), e)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		fmt.Fprintf(w, "%d %s\n", got.Position, got.ID)
		_ = w.Flush()
	}
	return 0
}

// TestFileStoreSIGKILL kills a writer process right after Appends returned
// and finds every acknowledged event after reopening the file.
func TestFileStoreSIGKILL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.jsonl")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperProcessEnv+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[string]int64{}
	sc := bufio.NewScanner(out)
	for len(acked) < 30 && sc.Scan() {
		pos, id, _ := strings.Cut(sc.Text(), " ")
		p, _ := strconv.ParseInt(pos, 10, 64)
		acked[id] = p
	}
	_ = cmd.Process.Kill() // SIGKILL
	_ = cmd.Wait()
	if len(acked) < 30 {
		t.Fatalf("the writer acknowledged %d appends before it stopped", len(acked))
	}
	s, err := OpenFile(path)
	if err != nil {
		t.Fatalf("reopen after SIGKILL: %v", err)
	}
	defer s.Close()
	for id, pos := range acked {
		e, err := s.Event(context.Background(), id)
		if err != nil || e.Position != pos {
			t.Errorf("acknowledged %s at %d: after SIGKILL %d, %v", id, pos, e.Position, err)
		}
	}
	t.Logf("%d acknowledged, %d on reopen, %d torn bytes dropped", len(acked), len(allEvents(t, s)), s.TornBytes())
}

// The ledger's own files survive a restart: what Give wrote, Check reads
// after reopening the store with a new Ledger.
func TestLedgerFileRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.jsonl")
	st, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	e := newLenv(t, st, "")
	alice := e.user("alice")
	g := e.give(advice(alice))
	e.l.Touch(alice, ledgerToday)
	if err := e.l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st, err = OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	e2 := newLenv(t, st, "")
	if res := e2.check(alice, "financial_advice", "advisor-portal", "DE"); !res.Allowed || res.GrantID != g.GrantID || res.Position != g.Position {
		t.Errorf("after restart: %+v", res)
	}
	if at, ok, _ := st.Activity(context.Background(), alice); !ok || !at.Equal(ledgerToday) {
		t.Errorf("activity after restart = %v, %v", at, ok)
	}
}
