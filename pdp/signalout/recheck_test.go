package signalout

import (
	"bytes"
	"context"
	"encoding/base64"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp/consent"
	"github.com/ciampdp/pdp/pdp/delegation"
)

// recheckEnv is a delegation store and a consent ledger (both real, on
// files) and an outbox with one receiver, restarted under a name.
type recheckEnv struct {
	t        *testing.T
	path     string
	dpath    string // the delegation store's file
	dstore   *delegation.FileStore
	svc      *delegation.Service
	ledger   *consent.Ledger
	endpoint string
}

func newRecheckEnv(t *testing.T) *recheckEnv {
	dpath := filepath.Join(t.TempDir(), "delegations.jsonl")
	st, err := delegation.OpenFile(dpath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return &recheckEnv{t: t, path: filepath.Join(t.TempDir(), "outbox.jsonl"), dpath: dpath, dstore: st,
		svc:    delegation.NewService(delegation.Config{Store: st, ReaderApplications: []string{"backoffice"}}),
		ledger: openLedger(t, nil), endpoint: "http://127.0.0.1:9/ssf/events"}
}

// start opens the transmitter with the receiver naming app, scoped by the
// env's rules (not released: the caller does).
func (e *recheckEnv) start(app string, logs *bytes.Buffer) *Transmitter {
	e.t.Helper()
	logs.Reset()
	tx, err := Open(Config{Issuer: testIssuer, Key: newKey(e.t), OutboxPath: e.path, Logger: slog.New(slog.NewJSONHandler(logs, nil)),
		Receivers: []Receiver{{Endpoint: e.endpoint, Audience: testAudience, Application: app}}})
	if err != nil {
		e.t.Fatal(err)
	}
	tx.ScopeDelegations(e.svc)
	tx.ScopeConsents(e.ledger, nil)
	return tx
}

// revoke offers a delegation through app (alice to bob) and revokes it
// through app: the change as the service tells its notifier.
func (e *recheckEnv) revoke(app string) delegation.Change {
	e.t.Helper()
	ctx := context.Background()
	alice, bob := delegation.Ref{Type: "user", ID: "alice"}, delegation.Ref{Type: "user", ID: "bob"}
	by := delegation.Actor{Application: app, Subject: alice}
	d, _, err := e.svc.Offer(ctx, delegation.OfferRequest{By: by, Principal: alice, Agent: bob, Basis: delegation.BasisPowerOfAttorney,
		Source: delegation.SourceSelfDeclared, Scope: []string{"view_statements"}, ValidUntil: time.Now().AddDate(1, 0, 0)})
	if err != nil {
		e.t.Fatal(err)
	}
	d, _, err = e.svc.Revoke(ctx, d.ID, by, "lost trust")
	if err != nil {
		e.t.Fatal(err)
	}
	return delegation.Change{Action: "delegation.revoke", By: by, Reason: "lost trust", Delegation: d}
}

// TestOutboxRecheckedAtStart: the SETs waiting in the outbox for a
// receiver naming an application — queued while it named none, another
// application, or this one — are held until Release, then checked
// against the records as they are now: those the application may read go
// out, the others are dropped (logged, counted, and not again at the next
// start). A revoke the renamed receiver may read is no longer thrown away.
func TestOutboxRecheckedAtStart(t *testing.T) {
	e := newRecheckEnv(t)
	ctx := context.Background()
	var logs bytes.Buffer

	// Queued while the receiver named no application: a revoke made
	// through advisor-portal, one made through mobile-banking, and
	// budget-app's grant withdrawn through budget-app.
	tx := e.start("", &logs)
	tx.DelegationChanged(ctx, e.revoke("advisor-portal"))
	tx.DelegationChanged(ctx, e.revoke("mobile-banking"))
	alice := consent.Ref{Type: "user", ID: "alice"}
	g, _, err := e.ledger.Give(ctx, consent.ChoiceRequest{Application: "budget-app", Subject: alice, Purpose: "account_information_sharing",
		Jurisdiction: "DE", Notice: consent.Notice{URI: "n", Version: 1}, Channel: "web"})
	if err != nil {
		t.Fatal(err)
	}
	evs, err := e.ledger.Withdraw(ctx, consent.WithdrawRequest{Application: "budget-app", Subject: alice, GrantID: g.GrantID})
	if err != nil {
		t.Fatal(err)
	}
	tx.ConsentChanged(ctx, consent.Change{Action: "consent.withdraw", Events: evs})
	tx.Release(ctx)
	if n := tx.Pending(e.endpoint); n != 3 {
		t.Fatalf("%d pending, want 3", n)
	}
	_ = tx.Close()

	// Now it is advisor-portal: held until Release, then only
	// advisor-portal's revoke stays.
	tx = e.start("advisor-portal", &logs)
	tx.mu(e.endpoint, func(q *queue) {
		if !q.held || len(q.sets) != 3 {
			t.Errorf("before Release: held %v with %d, want held with 3", q.held, len(q.sets))
		}
	})
	tx.Release(ctx)
	if n := tx.Pending(e.endpoint); n != 1 {
		t.Fatalf("%d pending after Release, want 1 (advisor-portal's revoke)", n)
	}
	if got := strings.Count(logs.String(), "may not read it now: dropped"); got != 2 {
		t.Errorf("%d drops logged, want 2:\n%s", got, logs.String())
	}
	if got := dropped(t, tx, e.endpoint); got != 2 {
		t.Errorf("dropped counted %v, want 2", got)
	}
	_ = tx.Close()

	// The same application again: it stays, nothing dropped again.
	tx = e.start("advisor-portal", &logs)
	tx.Release(ctx)
	if n := tx.Pending(e.endpoint); n != 1 || strings.Contains(logs.String(), "dropped") {
		t.Fatalf("%d pending at the next start, want 1, nothing dropped:\n%s", n, logs.String())
	}
	_ = tx.Close()

	// Another application: dropped too.
	tx = e.start("mobile-banking", &logs)
	tx.Release(ctx)
	if n := tx.Pending(e.endpoint); n != 0 {
		t.Fatalf("%d pending for mobile-banking, want 0", n)
	}
	_ = tx.Close()
}

// TestOutboxRecheckedUnderTheSameApplication: a SET queued for the very
// application the receiver names is checked again too: the whole-view
// reader (delegations.reader_applications) that got a revoke is no longer
// one at the next start, and the revoke is not sent.
func TestOutboxRecheckedUnderTheSameApplication(t *testing.T) {
	e := newRecheckEnv(t)
	ctx := context.Background()
	var logs bytes.Buffer
	tx := e.start("backoffice", &logs)
	tx.DelegationChanged(ctx, e.revoke("mobile-banking"))
	if n := tx.Pending(e.endpoint); n != 1 {
		t.Fatalf("%d queued for the whole-view reader, want 1", n)
	}
	_ = tx.Close()

	e.svc = delegation.NewService(delegation.Config{Store: e.dstore}) // backoffice is no reader now
	tx = e.start("backoffice", &logs)
	defer tx.Close()
	tx.Release(ctx)
	if n := tx.Pending(e.endpoint); n != 0 || dropped(t, tx, e.endpoint) != 1 {
		t.Fatalf("%d pending, %v dropped; want 0 and 1", n, dropped(t, tx, e.endpoint))
	}
}

// TestOutboxKeptWhenTheRecordCannotBeRead: a SET whose record cannot be
// read at Release (the store fails) is neither sent nor dropped: it stays
// in the outbox — not compacted away — and is checked at the next start.
func TestOutboxKeptWhenTheRecordCannotBeRead(t *testing.T) {
	e := newRecheckEnv(t)
	ctx := context.Background()
	var logs bytes.Buffer
	tx := e.start("mobile-banking", &logs)
	tx.DelegationChanged(ctx, e.revoke("mobile-banking"))
	_ = tx.Close()

	if err := e.dstore.Close(); err != nil {
		t.Fatal(err)
	}
	tx = e.start("mobile-banking", &logs)
	tx.Release(ctx)
	if n := tx.Pending(e.endpoint); n != 0 || dropped(t, tx, e.endpoint) != 0 {
		t.Fatalf("%d pending, %v dropped; want 0 and 0", n, dropped(t, tx, e.endpoint))
	}
	if !strings.Contains(logs.String(), "kept in the outbox for the next start") {
		t.Errorf("not logged:\n%s", logs.String())
	}
	old := compactAt
	t.Cleanup(func() { compactAt = old })
	compactAt = 0
	tx.compact()
	_ = tx.Close()

	reopened, err := delegation.OpenFile(e.dpath)
	if err != nil {
		t.Fatal(err)
	}
	defer reopened.Close()
	e.svc = delegation.NewService(delegation.Config{Store: reopened})
	tx = e.start("mobile-banking", &logs)
	defer tx.Close()
	tx.Release(ctx)
	if n := tx.Pending(e.endpoint); n != 1 {
		t.Fatalf("%d pending once the store answers, want 1", n)
	}
}

// TestOutboxDropsForGoneReceiverCounted: SETs for a receiver no longer
// configured are dropped at the start, counted under the fixed receiver
// label "(removed)" (not one label per old endpoint), and
// noted in the outbox (not dropped again at the next start).
func TestOutboxDropsForGoneReceiverCounted(t *testing.T) {
	e := newRecheckEnv(t)
	ctx := context.Background()
	var logs bytes.Buffer
	tx := e.start("", &logs)
	tx.DelegationChanged(ctx, e.revoke("mobile-banking"))
	_ = tx.Close()
	old := e.endpoint
	e.endpoint = "http://127.0.0.1:9/other"
	for i, want := range []float64{1, 0} {
		tx = e.start("", &logs)
		tx.Release(ctx)
		if got := dropped(t, tx, old); got != 0 {
			t.Errorf("start %d: dropped counted under the old endpoint %v, want 0", i+1, got)
		}
		if got := dropped(t, tx, removedReceiver); got != want {
			t.Errorf("start %d: dropped for the gone receiver %v, want %v", i+1, got, want)
		}
		_ = tx.Close()
	}
}

// mu runs f on the queue of endpoint under its lock (tests only).
func (t *Transmitter) mu(endpoint string, f func(q *queue)) {
	q := t.queues[endpoint]
	q.mu.Lock()
	defer q.mu.Unlock()
	f(q)
}

// TestAbout: what an outbox SET is about; what cannot be read is about
// nothing (and is not sent to a receiver naming an application).
func TestAbout(t *testing.T) {
	payload := func(s string) string { return "e30." + base64.RawURLEncoding.EncodeToString([]byte(s)) + ".sig" }
	tests := []struct {
		name, set, event, id string
	}{
		{"a revoke", payload(`{"events":{"https://pdp.example/events/delegation-revoked":{"delegation_id":"d1"}}}`), DelegationRevoked, "d1"},
		{"a suspend", payload(`{"events":{"https://pdp.example/events/delegation-suspended":{"delegation_id":"d2"}}}`), DelegationSuspended, "d2"},
		{"a withdrawal", payload(`{"events":{"https://pdp.example/events/consent-withdrawn":{"consent_event_id":"c1","delegation_id":"x"}}}`), ConsentWithdrawn, "c1"},
		{"a revoke without its id", payload(`{"events":{"https://pdp.example/events/delegation-revoked":{}}}`), DelegationRevoked, ""},
		{"two events", payload(`{"events":{"https://pdp.example/events/consent-withdrawn":{},"https://pdp.example/events/delegation-suspended":{}}}`), "", ""},
		{"an unknown event", payload(`{"events":{"https://pdp.example/events/other":{"delegation_id":"d1"}}}`), "", ""},
		{"no events", payload(`{}`), "", ""},
		{"not JSON", payload(`{`), "", ""},
		{"an id not a string", payload(`{"events":{"https://pdp.example/events/delegation-revoked":{"delegation_id":1}}}`), "", ""},
		{"not base64", "e30.!!!.sig", "", ""},
		{"not a JWS", "garbage", "", ""},
	}
	for _, tt := range tests {
		if ev, id := (entry{SET: tt.set}).about(); ev != tt.event || id != tt.id {
			t.Errorf("%s: (%q, %q), want (%q, %q)", tt.name, ev, id, tt.event, tt.id)
		}
	}
}

// FuzzAbout: any outbox SET is read without a panic, and an id is found
// only with a known event name.
func FuzzAbout(f *testing.F) {
	f.Add("e30." + base64.RawURLEncoding.EncodeToString([]byte(`{"events":{"https://pdp.example/events/consent-withdrawn":{"consent_event_id":"c"}}}`)) + ".sig")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, set string) {
		ev, id := (entry{SET: set}).about()
		if id != "" && ev == "" {
			t.Fatalf("%q: id %q without an event", set, id)
		}
		if ev != "" && !strings.Contains(set, ".") {
			t.Fatalf("%q: an event, yet not a JWS", set)
		}
	})
}
