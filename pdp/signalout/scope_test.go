package signalout

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp/delegation"
)

// scopeReceivers are the receivers of the scoping tests: one per kind of
// reader of TestReadersSeeWhatTheyTookPartIn (pdp/delegation), and one
// naming no application (an operator's SIEM).
var scopeReceivers = []struct{ name, app string }{
	{"mobile-banking", "mobile-banking"},
	{"agent-app", "agent-app"},
	{"advisor-portal", "advisor-portal"},
	{"register", "civil-register"},
	{"whole-view", "backoffice"},
	{"siem", ""},
}

func scopeEndpoint(name string) string { return "http://127.0.0.1:9/" + name }

// openScoped opens a transmitter (not delivering: what it queues stays
// queued) with the scopeReceivers, its log in logs.
func openScoped(t *testing.T, logs *bytes.Buffer) (*Transmitter, string) {
	t.Helper()
	cfg := Config{Issuer: testIssuer, Key: newKey(t), OutboxPath: filepath.Join(t.TempDir(), "outbox.jsonl"),
		Logger: slog.New(slog.NewJSONHandler(logs, nil))}
	for _, r := range scopeReceivers {
		cfg.Receivers = append(cfg.Receivers, Receiver{Endpoint: scopeEndpoint(r.name), Audience: testAudience, Application: r.app})
	}
	tx, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Close() })
	return tx, cfg.OutboxPath
}

// scopeService is a delegation service with the readers' configuration of
// TestReadersSeeWhatTheyTookPartIn: the rule the transmitter must follow.
func scopeService(t *testing.T) *delegation.Service {
	t.Helper()
	st, err := delegation.OpenFile(filepath.Join(t.TempDir(), "delegations.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	return delegation.NewService(delegation.Config{Store: st,
		RegisterApplications: []string{"civil-register"}, ReaderApplications: []string{"backoffice"}})
}

// record is a delegation whose history was made through apps, in order
// (the first one offered it), as a record is after its last change.
func record(id string, source delegation.Source, apps ...string) delegation.Delegation {
	at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	d := delegation.Delegation{ID: id, Principal: delegation.Ref{Type: "user", ID: "alice"}, Agent: delegation.Ref{Type: "user", ID: "bob"},
		Source: source, Status: delegation.StatusRevoked,
		CreatedBy: delegation.Actor{Application: apps[0], Subject: delegation.Ref{Type: "user", ID: "alice"}}}
	for i, app := range apps {
		d.History = append(d.History, delegation.Event{Seq: i + 1, Type: "changed", At: at.Add(time.Duration(i) * time.Hour),
			By: delegation.Actor{Application: app, Subject: delegation.Ref{Type: "user", ID: "alice"}}})
	}
	return d
}

// TestReceiversGetTheDelegationEventsTheyMayRead: a receiver naming an
// application is queued a delegation revoke, suspend or renounce only when
// that application may read the record after the change (the rule of GET
// /v1/delegations/{id}); the SIEM naming none gets every one (consent
// withdrawals: TestReceiversGetTheConsentEventsTheyMayRead). The
// delegation kinds are those of
// TestReadersSeeWhatTheyTookPartIn, plus a change that makes its
// application a party.
func TestReceiversGetTheDelegationEventsTheyMayRead(t *testing.T) {
	svc := scopeService(t)
	kinds := []struct {
		name string
		d    delegation.Delegation
		sees []string // the receivers (scopeReceivers' names) that get it
	}{
		{"offered, accepted and changed through mobile-banking",
			record("poa", delegation.SourceSelfDeclared, "mobile-banking", "mobile-banking", "mobile-banking"),
			[]string{"mobile-banking", "whole-view", "siem"}},
		{"offered through mobile-banking, accepted and changed through agent-app",
			record("accepted", delegation.SourceSelfDeclared, "mobile-banking", "agent-app", "agent-app"),
			[]string{"mobile-banking", "agent-app", "whole-view", "siem"}},
		{"a sub-delegation offered and changed through agent-app",
			record("sub", delegation.SourceSelfDeclared, "agent-app", "agent-app"),
			[]string{"agent-app", "whole-view", "siem"}},
		{"a guardian from the register",
			record("guardian", delegation.SourceRegister, "civil-register", "civil-register"),
			[]string{"register", "whole-view", "siem"}},
		{"imported from an application this PDP does not know",
			record("imported", delegation.SourceSelfDeclared, "old-system", "old-system", "old-system"),
			[]string{"whole-view", "siem"}},
		{"changed through advisor-portal, which becomes a party",
			record("poa-advisor", delegation.SourceSelfDeclared, "mobile-banking", "mobile-banking", "advisor-portal"),
			[]string{"mobile-banking", "advisor-portal", "whole-view", "siem"}},
	}
	for _, action := range []string{"delegation.revoke", "delegation.suspend", "delegation.renounce"} {
		for _, k := range kinds {
			t.Run(action+"/"+k.name, func(t *testing.T) {
				var logs bytes.Buffer
				tx, outbox := openScoped(t, &logs)
				tx.ScopeDelegations(svc)
				tx.DelegationChanged(context.Background(), delegation.Change{Action: action, Delegation: k.d, Reason: "lost trust",
					By: k.d.History[len(k.d.History)-1].By})
				box, err := os.ReadFile(outbox)
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range scopeReceivers {
					want := slices.Contains(k.sees, r.name)
					if got := tx.Pending(scopeEndpoint(r.name)) == 1; got != want {
						t.Errorf("receiver %s (application %q): queued %v, want %v", r.name, r.app, got, want)
					}
					if svc.Sees(delegation.Reader{Application: r.app}, k.d) != want && r.app != "" {
						t.Errorf("receiver %s: the table disagrees with delegation.Service.Sees", r.name)
					}
					if inBox := bytes.Contains(box, []byte(`"receiver":"`+scopeEndpoint(r.name)+`"`)); inBox != want {
						t.Errorf("receiver %s: in the outbox %v, want %v (not even a redacted copy)", r.name, inBox, want)
					}
				}
			})
		}
	}

}

// TestUnscopedTransmitterSendsNoDelegationToApplications: without the
// delegation service's rule (ScopeDelegations not called), a receiver
// naming an application gets no delegation event (fails closed, logged);
// the SIEM still gets it.
func TestUnscopedTransmitterSendsNoDelegationToApplications(t *testing.T) {
	var logs bytes.Buffer
	tx, _ := openScoped(t, &logs)
	d := record("poa", delegation.SourceSelfDeclared, "mobile-banking", "mobile-banking")
	tx.DelegationChanged(context.Background(), delegation.Change{Action: "delegation.revoke", Delegation: d, By: d.CreatedBy})
	for _, r := range scopeReceivers {
		want := 0
		if r.app == "" {
			want = 1
		}
		if n := tx.Pending(scopeEndpoint(r.name)); n != want {
			t.Errorf("receiver %s: %d queued, want %d", r.name, n, want)
		}
	}
	if !strings.Contains(logs.String(), "no rule says who may read delegations") {
		t.Errorf("not logged:\n%s", logs.String())
	}
}

// TestWarnsOfReceiversWithoutApplication: Open names, in a warning, each
// receiver that names no application (it sees every delegation change),
// and only those.
func TestWarnsOfReceiversWithoutApplication(t *testing.T) {
	var logs bytes.Buffer
	openScoped(t, &logs)
	var warned []string
	for line := range strings.Lines(logs.String()) {
		if strings.Contains(line, `"level":"WARN"`) && strings.Contains(line, "names no application") {
			for _, r := range scopeReceivers {
				if strings.Contains(line, `"receiver":"`+scopeEndpoint(r.name)+`"`) {
					warned = append(warned, r.name)
				}
			}
		}
	}
	if !slices.Equal(warned, []string{"siem"}) {
		t.Errorf("warned of %v, want [siem]; log:\n%s", warned, logs.String())
	}
}
