package signalledger_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp/adminlog"
	"github.com/ciampdp/pdp/pdp/recorder"
	"github.com/ciampdp/pdp/pdp/signalledger"
	"github.com/ciampdp/pdp/pdp/signals"
	"github.com/ciampdp/pdp/pdp/trail"
)

// crashSETs are a one-event SET and a two-event SET of bob.
func crashSETs() (one, two *signals.SET) {
	ev := func(short string) signals.SETEvent {
		return signals.SETEvent{Type: signals.RISCPrefix + short, Subject: diskBob(), Time: diskNow, Payload: []byte("{}")}
	}
	one = &signals.SET{Issuer: diskIss, JTI: "jti-one", IssuedAt: diskNow, Events: []signals.SETEvent{ev("account-purged")}}
	two = &signals.SET{Issuer: diskIss, JTI: "jti-two", IssuedAt: diskNow, Events: []signals.SETEvent{ev("account-disabled"), ev("credential-compromise")}}
	return one, two
}

// openCrashLedger is a ledger on the file store at path, journalled in
// the trail at dir.
func openCrashLedger(t *testing.T, path, dir string) (*signalledger.FileStore, *signalledger.Ledger, *trail.FileLog) {
	t.Helper()
	fs, err := signalledger.OpenFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fs.Close() })
	tl, err := trail.OpenFile(dir, trail.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tl.Close() })
	rec, err := recorder.NewRecorder(nil, tl, recorder.RecorderOptions{Instance: "test"})
	if err != nil {
		t.Fatal(err)
	}
	j := &adminlog.Journal{}
	j.Set(rec)
	l, err := signalledger.NewLedger(context.Background(), signalledger.LedgerConfig{Store: fs, Journal: j, Now: func() time.Time { return diskNow }})
	if err != nil {
		t.Fatal(err)
	}
	return fs, l, tl
}

// TestCrashInASETCutsTheWholeSET: a crash that leaves a two-event SET's
// second line partly (or not at all) in the file, or a torn line after
// it, reopens without any event of that SET (cut, with the torn bytes);
// the start-up check names the SET as missing, and repair stores it
// whole from the trail, after which the check passes and a reopen keeps
// it.
func TestCrashInASETCutsTheWholeSET(t *testing.T) {
	for _, tc := range []struct {
		name string
		cut  func(data []byte, second int) []byte // second: where the SET's second line starts
	}{
		{"in the second line", func(d []byte, s int) []byte { return d[:s+(len(d)-s)/2] }},
		{"before the second line", func(d []byte, s int) []byte { return d[:s] }},
		{"second line without its newline", func(d []byte, _ int) []byte { return d[:len(d)-1] }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			path := filepath.Join(dir, "signals.jsonl")
			fs, l, tl := openCrashLedger(t, path, filepath.Join(dir, "trail"))
			one, two := crashSETs()
			if _, err := l.Receive(ctx, one); err != nil {
				t.Fatal(err)
			}
			if _, err := l.Receive(ctx, two); err != nil {
				t.Fatal(err)
			}
			if err := fs.Close(); err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			lines := bytes.SplitAfter(data, []byte("\n"))
			if len(lines) != 4 { // three lines and the empty rest
				t.Fatalf("the file holds %d lines:\n%s", len(lines)-1, data)
			}
			second := len(lines[0]) + len(lines[1])
			cut := tc.cut(data, second)
			if err := os.WriteFile(path, cut, 0o600); err != nil {
				t.Fatal(err)
			}

			fs2, err := signalledger.OpenFile(path, nil)
			if err != nil {
				t.Fatalf("reopen after the crash: %v", err)
			}
			defer func() { _ = fs2.Close() }()
			evs, _ := fs2.Since(ctx, 0)
			if len(evs) != 1 || evs[0].JTI != "jti-one" {
				t.Fatalf("after the crash the store holds %d events %v, want jti-one's only", len(evs), evs)
			}
			if fi, _ := os.Stat(path); fi.Size() != int64(len(lines[0])) {
				t.Fatalf("the file is %d bytes after the cut, want %d (the SET's lines cut)", fi.Size(), len(lines[0]))
			}
			rep, err := adminlog.CheckStores(ctx, tl, adminlog.Stores{Signals: fs2})
			if err != nil || len(rep.Missing) != 1 || rep.Missing[0].Signal == nil || rep.Missing[0].Signal.JTI != "jti-two" {
				t.Fatalf("check after the crash: missing %v, %v; want jti-two", rep.Missing, err)
			}
			applied, err := adminlog.RepairStores(ctx, rep, adminlog.Writers{Signals: fs2}, nil)
			if err != nil || len(applied) != 1 {
				t.Fatalf("repair: %d applied, %v", len(applied), err)
			}
			if rep, err := adminlog.CheckStores(ctx, tl, adminlog.Stores{Signals: fs2}); err != nil || len(rep.Missing) != 0 {
				t.Fatalf("check after the repair: missing %v, %v", rep.Missing, err)
			}
			if err := fs2.Close(); err != nil {
				t.Fatal(err)
			}
			fs3, err := signalledger.OpenFile(path, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = fs3.Close() }()
			if evs, _ := fs3.Since(ctx, 0); len(evs) != 3 {
				t.Fatalf("after the repair and a reopen: %d events, want 3", len(evs))
			}
		})
	}
}

// TestFailedFsyncStoresNoPartOfASET: when the fsync after a two-event
// SET's write fails, the store cuts its lines off the file again: the
// ledger records the SET as not applied, a reopened file holds no event
// of it (none that the not_applied record would hide), the start-up check
// passes, and the transmitter's retry after the restart is stored whole.
func TestFailedFsyncStoresNoPartOfASET(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "signals.jsonl")
	fs, l, tl := openCrashLedger(t, path, filepath.Join(dir, "trail"))
	one, two := crashSETs()
	if _, err := l.Receive(ctx, one); err != nil {
		t.Fatal(err)
	}
	eio := errors.New("input/output error")
	failed := false
	signalledger.SetFileSync(fs, func(f *os.File) error {
		if !failed {
			failed = true
			return eio
		}
		return f.Sync()
	})
	if _, err := l.Receive(ctx, two); !errors.Is(err, eio) {
		t.Fatalf("receive with a failing fsync: %v", err)
	}
	if evs, _ := fs.Since(ctx, 0); len(evs) != 1 {
		t.Fatalf("the store holds %d events after the failed fsync, want 1", len(evs))
	}
	if err := fs.Close(); err != nil {
		t.Fatal(err)
	}
	fs2, err := signalledger.OpenFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = fs2.Close() }()
	if evs, _ := fs2.Since(ctx, 0); len(evs) != 1 || evs[0].JTI != "jti-one" {
		t.Fatalf("the reopened file holds %v, want jti-one's event only", evs)
	}
	if rep, err := adminlog.CheckStores(ctx, tl, adminlog.Stores{Signals: fs2}); err != nil || len(rep.Missing) != 0 {
		t.Fatalf("check after the failed fsync: missing %v, %v", rep.Missing, err)
	}
	j := &adminlog.Journal{}
	rec, err := recorder.NewRecorder(nil, tl, recorder.RecorderOptions{Instance: "test"})
	if err != nil {
		t.Fatal(err)
	}
	j.Set(rec)
	l2, err := signalledger.NewLedger(ctx, signalledger.LedgerConfig{Store: fs2, Journal: j, Now: func() time.Time { return diskNow }})
	if err != nil {
		t.Fatal(err)
	}
	if stored, err := l2.Receive(ctx, two); err != nil || len(stored) != 2 {
		t.Fatalf("the retry: %d events stored, %v", len(stored), err)
	}
}

// TestSETLinesOutOfTurnAreCorrupt: lines of a SET that no crash explains
// (a part of a SET followed by another SET, a numbering that does not
// follow) are a corrupt file, not a torn tail; lines without the SET's
// numbering (a file of the older format) are whole SETs.
func TestSETLinesOutOfTurnAreCorrupt(t *testing.T) {
	ev := func(pos int, jti string, part, of int) string {
		s := fmt.Sprintf(`{"position":%d,"transmitter":%q,"jti":%q,"type":"%saccount-disabled","time":"2026-12-07T12:00:00Z","issued_at":"2026-12-07T12:00:00Z","received_at":"2026-12-07T12:00:00Z"`,
			pos, diskIss, jti, signals.RISCPrefix)
		if of > 0 {
			s += fmt.Sprintf(`,"set_event":%d,"set_events":%d`, part, of)
		}
		return s + "}\n"
	}
	for _, tc := range []struct {
		name, file string
		events     int // -1: corrupt
	}{
		{"older format", ev(1, "a", 0, 0) + ev(2, "b", 0, 0) + ev(3, "b", 0, 0), 3},
		{"numbered", ev(1, "a", 1, 2) + ev(2, "a", 2, 2) + ev(3, "b", 0, 0), 3},
		{"a part, then a single SET", ev(1, "a", 1, 2) + ev(2, "b", 0, 0), -1},
		{"a part, then another SET's first", ev(1, "a", 1, 2) + ev(2, "b", 1, 2) + ev(3, "b", 2, 2), -1},
		{"another jti's second", ev(1, "a", 1, 2) + ev(2, "b", 2, 2), -1},
		{"a second without a first", ev(1, "a", 2, 2) + ev(2, "b", 0, 0), -1},
		{"numbered beyond its count", ev(1, "a", 3, 2) + ev(2, "b", 0, 0), -1},
		{"a part at the end", ev(1, "a", 0, 0) + ev(2, "b", 1, 3) + ev(3, "b", 2, 3), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "signals.jsonl")
			if err := os.WriteFile(path, []byte(tc.file), 0o600); err != nil {
				t.Fatal(err)
			}
			fs, err := signalledger.OpenFile(path, nil)
			if tc.events < 0 {
				if !errors.Is(err, signalledger.ErrCorrupt) {
					t.Fatalf("OpenFile: %v, want ErrCorrupt", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = fs.Close() }()
			if evs, _ := fs.Since(context.Background(), 0); len(evs) != tc.events {
				t.Fatalf("%d events, want %d", len(evs), tc.events)
			}
		})
	}
}
