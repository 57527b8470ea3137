package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestSignalRevalidationLostIsMadeAtStart: the identity provider raises
// heidi to aal2 (a revalidating signal); the SET is stored and answered
// 202, but the revalidation it implies is not (its store refuses: the
// file system full, a PostgreSQL trigger), as a crash between the two
// would leave it; heidi stays dormant (fail closed). The transmitter's
// retry would be a duplicate. pdp repair --check lists the owed
// revalidation; the next start makes it (its source naming the SET,
// logged at Warn, recorded in the trail) instead of refusing to start,
// and heidi's dormancy ends.
func TestSignalRevalidationLostIsMadeAtStart(t *testing.T) {
	const jti = "rv-lost-heidi-aal2"
	for _, engine := range []string{"file", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			root := t.TempDir()
			storageEnv(t, filepath.Join(root, "data"), filepath.Join(root, "trail"))
			var refuse, allow func()
			if engine == "file" {
				full := filepath.Join(root, "full")
				fill, free := mountFull(t, full)
				t.Setenv("PDP_DORMANCY_PATH", filepath.Join(full, "revalidations.jsonl"))
				refuse, allow = fill, free
			} else {
				uri := testDatabase(t)
				for _, k := range []string{"DELEGATIONS", "CONSENT", "SIGNALS"} {
					t.Setenv("PDP_"+k+"_ENGINE", "postgres")
					t.Setenv("PDP_"+k+"_POSTGRES_URL", uri)
				}
				refuse = func() {
					pgExec(t, uri, `CREATE FUNCTION pdp_test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$`)
					pgExec(t, uri, `CREATE TRIGGER pdp_test_refuse BEFORE INSERT ON pdp_dormancy_revalidations FOR EACH ROW EXECUTE FUNCTION pdp_test_refuse()`)
				}
				allow = func() { pgExec(t, uri, `DROP TRIGGER pdp_test_refuse ON pdp_dormancy_revalidations`) }
			}
			heidi := func(s *server) sigDecision {
				return s.sigAsk(t, "heidi", "view_statements", "acc-heidi", `{"purpose":"account_servicing"}`)
			}

			s := startNorthbank(t)
			wantDecision(t, heidi(s), false, []string{"revalidation_required"}, []string{"identity_revalidation"})
			refuse()
			s.push(t, "assurance-level-change", "heidi", "--jti", jti,
				"--payload", `{"current_level":"aal2","previous_level":"aal1","change_direction":"increase"}`)
			wantDecision(t, heidi(s), false, []string{"revalidation_required"}, []string{"identity_revalidation"})
			s.stop(t)
			allow()

			named := "signal.receive: revalidation rv-"
			code, out, errOut := pdpRun(append([]string{"repair", "--check"}, exampleConfig()...)...)
			if code != exitFailure || !strings.Contains(out, "1 acknowledged changes are missing") || !strings.Contains(out, named) {
				t.Fatalf("pdp repair --check: %d, want %d naming %q:\n%s%s", code, exitFailure, named, out, errOut)
			}

			s = startNorthbank(t)
			if s.logs.find("WARN", "a stored signal's revalidation is missing: making it now") == nil ||
				s.logs.find("WARN", "stored signals' revalidations made at start") == nil {
				t.Fatalf("the start did not log making the owed revalidation:\n%s", s.logs)
			}
			wantDecision(t, heidi(s), true, nil, nil)
			rep := s.dormancyReport(t)
			if len(rep.Revalidations) != 1 || !strings.HasSuffix(rep.Revalidations[0].Source, " "+jti) ||
				!strings.HasPrefix(rep.Revalidations[0].Source, "signal:https://risk.northbank.example/ ") {
				t.Fatalf("report revalidations: %+v, want heidi's from the SET %s", rep.Revalidations, jti)
			}
			// The transmitter's retry is a duplicate and makes nothing more.
			argv := []string{"signals", "push", "--server", s.URL, "--key", nbTransmitterKey, "assurance-level-change", "heidi", "--jti", jti,
				"--payload", `{"current_level":"aal2","previous_level":"aal1","change_direction":"increase"}`}
			if code, out, errOut := pdpRun(argv...); code == exitOK && !strings.Contains(out+errOut, "duplicate") {
				t.Logf("retry: %d %s%s", code, out, errOut)
			}
			if rep := s.dormancyReport(t); len(rep.Revalidations) != 1 {
				t.Fatalf("after the retry: %+v", rep.Revalidations)
			}
			s.stop(t)
			if code, out, _ := pdpRun(append([]string{"repair", "--check"}, exampleConfig()...)...); code != exitOK || !strings.Contains(out, "nothing to repair") {
				t.Fatalf("pdp repair --check at the end: %d\n%s", code, out)
			}
		})
	}
}

// pgExec runs one statement that changes no rows.
func pgExec(t *testing.T, uri, sql string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// TestRepairRefusesWhileReplicasLive: with the stores on PostgreSQL (a
// shared change feed), pdp repair refuses while a replica holds a live
// lease in pdp_replicas, naming it; --check still lists; --force goes
// past the leases (here the file trail's lock then stops it, the PDP
// running on this host); once the replica stopped the repair runs.
func TestRepairRefusesWhileReplicasLive(t *testing.T) {
	root := t.TempDir()
	storageEnv(t, filepath.Join(root, "data"), filepath.Join(root, "trail"))
	uri := testDatabase(t)
	for _, k := range []string{"DELEGATIONS", "CONSENT", "SIGNALS"} {
		t.Setenv("PDP_"+k+"_ENGINE", "postgres")
		t.Setenv("PDP_"+k+"_POSTGRES_URL", uri)
	}
	s := startNorthbank(t)
	code, out, errOut := pdpRun(append([]string{"repair"}, exampleConfig()...)...)
	if code == exitOK || !strings.Contains(errOut, "1 PDP replicas hold a live lease in the shared change feed (pdp_replicas)") ||
		!strings.Contains(errOut, "(lease until ") || !strings.Contains(errOut, "--force") {
		t.Fatalf("pdp repair with a replica running: %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = pdpRun(append([]string{"repair", "--force"}, exampleConfig()...)...)
	if code == exitOK || strings.Contains(errOut, "live lease") || !strings.Contains(errOut, "is the PDP still running?") {
		t.Fatalf("pdp repair --force with a replica running on this host: %d\n%s%s", code, out, errOut)
	}
	s.stop(t)
	if code, out, errOut := pdpRun(append([]string{"repair"}, exampleConfig()...)...); code != exitOK || !strings.Contains(out, "nothing to repair") {
		t.Fatalf("pdp repair once the replica stopped: %d\n%s%s", code, out, errOut)
	}
}
