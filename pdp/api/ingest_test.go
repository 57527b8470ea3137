package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ciampdp/pdp/pdp/ingest"
	"github.com/ciampdp/pdp/pdp/trail"
)

// ingestEnv is a server that ingests sidecar records into a file trail.
type ingestEnv struct {
	t   *testing.T
	url string
	log *trail.FileLog
	in  *ingest.Ingest
}

// newIngestEnv opens (or reopens) the trail in dir and serves it.
func newIngestEnv(t *testing.T, dir string) *ingestEnv {
	t.Helper()
	l, err := trail.OpenFile(dir, trail.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	in, err := ingest.New(context.Background(), l, l, ingest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{APIKeys: map[string]string{digest("key-app"): "mobile-banking", digest("key-web"): "web-banking"}},
		Deps{Decider: &fakeDecider{}, Policies: loadedPolicies(), Registry: prometheus.NewRegistry(), Ingest: in})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(checkedByContract(t, srv.Handler()))
	t.Cleanup(hs.Close)
	return &ingestEnv{t: t, url: hs.URL, log: l, in: in}
}

// post sends an ingest request and returns its status and body.
func (e *ingestEnv) post(key, sidecar, body string) (int, string) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.url+TrailIngestPath, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if sidecar != "" {
		req.Header.Set(SidecarIDHeader, sidecar)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// ingest posts a batch that must succeed and returns its result.
func (e *ingestEnv) ingest(key, sidecar, body string) ingest.Result {
	e.t.Helper()
	code, b := e.post(key, sidecar, body)
	var res ingest.Result
	if err := json.Unmarshal([]byte(b), &res); code != http.StatusOK || err != nil {
		e.t.Fatalf("ingest: %d %s", code, b)
	}
	return res
}

// sidecarRecords lists the trail's sidecar records.
func (e *ingestEnv) sidecarRecords() []trail.Record {
	e.t.Helper()
	var out []trail.Record
	if err := e.log.Scan(0, e.log.Size(), func(r trail.Record) error {
		if r.Kind == trail.KindSidecar {
			out = append(out, r)
		}
		return nil
	}); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// ingestIDs keeps the decision id of each sidecar's spool seq, so that a
// batch sent again carries the same records.
var ingestIDs sync.Map

// ingestRec is a record the PDP accepts: a fail-closed deny of sidecar sc at
// spool seq n (the same id and time for the same sc and n), with the extra
// body fields given (",\"k\":v").
func ingestRec(sc string, n uint64, extra string) string {
	v, _ := ingestIDs.LoadOrStore(fmt.Sprintf("%s/%d", sc, n), uuid.Must(uuid.NewV7()).String())
	id := v.(string)
	sec, nsec := uuid.MustParse(id).Time().UnixTime()
	at := time.Unix(sec, nsec).UTC().Format(time.RFC3339Nano)
	return fmt.Sprintf(`{"seq":%d,"id":%q,"time":%q,"body":{"decision_id":%q,"time":%q,"sidecar":%q,"decision":false,"source":"fail_closed","n":%d%s}}`,
		n, id, at, id, at, sc, n, extra)
}

// batch builds an ingest body of sidecar sc's given spool seqs.
func batch(sc string, seqs ...uint64) string {
	recs := make([]string, len(seqs))
	for i, s := range seqs {
		recs[i] = ingestRec(sc, s, "")
	}
	return `{"records":[` + strings.Join(recs, ",") + `]}`
}

func TestIngestExactlyOnce(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "trail")
	e := newIngestEnv(t, dir)

	if got := e.ingest("key-app", "sc-1", batch("sc-1", 1, 2, 3)); got != (ingest.Result{Ingested: 3, Acked: 3}) {
		t.Fatalf("first batch: %+v", got)
	}
	recs := e.sidecarRecords()
	if len(recs) != 3 {
		t.Fatalf("%d sidecar records in the trail, want 3", len(recs))
	}
	var b trail.SidecarBody
	if err := json.Unmarshal(recs[1].Body, &b); err != nil {
		t.Fatal(err)
	}
	var r2 struct {
		DecisionID string `json:"decision_id"`
		N          int    `json:"n"`
	}
	if err := json.Unmarshal(b.Record, &r2); err != nil {
		t.Fatal(err)
	}
	if recs[1].ID != r2.DecisionID || b.Sidecar != "sc-1" || b.Application != "mobile-banking" || b.SpoolSeq != 2 || r2.N != 2 {
		t.Fatalf("record: %+v body %s", recs[1], recs[1].Body)
	}
	// One Append: consecutive leaves.
	if recs[2].Seq != recs[0].Seq+2 {
		t.Errorf("records at %d…%d: not one batch", recs[0].Seq, recs[2].Seq)
	}

	if got := e.ingest("key-app", "sc-1", batch("sc-1", 1, 2, 3)); got != (ingest.Result{Skipped: 3, Acked: 3}) {
		t.Fatalf("the same batch again: %+v", got)
	}
	if got := e.ingest("key-app", "sc-1", batch("sc-1", 2, 3, 4, 5)); got != (ingest.Result{Ingested: 2, Skipped: 2, Acked: 5}) {
		t.Fatalf("an overlapping batch: %+v", got)
	}
	if got := e.ingest("key-app", "sc-1", batch("sc-1", 9)); got != (ingest.Result{Ingested: 1, Acked: 9}) {
		t.Fatalf("a batch after a gap: %+v", got)
	}
	if got := e.ingest("key-app", "sc-1", `{"records":[]}`); got != (ingest.Result{Acked: 9}) {
		t.Fatalf("an empty batch: %+v", got)
	}
	// A sidecar id belongs to the application that stored records under
	// it first.
	if code, body := e.post("key-web", "sc-1", batch("sc-1", 1, 2)); code != http.StatusForbidden {
		t.Fatalf("another application's sidecar of the same id: %d %s", code, body)
	}
	if got := e.ingest("key-app", "sc-2", batch("sc-2", 1)); got != (ingest.Result{Ingested: 1, Acked: 1}) {
		t.Fatalf("another sidecar: %+v", got)
	}
	if n := len(e.sidecarRecords()); n != 7 {
		t.Fatalf("%d sidecar records, want 7", n)
	}

	// A restart: the positions come back from the trail.
	srvBefore := e.log.Size()
	if err := e.log.Close(); err != nil {
		t.Fatal(err)
	}
	e = newIngestEnv(t, dir)
	if e.log.Size() != srvBefore {
		t.Fatalf("reopened trail has %d records, want %d", e.log.Size(), srvBefore)
	}
	for _, tc := range []struct {
		app, sidecar string
		want         uint64
	}{{"mobile-banking", "sc-1", 9}, {"web-banking", "sc-1", 0}, {"mobile-banking", "sc-2", 1}, {"mobile-banking", "sc-3", 0}} {
		if got := e.in.Acked(tc.app, tc.sidecar); got != tc.want {
			t.Errorf("after reopening, %s/%s acked %d, want %d", tc.app, tc.sidecar, got, tc.want)
		}
	}
	if got := e.ingest("key-app", "sc-1", batch("sc-1", 1, 2, 3, 4, 5, 9, 10)); got != (ingest.Result{Ingested: 1, Skipped: 6, Acked: 10}) {
		t.Fatalf("a retry after the restart: %+v", got)
	}
	if n := len(e.sidecarRecords()); n != 8 {
		t.Fatalf("%d sidecar records, want 8", n)
	}
	// The binding survives the restart.
	if code, body := e.post("key-web", "sc-1", batch("sc-1", 1)); code != http.StatusForbidden {
		t.Fatalf("another application's sidecar of the same id, after the restart: %d %s", code, body)
	}

	// The trail fails: 503, and nothing counts as stored.
	if err := e.log.Close(); err != nil {
		t.Fatal(err)
	}
	code, body := e.post("key-app", "sc-1", batch("sc-1", 11))
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "trail") {
		t.Fatalf("with the trail closed: %d %s", code, body)
	}
	if got := e.in.Acked("mobile-banking", "sc-1"); got != 10 {
		t.Errorf("acked %d after a failed append, want 10", got)
	}
}

func TestIngestRedacts(t *testing.T) {
	l, err := trail.OpenFile(t.TempDir(), trail.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	red, err := trail.NewRedactor([]trail.RedactionRule{{Path: "request.context.ip", Method: trail.RedactHash}}, make([]byte, trail.MinHashKey), nil)
	if err != nil {
		t.Fatal(err)
	}
	in, err := ingest.New(context.Background(), l, l, ingest.Options{Redact: red.Redact})
	if err != nil {
		t.Fatal(err)
	}
	recs, err := decodeIngest([]byte(`{"records":[` + ingestRec("sc", 1, `,"request":{"context":{"ip":"10.1.2.3"}}`) + `]}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := in.Ingest(context.Background(), "app", "sc", recs); err != nil {
		t.Fatal(err)
	}
	rec, err := l.Get(0)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(rec.Body), "10.1.2.3") {
		t.Fatalf("the sidecar record was stored unredacted: %s", rec.Body)
	}
}

func TestIngestRequests(t *testing.T) {
	e := newIngestEnv(t, t.TempDir())
	rec := func(fields string) string { return `{"records":[` + fields + `]}` }
	good := ingestRec("sc", 1, "")
	for _, tc := range []struct {
		name, key, sidecar, body string
		code                     int
		want                     string
	}{
		{"no key", "", "sc", batch("sc", 1), http.StatusUnauthorized, "API key"},
		{"a wrong key", "nope", "sc", batch("sc", 1), http.StatusUnauthorized, "API key"},
		{"no sidecar id", "key-app", "", batch("sc", 1), http.StatusBadRequest, SidecarIDHeader},
		{"not JSON", "key-app", "sc", `{"records":`, http.StatusBadRequest, "bad sidecar request"},
		{"not an object", "key-app", "sc", `[]`, http.StatusBadRequest, "bad sidecar request"},
		{"no records", "key-app", "sc", `{}`, http.StatusBadRequest, "records is missing"},
		{"an unknown top-level field", "key-app", "sc", `{"records":[],"more":1}`, http.StatusBadRequest, "more"},
		{"data after the object", "key-app", "sc", `{"records":[]} {}`, http.StatusBadRequest, "after"},
		{"no seq", "key-app", "sc", rec(`{"id":"d","time":"2026-03-01T10:00:00Z","body":{}}`), http.StatusBadRequest, "records[0]: seq"},
		{"seq 0", "key-app", "sc", rec(`{"seq":0,"id":"d","time":"2026-03-01T10:00:00Z","body":{}}`), http.StatusBadRequest, "records[0]: seq"},
		{"seq negative", "key-app", "sc", rec(`{"seq":-1,"id":"d","time":"2026-03-01T10:00:00Z","body":{}}`), http.StatusBadRequest, "records[0]"},
		{"seqs not increasing", "key-app", "sc", rec(good + `,` + good), http.StatusBadRequest, "records[1]: seq 1 does not follow 1"},
		{"no id", "key-app", "sc", rec(good + `,{"seq":2,"time":"2026-03-01T10:00:00Z","body":{}}`), http.StatusBadRequest, "records[1]: id"},
		{"no time", "key-app", "sc", rec(`{"seq":1,"id":"d","body":{}}`), http.StatusBadRequest, "records[0]: time"},
		{"a time not RFC 3339", "key-app", "sc", rec(`{"seq":1,"id":"d","time":"yesterday","body":{}}`), http.StatusBadRequest, "records[0]: time"},
		{"no body", "key-app", "sc", rec(`{"seq":1,"id":"d","time":"2026-03-01T10:00:00Z"}`), http.StatusBadRequest, "records[0]: body"},
		{"a body not an object", "key-app", "sc", rec(`{"seq":1,"id":"d","time":"2026-03-01T10:00:00Z","body":[1]}`), http.StatusBadRequest, "records[0]: body"},
		{"an unknown record field", "key-app", "sc", rec(`{"seq":1,"id":"d","time":"2026-03-01T10:00:00Z","body":{},"x":1}`), http.StatusBadRequest, "records[0]"},
		{"too many records", "key-app", "sc", batch("sc", seqs(1001)...), http.StatusBadRequest, "at most 1000"},
		{"a record the sidecar did not make", "key-app", "sc", rec(`{"seq":1,"id":"d","time":"2026-03-01T10:00:00Z","body":{}}`), http.StatusUnprocessableEntity, "records[0]"},
		{"ok", "key-app", "sc", rec(good), http.StatusOK, `"ingested":1`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := e.post(tc.key, tc.sidecar, tc.body)
			if code != tc.code || !strings.Contains(body, tc.want) {
				t.Fatalf("%d %s, want %d with %q", code, body, tc.code, tc.want)
			}
		})
	}
	if n := len(e.sidecarRecords()); n != 1 {
		t.Errorf("%d records stored, want only the good one", n)
	}
}

func seqs(n int) []uint64 {
	out := make([]uint64, n)
	for i := range out {
		out[i] = uint64(i + 1)
	}
	return out
}
