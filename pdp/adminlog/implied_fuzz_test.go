package adminlog

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/ciampdp/pdp/pdp/dormancy"
)

// FuzzImpliedRevalidations: whatever a SET record names as implied
// revalidations, the check demands only identity revalidations of a
// named subject, with the SET event's source, each once, with the same
// id each time.
func FuzzImpliedRevalidations(f *testing.F) {
	s := set("https://idp.example/", "jti-1", "credential-compromise", "account-disabled")
	good, _ := json.Marshal(signalDetail{Transmitter: s.Transmitter, JTI: s.JTI, Events: s.Events,
		Revalidates: []dormancy.SignalRevalidation{{Type: s.Events[0].Type, Subject: dormancy.Ref{Type: "user", ID: "bob"}}}})
	for _, seed := range []string{string(good), `{"transmitter":"t","jti":"j","events":[{"type":"x"}],"revalidates":[{"type":"x","subject":{"type":"user","id":"h"}},{"type":"x","subject":{"type":"user","id":"h"}}]}`,
		`{"transmitter":"t","jti":"j","events":[{"type":"x"}],"revalidates":[{"type":"y","subject":{"type":"user","id":"h"}}]}`,
		`{"transmitter":"t","jti":"j","events":[{"type":"x"}],"revalidates":[{"type":"x","subject":{"$redacted":"h"}}]}`,
		`{"transmitter":"t","jti":"j","events":[{"type":"x"}],"revalidates":7}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		demand := func() []Missing {
			var rep Report
			fc := newFactChanges()
			fc.add(1, ActionSignalReceive, raw, &rep)
			for i := range fc.sigs {
				fc.held[i] = true
			}
			fc.compareImplied(storedRevs{ids: map[string]bool{}, sources: map[string]bool{}}, &rep)
			return rep.Missing
		}
		first, second := demand(), demand()
		if len(first) != len(second) {
			t.Fatalf("%d then %d", len(first), len(second))
		}
		seen := map[string]bool{}
		for i, m := range first {
			r := m.Revalidation
			if r == nil || r.Kind != dormancy.KindIdentity || r.Subject.Type == "" || r.Subject.ID == "" ||
				!strings.HasPrefix(r.Source, "signal:") || r.ID != second[i].Revalidation.ID || seen[r.ID] {
				t.Fatalf("demanded %+v", m)
			}
			seen[r.ID] = true
		}
	})
}
