package main

import (
	"strings"
	"testing"
)

// TestSignalEndsDormancy: the identity provider's CAEP
// assurance-level-change to a level the bundle's dormancy rules accept
// (aal2) ends heidi's dormancy, as a backoffice revalidation would; a
// change to a level they do not accept (aal1) does not.
func TestSignalEndsDormancy(t *testing.T) {
	s := startNorthbankSignals(t)
	servicing := `{"purpose":"account_servicing"}`
	wantDormancy(t, "heidi views, dormant", s.dormancyAsk(t, "heidi", "view_statements", "acc-heidi", servicing),
		false, []string{"revalidation_required"}, []string{"identity_revalidation"})

	s.push(t, "assurance-level-change", "heidi", "--payload", `{"current_level":"aal1","previous_level":"aal1","change_direction":"increase"}`)
	wantDormancy(t, "heidi views after an aal1 change", s.dormancyAsk(t, "heidi", "view_statements", "acc-heidi", servicing),
		false, []string{"revalidation_required"}, []string{"identity_revalidation"})

	s.push(t, "assurance-level-change", "heidi", "--payload", `{"current_level":"aal2","previous_level":"aal1","change_direction":"increase"}`)
	wantDormancy(t, "heidi views after the identity provider raised her to aal2", s.dormancyAsk(t, "heidi", "view_statements", "acc-heidi", servicing),
		true, nil, nil)

	rep := s.dormancyReport(t)
	// The source names the SET: transmitter, event type, jti.
	if len(rep.Revalidations) != 1 || !strings.HasPrefix(rep.Revalidations[0].Source,
		"signal:https://risk.northbank.example/ https://schemas.openid.net/secevent/caep/event-type/assurance-level-change ") {
		t.Fatalf("report revalidations: %+v, want heidi's, by the signal (its transmitter, type and jti)", rep.Revalidations)
	}
}
