package signalout

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
)

// TestOutboxKeptWhenNoRuleAtThisStart: a SET about a delegation, held at
// a start where delegations are switched off (no rule given), is neither
// sent nor dropped: it stays in the outbox and goes out at the next start
// that has the rule again.
func TestOutboxKeptWhenNoRuleAtThisStart(t *testing.T) {
	e := newRecheckEnv(t)
	ctx := context.Background()
	var logs bytes.Buffer
	tx := e.start("mobile-banking", &logs)
	tx.DelegationChanged(ctx, e.revoke("mobile-banking"))
	_ = tx.Close()

	logs.Reset()
	tx, err := Open(Config{Issuer: testIssuer, Key: newKey(t), OutboxPath: e.path, Logger: slog.New(slog.NewJSONHandler(&logs, nil)),
		Receivers: []Receiver{{Endpoint: e.endpoint, Audience: testAudience, Application: "mobile-banking"}}})
	if err != nil {
		t.Fatal(err)
	}
	tx.ScopeConsents(e.ledger, nil) // delegations switched off
	tx.Release(ctx)
	if n, d := tx.Pending(e.endpoint), dropped(t, tx, e.endpoint); n != 0 || d != 0 {
		t.Fatalf("without the rule: %d pending, %v dropped; want 0 and 0", n, d)
	}
	if !strings.Contains(logs.String(), "kept in the outbox") {
		t.Errorf("not logged:\n%s", logs.String())
	}
	_ = tx.Close()

	tx = e.start("mobile-banking", &logs)
	defer tx.Close()
	tx.Release(ctx)
	if n := tx.Pending(e.endpoint); n != 1 {
		t.Fatalf("%d pending once delegations are on again, want 1", n)
	}
}
