package signalout

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/ciampdp/pdp/pdp/consent"
	"github.com/ciampdp/pdp/pdp/purposes"
)

// consentReceivers are the receivers of the consent scoping tests: the
// grants' applications, the one a withdrawal is recorded through, one
// party to nothing, a consent administrator, and one naming no
// application (an operator's SIEM).
var consentReceivers = []struct{ name, app string }{
	{"advisor-portal", "advisor-portal"},
	{"budget-app", "budget-app"},
	{"marketing-hub", "marketing-hub"},
	{"mobile-banking", "mobile-banking"},
	{"consent-admin", "consent-desk"},
	{"siem", ""},
}

// openLedger is a real consent ledger (file store, the consent package's
// test registry) telling note of its changes.
func openLedger(t *testing.T, note consent.Notifier) *consent.Ledger {
	t.Helper()
	data, err := os.ReadFile("../consent/testdata/purposes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	reg, err := purposes.ParseRegistry(data)
	if err != nil {
		t.Fatal(err)
	}
	st, err := consent.OpenFile(filepath.Join(t.TempDir(), "consent.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := consent.NewLedger(consent.LedgerConfig{Store: st, Registry: func() *consent.Registry { return reg },
		SigningKey: ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)), KeyID: "test", Controller: "Northbank AG",
		Notifier: note, Now: func() time.Time { return time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close(); _ = st.Close() })
	return l
}

// openConsentScoped opens a transmitter (not delivering) with the
// consentReceivers.
func openConsentScoped(t *testing.T, path string, logs *bytes.Buffer) *Transmitter {
	t.Helper()
	cfg := Config{Issuer: testIssuer, Key: newKey(t), OutboxPath: path, Logger: slog.New(slog.NewJSONHandler(logs, nil))}
	for _, r := range consentReceivers {
		cfg.Receivers = append(cfg.Receivers, Receiver{Endpoint: scopeEndpoint(r.name), Audience: testAudience, Application: r.app})
	}
	tx, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Close() })
	return tx
}

// lateNotifier forwards to a transmitter set after the ledger opens.
type lateNotifier struct{ tx *Transmitter }

func (n *lateNotifier) ConsentChanged(ctx context.Context, c consent.Change) {
	n.tx.ConsentChanged(ctx, c)
}

// TestReceiversGetTheConsentEventsTheyMayRead: a consent withdrawal goes
// to a receiver naming an application only when that application may read
// the event by the rule of the consent read API (HistoryFor): the grant's
// applications, the application that recorded it and the consent
// administrators; not to another application (marketing-hub never learns
// that alice withdrew her grant to budget-app, nor why). The SIEM naming
// none gets it. Not even a copy is in the outbox for the others.
func TestReceiversGetTheConsentEventsTheyMayRead(t *testing.T) {
	var logs bytes.Buffer
	note := &lateNotifier{}
	ledger := openLedger(t, note)
	path := filepath.Join(t.TempDir(), "outbox.jsonl")
	tx := openConsentScoped(t, path, &logs)
	note.tx = tx
	tx.ScopeConsents(ledger, []string{"consent-desk"})
	ctx := context.Background()
	alice := consent.Ref{Type: "user", ID: "alice"}
	notice := consent.Notice{URI: "https://northbank.example/privacy", Version: 2}
	if _, _, err := ledger.Give(ctx, consent.ChoiceRequest{Application: "advisor-portal", Subject: alice, Purpose: "financial_advice",
		Jurisdiction: "DE", Notice: notice, Channel: "web"}); err != nil {
		t.Fatal(err)
	}
	ais, _, err := ledger.Give(ctx, consent.ChoiceRequest{Application: "budget-app", Subject: alice, Purpose: "account_information_sharing",
		Jurisdiction: "DE", Notice: notice, Channel: "web"})
	if err != nil {
		t.Fatal(err)
	}
	evs, err := ledger.Withdraw(ctx, consent.WithdrawRequest{Application: "mobile-banking", Subject: alice, GrantID: ais.GrantID, Reason: "changed bank"})
	if err != nil || len(evs) != 1 {
		t.Fatalf("withdraw: %v (%d events)", err, len(evs))
	}
	box, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"budget-app", "mobile-banking", "consent-admin", "siem"}
	for _, r := range consentReceivers {
		sees := slices.Contains(want, r.name)
		if got := tx.Pending(scopeEndpoint(r.name)) == 1; got != sees {
			t.Errorf("receiver %s (application %q): queued %v, want %v", r.name, r.app, got, sees)
		}
		if inBox := bytes.Contains(box, []byte(`"receiver":"`+scopeEndpoint(r.name)+`"`)); inBox != sees {
			t.Errorf("receiver %s: in the outbox %v, want %v", r.name, inBox, sees)
		}
		if r.app == "" {
			continue
		}
		hist, err := ledger.HistoryFor(ctx, alice, consent.Reader{Application: r.app, Admin: r.app == "consent-desk"})
		if err != nil {
			t.Fatal(err)
		}
		if inHist := slices.ContainsFunc(hist, func(e consent.Event) bool { return e.ID == evs[0].ID }); inHist != sees {
			t.Errorf("receiver %s: the table disagrees with the read API (HistoryFor shows it: %v)", r.name, inHist)
		}
	}
}

// TestUnscopedTransmitterSendsNoConsentToApplications: without the
// consent rule (ScopeConsents not called) a receiver naming an
// application gets no consent event (fails closed, logged, counted as
// dropped); the SIEM still gets it.
func TestUnscopedTransmitterSendsNoConsentToApplications(t *testing.T) {
	var logs bytes.Buffer
	tx := openConsentScoped(t, filepath.Join(t.TempDir(), "outbox.jsonl"), &logs)
	tx.ConsentChanged(context.Background(), consent.Change{Action: "consent.withdraw", Events: []consent.Event{
		{ID: "c1", Type: consent.EventWithdrawn, Subject: consent.Ref{Type: "user", ID: "carol"}, Application: "mobile-banking",
			Purpose: "marketing", RecordedAt: time.Now()}}})
	for _, r := range consentReceivers {
		want := 0
		if r.app == "" {
			want = 1
		}
		if n := tx.Pending(scopeEndpoint(r.name)); n != want {
			t.Errorf("receiver %s: %d queued, want %d", r.name, n, want)
		}
	}
	if !bytes.Contains(logs.Bytes(), []byte("no rule says who may read consents")) {
		t.Errorf("not logged:\n%s", logs.String())
	}
	if got := dropped(t, tx, scopeEndpoint("mobile-banking")); got != 1 {
		t.Errorf("dropped for mobile-banking: %v, want 1", got)
	}
}

// dropped is the transmitter's count of SETs dropped for a receiver.
func dropped(t *testing.T, tx *Transmitter, endpoint string) float64 {
	t.Helper()
	var m dto.Metric
	if err := tx.sent.WithLabelValues(endpoint, "dropped").Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
