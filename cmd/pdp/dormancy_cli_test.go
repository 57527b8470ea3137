package main

import (
	"context"
	"strings"
	"testing"
)

// TestDormancyCLI drives `pdp dormancy` against the real server: the
// report (CSV) lists heidi and victor's power of attorney, a refused
// revalidation exits 1 with the server's 403, revalidate and reconfirm
// end the dormancy, and the report then lists the two revalidations.
func TestDormancyCLI(t *testing.T) {
	s := startNorthbank(t)
	cli := func(key string, args ...string) (int, string, string) {
		t.Helper()
		t.Setenv("PDP_API_KEY", key)
		var out, errOut strings.Builder
		code := run(context.Background(), append([]string{"dormancy", "--server", s.URL}, args...), strings.NewReader(""), &out, &errOut)
		return code, out.String(), errOut.String()
	}
	code, out, errOut := cli("demo-key-auditor", "report", "--format", "csv")
	if code != exitOK || !strings.Contains(out, "\nidentity,user:heidi,") || !strings.Contains(out, "\ndelegation,poa-alice-victor,") ||
		strings.Count(out, "\n") != 3 || !strings.Contains(errOut, "dormancy report:") {
		t.Fatalf("report: %d\n%s\n%s", code, out, errOut)
	}
	if code, _, errOut := cli("demo-key-mobile-banking", "revalidate", "user:heidi", "--actor", "user:heidi"); code != exitFailure || !strings.Contains(errOut, "HTTP 403") {
		t.Fatalf("refused revalidation: %d %s", code, errOut)
	}
	if code, _, errOut := cli("demo-key-backoffice", "revalidate", "user:heidi"); code != exitUsage {
		t.Fatalf("revalidate without --actor: %d %s", code, errOut)
	}
	if code, out, errOut := cli("demo-key-backoffice", "revalidate", "user:heidi", "--actor", "staff:kim", "--reason", "passport seen"); code != exitOK || !strings.Contains(out, `"kind": "identity"`) {
		t.Fatalf("revalidate: %d\n%s\n%s", code, out, errOut)
	}
	if code, out, errOut := cli("demo-key-mobile-banking", "reconfirm", "poa-alice-victor", "--actor", "user:alice"); code != exitOK || !strings.Contains(out, `"delegation": "poa-alice-victor"`) {
		t.Fatalf("reconfirm: %d\n%s\n%s", code, out, errOut)
	}
	code, out, errOut = cli("demo-key-auditor", "report")
	if code != exitOK || !strings.Contains(out, `"identities":[]`) || !strings.Contains(out, `"delegations":[]`) || strings.Count(out, `"kind":`) != 2 {
		t.Fatalf("report after: %d\n%s\n%s", code, out, errOut)
	}
}
