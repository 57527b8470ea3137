package signalledger_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp/adminlog"
	"github.com/ciampdp/pdp/pdp/recorder"
	"github.com/ciampdp/pdp/pdp/signalledger"
	"github.com/ciampdp/pdp/pdp/signals"
	"github.com/ciampdp/pdp/pdp/trail"
)

var (
	diskIss = "https://risk.northbank.example/"
	diskNow = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
)

func diskBob() *signals.SubjectID {
	return &signals.SubjectID{Format: signals.FormatIssSub, Iss: "https://idp.northbank.example/", Sub: "bob"}
}

// fullDisk is the real file store on a disk that fills up within the
// next SET: while its Append runs, no file of the process may grow past
// room bytes beyond the store file's size (RLIMIT_FSIZE: the write fails
// with EFBIG, as it would with ENOSPC).
type fullDisk struct {
	*signalledger.FileStore
	path string
	room int64
}

func (d fullDisk) Append(ctx context.Context, evs []signals.Event) ([]signals.Event, error) {
	fi, err := os.Stat(d.path)
	if err != nil {
		return nil, err
	}
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		return nil, err
	}
	signal.Ignore(syscall.SIGXFSZ)
	defer signal.Reset(syscall.SIGXFSZ)
	lim := syscall.Rlimit{Cur: uint64(fi.Size() + d.room), Max: old.Max}
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		return nil, err
	}
	defer func() { _ = syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old) }()
	return d.FileStore.Append(ctx, evs)
}

// TestDiskFullKeepsNoPartOfASET: a two-event SET whose second line does
// not fit on the disk leaves neither event in the file store (in memory
// or in the file), the ledger records it as not applied, the start-up
// check passes, and the transmitter's retry is taken whole (not refused
// as received before).
func TestDiskFullKeepsNoPartOfASET(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "signals.jsonl")
	fs, err := signalledger.OpenFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = fs.Close() }()
	// Fill the file well past the trail's size, so that the limit leaves
	// the trail's files room (the limit is the process's).
	pad := make([]signals.Event, 2000)
	for i := range pad {
		pad[i] = signals.Event{Transmitter: diskIss, JTI: "pad", Type: signals.RISCPrefix + "account-enabled", Time: diskNow,
			IssuedAt: diskNow, ReceivedAt: diskNow, Subject: diskBob()}
	}
	if _, err := fs.Append(ctx, pad); err != nil {
		t.Fatal(err)
	}
	tl, err := trail.OpenFile(filepath.Join(dir, "trail"), trail.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tl.Close() }()
	rec, err := recorder.NewRecorder(nil, tl, recorder.RecorderOptions{Instance: "test"})
	if err != nil {
		t.Fatal(err)
	}
	j := &adminlog.Journal{}
	j.Set(rec)

	two := &signals.SET{Issuer: diskIss, JTI: "jti-two", IssuedAt: diskNow, Events: []signals.SETEvent{
		{Type: signals.RISCPrefix + "account-disabled", Subject: diskBob(), Time: diskNow, Payload: []byte("{}")},
		{Type: signals.RISCPrefix + "credential-compromise", Subject: diskBob(), Time: diskNow, Payload: []byte("{}")},
	}}
	line, _ := json.Marshal(signals.Event{Position: 9999, Transmitter: diskIss, JTI: two.JTI, Type: two.Events[0].Type,
		Time: diskNow, IssuedAt: diskNow, ReceivedAt: diskNow, Subject: diskBob(), Payload: []byte("{}")})
	l, err := signalledger.NewLedger(ctx, signalledger.LedgerConfig{Store: fullDisk{fs, path, int64(len(line)) + 40}, Journal: j,
		Now: func() time.Time { return diskNow }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Receive(ctx, two); err == nil || !errors.Is(err, syscall.EFBIG) {
		t.Fatalf("receive on a full disk: %v", err)
	}
	if evs, _ := fs.Since(ctx, int64(len(pad))); len(evs) != 0 {
		t.Fatalf("the store kept %d events of the SET", len(evs))
	}
	if err := fs.Close(); err != nil {
		t.Fatal(err)
	}
	fs2, err := signalledger.OpenFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = fs2.Close() }()
	if evs, _ := fs2.Since(ctx, int64(len(pad))); len(evs) != 0 {
		t.Fatalf("the file kept %d events of the SET", len(evs))
	}
	rep, err := adminlog.CheckStores(ctx, tl, adminlog.Stores{Signals: fs2})
	if err != nil || len(rep.Missing) != 0 {
		t.Fatalf("check after the failed SET: missing %v, %v", rep.Missing, err)
	}
	// Restarted (a new ledger on the reopened file), the retry is taken.
	l2, err := signalledger.NewLedger(ctx, signalledger.LedgerConfig{Store: fs2, Journal: j, Now: func() time.Time { return diskNow }})
	if err != nil {
		t.Fatal(err)
	}
	if stored, err := l2.Receive(ctx, two); err != nil || len(stored) != 2 {
		t.Fatalf("the retry: %d events stored, %v", len(stored), err)
	}
	rep, err = adminlog.CheckStores(ctx, tl, adminlog.Stores{Signals: fs2})
	if err != nil || len(rep.Missing) != 0 {
		t.Fatalf("check after the retry: missing %v, %v", rep.Missing, err)
	}
}
