package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ciampdp/pdp/pdp/trail"
)

// record is a record the rules accept: a fail-closed deny of sidecar sc at
// spool seq n, with the body's decision as given.
func record(t *testing.T, sc string, n uint64, allowed bool) Record {
	t.Helper()
	id := uuid.Must(uuid.NewV7())
	sec, nsec := id.Time().UnixTime()
	at := time.Unix(sec, nsec).UTC()
	body, err := json.Marshal(map[string]any{
		"decision_id": id.String(), "time": at.Format(time.RFC3339Nano), "sidecar": sc,
		"decision": allowed, "source": "fail_closed",
	})
	if err != nil {
		t.Fatal(err)
	}
	return Record{Seq: n, ID: id.String(), Time: at, Body: body}
}

// openIngest opens the file trail in dir (one writer at a time: close
// it before opening the directory again) and an Ingest on it.
func openIngest(t *testing.T, dir string) (*Ingest, func()) {
	t.Helper()
	l, err := trail.OpenFile(dir, trail.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	closeLog := func() { _ = l.Close() }
	t.Cleanup(closeLog)
	in, err := New(context.Background(), l, l, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return in, closeLog
}

// TestIngestDirect: the rules, exactly once and the bound sidecar ids,
// called on the service without HTTP; the high-water marks survive a
// reopen.
func TestIngestDirect(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "trail")
	in, closeLog := openIngest(t, dir)
	recs := []Record{record(t, "sc", 1, false), record(t, "sc", 2, false)}
	for _, tc := range []struct {
		name    string
		app, sc string
		recs    []Record
		want    Result
		err     error
	}{
		{"stored", "app", "sc", recs, Result{Ingested: 2, Acked: 2}, nil},
		{"a retry is skipped", "app", "sc", recs, Result{Skipped: 2, Acked: 2}, nil},
		{"a fail-closed allow is refused", "app", "sc", []Record{record(t, "sc", 3, true)}, Result{}, ErrRefused},
		{"another application's sidecar id", "other", "sc", []Record{record(t, "sc", 1, false)}, Result{}, ErrSidecarBound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := in.Ingest(ctx, tc.app, tc.sc, tc.recs)
			if !errors.Is(err, tc.err) || (tc.err == nil && got != tc.want) {
				t.Fatalf("%+v %v, want %+v %v", got, err, tc.want, tc.err)
			}
		})
	}
	closeLog()
	again, _ := openIngest(t, dir)
	if got := again.Acked("app", "sc"); got != 2 {
		t.Errorf("after a reopen acked %d, want 2", got)
	}
}
