package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReloadRunsValidateChecks: a version that `pdp validate` refuses
// (here, a SpiceDB schema that no longer answers a fact the Cedar schema
// declares) is rejected by a running server too — on hot reload, with the
// trail on — and the previous version keeps deciding.
func TestReloadRunsValidateChecks(t *testing.T) {
	dir := copyBundle(t, northbank)
	t.Setenv("PDP_POLICY_DIR", dir)
	s := startNorthbank(t, "--reload-interval", "20ms")
	before := s.policies(t, demoKey("mobile-banking")...)
	ask := func() nbDecision {
		return s.nbAsk(t, "advisor-portal", user("gina"), "view_portfolio", `{"type":"account","id":"acc-alice"}`, `{"purpose":"financial_advice"}`)
	}
	if d := ask(); !d.Decision {
		t.Fatalf("gina before the edit: %+v", d)
	}

	zed := filepath.Join(dir, "schema", "northbank.zed")
	data, err := os.ReadFile(zed)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(data), "  permission view_portfolio = owner + owner->advisor\n", "", 1)
	if edited == string(data) {
		t.Fatal("the example's SpiceDB schema no longer has the line this test removes")
	}
	writeFile(t, zed, edited)
	if r := runCLI(t, "", "validate", dir); r.code == 0 || !strings.Contains(r.stdout, "view_portfolio") {
		t.Fatalf("pdp validate of the edited bundle: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	var st policyStatus
	eventually(t, "the edited version is rejected", func() bool {
		st = s.policies(t, demoKey("mobile-banking")...)
		return st.LastError != ""
	})
	if st.Active.Hash != before.Active.Hash || !strings.Contains(st.LastError, "view_portfolio") {
		t.Errorf("after the edit: active %s (was %s), last error %q", st.Active.Hash, before.Active.Hash, st.LastError)
	}
	if d := ask(); !d.Decision {
		t.Errorf("gina after the rejected edit: %+v", d)
	}
}
