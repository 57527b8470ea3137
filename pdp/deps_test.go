package pdp_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLightDependencies keeps the decision core light: the engine, policy
// bundles and the AuthZEN client link neither the SpiceDB server (only
// its schema compiler, through package zedschema) nor PostgreSQL's driver
// (the purposes registry is package purposes, not the consent ledger).
func TestLightDependencies(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command in PATH")
	}
	const mod = "github.com/ciampdp/pdp/"
	forbidden := []string{
		"github.com/jackc/pgx",
		"github.com/authzed/spicedb/internal/datastore",
		"github.com/authzed/spicedb/internal/services",
		"github.com/authzed/spicedb/pkg/cmd",
		mod + "pdp/relations",
		mod + "pdp/consent",
	}
	for _, pkg := range []string{"pdp", "pdp/policy", "pdp/authzen", "pdp/purposes", "pdp/zedschema"} {
		t.Run(pkg, func(t *testing.T) {
			out, err := exec.Command(goTool, "list", "-deps", mod+pkg).Output()
			if err != nil {
				t.Fatalf("go list -deps %s: %v", pkg, err)
			}
			deps := strings.Fields(string(out))
			for _, d := range deps {
				for _, f := range forbidden {
					if d == f || strings.HasPrefix(d, f+"/") {
						t.Errorf("%s depends on %s", pkg, d)
					}
				}
			}
			t.Logf("%s: %d packages", pkg, len(deps))
		})
	}
}
