package delegation

import (
	"path/filepath"
	"testing"
)

// TestSeesOldCascadeRecords: a revocation the cascade wrote before the
// Cascade marker existed (no "cascade": true on disk) does not make its
// application a reader of the sub-delegation; a revocation of its own,
// with any other reason, does.
func TestSeesOldCascadeRecords(t *testing.T) {
	st, err := OpenFile(filepath.Join(t.TempDir(), "delegations.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	svc := NewService(Config{Store: st})
	mobile := Actor{Application: "mobile-banking"}
	cases := []struct {
		name   string
		parent string
		ev     Event
		want   bool
	}{
		{"marker", "p1", Event{Type: EventRevoked, By: mobile, Reason: "parent p1 revoked", Cascade: true}, false},
		{"old shape: parent reason", "p1", Event{Type: EventRevoked, By: mobile, Reason: "parent p1 revoked"}, false},
		{"old shape: parent renounced", "p1", Event{Type: EventRevoked, By: mobile, Reason: "parent p1 renounced"}, false},
		{"old shape: ancestor reason", "p1", Event{Type: EventRevoked, By: mobile, Reason: "ancestor p0 revoked"}, false},
		{"old shape: reconcile actor", "p1", Event{Type: EventRevoked, By: reconcileActor, Reason: "anything"}, false},
		{"own revoke", "p1", Event{Type: EventRevoked, By: mobile, Reason: "lost trust"}, true},
		{"parent reason naming another parent", "p1", Event{Type: EventRevoked, By: mobile, Reason: "parent p9 revoked"}, true},
		{"parent reason on a root record", "", Event{Type: EventRevoked, By: mobile, Reason: "parent p1 revoked"}, true},
		{"loose prefix", "p1", Event{Type: EventRevoked, By: mobile, Reason: "parent p1 revoked because"}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := Delegation{ID: "d1", Parent: c.parent, CreatedBy: Actor{Application: "advisor-portal"}, History: []Event{c.ev}}
			if got := svc.Sees(Reader{Application: "mobile-banking"}, d); got != c.want {
				t.Errorf("Sees = %v, want %v", got, c.want)
			}
		})
	}
	if svc.Sees(Reader{Application: reconcileActor.Application}, Delegation{ID: "d1", Parent: "p1",
		History: []Event{{Type: EventRevoked, By: reconcileActor, Reason: "parent p1 revoked"}}}) {
		t.Error("the reconcile pseudo-application reads an old cascaded record")
	}
}
