package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ciampdp/pdp/pdp/audit"
	"github.com/ciampdp/pdp/pdp/recorder"
	"github.com/ciampdp/pdp/pdp/trail"
)

// TestTrailRecordsKeepTheirFormat (issue 15): decisions answered over
// HTTP by the real server, in sync and async mode, are recorded by the
// hand-written encoder in exactly the bytes encoding/json writes for the
// same record (the trail's format 1, unchanged), and the auditor's tools
// read them: `pdp log verify` passes, `pdp replay` reproduces every
// decision, `pdp explain` and `pdp audit query` find them.
func TestTrailRecordsKeepTheirFormat(t *testing.T) {
	for _, mode := range []string{"sync", "async"} {
		t.Run(mode, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "trail")
			t.Setenv("PDP_TRAIL_DIR", dir)
			t.Setenv("PDP_TRAIL_MODE", mode)
			s := startNorthbank(t)
			var ids []string
			ask := func(app, subject, action, resource, ctx string) {
				body := `{"subject":` + subject + `,"action":{"name":"` + action + `"},"resource":` + resource + `,"context":` + ctx + `}`
				code, data := s.do(t, http.MethodPost, "/access/v1/evaluation", body, demoKey(app)...)
				var a answer
				if err := json.Unmarshal(data, &a); code != http.StatusOK || err != nil || a.Context.DecisionID == "" {
					t.Fatalf("evaluation: %d %s", code, data)
				}
				ids = append(ids, a.Context.DecisionID)
			}
			user := func(id string) string { return `{"type":"user","id":"` + id + `"}` }
			acc := func(id string) string { return `{"type":"account","id":"` + id + `"}` }
			ask("mobile-banking", user("bob"), "make_payment", acc("acc-alice"), forUser("alice", `,"amount":250,"currency":"EUR"`))
			ask("mobile-banking", user("bob"), "make_payment", acc("acc-alice"), forUser("alice", `,"amount":1500.25,"currency":"EUR"`))
			ask("mobile-banking", user("frank"), "view_statements", acc("acc-acme"), forAcme(""))
			ask("mobile-banking", user("alice"), "view_statements", acc("acc-alice"), `{"purpose":"account_servicing"}`)
			ask("advisor-portal", user("gina"), "view_portfolio", acc("acc-alice"), `{"purpose":"financial_advice"}`)
			ask("marketing-hub", user("gina"), "view_portfolio", acc("acc-alice"), `{"purpose":"financial_advice"}`)
			// Escapes encoding/json applies: HTML characters, U+2028, control bytes, non-ASCII.
			ask("mobile-banking", `{"type":"user","id":"mallory","properties":{"note":"<b>&amp; \u2028 \u0001 é","n":1e-7}}`,
				"view_statements", acc("acc-alice"), `{"purpose":"account_servicing","x":[1,{"y":null}]}`)
			s.stop(t)

			l, err := trail.OpenFile(dir, trail.FileOptions{})
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			err = l.Scan(0, l.Size(), func(r trail.Record) error {
				if r.Kind != recorder.KindDecision {
					return nil
				}
				seen[r.ID] = true
				dec := json.NewDecoder(bytes.NewReader(r.Body))
				dec.UseNumber()
				var b recorder.DecisionBody
				if err := dec.Decode(&b); err != nil {
					return fmt.Errorf("record %d: %w", r.Seq, err)
				}
				if want, err := json.Marshal(b); err != nil || !bytes.Equal(r.Body, want) {
					return fmt.Errorf("record %d is not encoding/json's encoding of itself (%v):\n got %s\nwant %s", r.Seq, err, r.Body, want)
				}
				return nil
			})
			_ = l.Close()
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range ids {
				if !seen[id] {
					t.Errorf("decision %s answered but not in the trail", id)
				}
			}

			if code, out, errOut := logRun("verify", "--dir", dir); code != exitOK {
				t.Fatalf("log verify: %d\n%s\n%s", code, out, errOut)
			}
			code, out, errOut := pdpRun("replay", "--dir", dir, "--json", "--quiet")
			var rep audit.ReplayReport
			if err := json.Unmarshal([]byte(out), &rep); err != nil || code != exitOK || rep.Reproduced != uint64(len(ids)) {
				t.Fatalf("replay: %d %v, %+v (want %d reproduced)\n%s", code, err, rep, len(ids), errOut)
			}
			if code, out, errOut := pdpRun("explain", "--dir", dir, ids[0]); code != exitOK || !strings.Contains(out, ids[0]) {
				t.Fatalf("explain: %d\n%s\n%s", code, out, errOut)
			}
			if code, out, errOut := pdpRun("audit", "query", "--dir", dir, "--result", "deny"); code != exitOK || !strings.Contains(out, ids[1]) {
				t.Fatalf("audit query: %d\n%s\n%s", code, out, errOut)
			}
		})
	}
}
