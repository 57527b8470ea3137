package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// activityReport is the part of the auditor's dormancy report that names
// the last activity.
type activityReport struct {
	Identities []struct {
		Subject    struct{ Type, ID string } `json:"subject"`
		LastActive string                    `json:"last_active"`
	} `json:"identities"`
	Delegations []struct {
		ID       string `json:"id"`
		LastUsed string `json:"last_used"`
	} `json:"delegations"`
}

func (s *server) activityReport(t *testing.T) activityReport {
	t.Helper()
	code, data := s.do(t, http.MethodGet, "/v1/audit/dormancy", "", "Authorization", "Bearer demo-key-auditor")
	if code != http.StatusOK {
		t.Fatalf("dormancy report: %d %s", code, data)
	}
	var r activityReport
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestActivityWaitsForItsRecord, through the binary on the Northbank
// example with its decision trail (sync) on a real file system that
// fills up: heidi (revalidated) and victor with alice's power of attorney
// (re-confirmed) are allowed, but while the trail cannot take their
// records their decisions are answered deny trail_unavailable and mark no
// activity: once space returns, the first recorded decisions still find
// the seeded last activity (heidi's on 2023-01-10, the power of
// attorney's last use on 2023-05-02) and their records say so; those
// recorded decisions mark it, so the next ones find none past a rule.
// The dormancy report shows the seeded activity before, and neither
// identity nor delegation dormant after. The requests carry a random note
// longer than a page (see TestCountsWaitForTheirRecords) so that a record
// cannot fit in the slack a failed write left.
//
// The activity's store is checked after a flush interval: on files, the
// activity file holds the seeded times; on PostgreSQL, the first recorded
// decisions read the store (their activity looks dormant) and find the
// seeded times there.
func TestActivityWaitsForItsRecord(t *testing.T) {
	t.Run("files", func(t *testing.T) {
		activityScenario(t, "")
	})
	t.Run("postgres", func(t *testing.T) {
		uri := testDatabase(t)
		t.Setenv("PDP_CONSENT_ENGINE", "postgres")
		t.Setenv("PDP_CONSENT_POSTGRES_URI", uri)
		activityScenario(t, uri)
	})
}

// activityFlush is longer than the consent ledger's activity flush
// interval (5 s).
const activityFlush = 6 * time.Second

func activityScenario(t *testing.T, postgres string) {
	root := t.TempDir()
	trailDir := filepath.Join(root, "trail")
	fill, free := mountFull(t, trailDir)
	data := filepath.Join(root, "data")
	storageEnv(t, data, trailDir)
	s := startNorthbank(t)
	noise := make([]byte, 6144)
	_, _ = rand.Read(noise)
	note := base64.StdEncoding.EncodeToString(noise)
	ask := func(body string) sidecarAnswer {
		t.Helper()
		code, data, err := postJSON(s.URL, "/access/v1/evaluation", "demo-key-mobile-banking", body)
		var a sidecarAnswer
		if err != nil || code != http.StatusOK || json.Unmarshal(data, &a) != nil {
			t.Fatalf("evaluation: %d %s %v", code, data, err)
		}
		return a
	}
	want := func(what string, a sidecarAnswer, allowed bool, reasons ...string) sidecarAnswer {
		t.Helper()
		if reasons == nil {
			reasons = []string{}
		}
		if a.Decision != allowed || !slices.Equal(a.Context.Reasons, reasons) {
			t.Fatalf("%s: got %v %v (%s), want %v %v", what, a.Decision, a.Context.Reasons, a.Context.Message, allowed, reasons)
		}
		return a
	}
	views := func(user, account, onBehalf string) string {
		ctx := `{"purpose":"account_servicing"`
		if onBehalf != "" {
			ctx += `,"on_behalf_of":{"type":"user","id":"` + onBehalf + `"}`
		}
		return `{"subject":{"type":"user","id":"` + user + `","properties":{"note":"` + note + `"}},"action":{"name":"view_statements"},` +
			`"resource":{"type":"account","id":"` + account + `"},"context":` + ctx + `}}`
	}
	heidi, victor := views("heidi", "acc-heidi", ""), views("victor", "acc-alice", "alice")
	explains := func(what, id string, has []string, hasNot []string) {
		t.Helper()
		words, replay := s.explain(t, id)
		for _, w := range has {
			if !strings.Contains(words, w) {
				t.Fatalf("%s: the explanation lacks %q:\n%s", what, w, words)
			}
		}
		for _, w := range hasNot {
			if strings.Contains(words, w) {
				t.Fatalf("%s: the explanation has %q:\n%s", what, w, words)
			}
		}
		if replay != "reproduced" {
			t.Fatalf("%s: replay %s", what, replay)
		}
	}

	// Before: the report shows the seeded activity.
	rep := s.activityReport(t)
	if len(rep.Identities) != 1 || rep.Identities[0].Subject.ID != "heidi" || rep.Identities[0].LastActive != "2023-01-10T09:00:00Z" ||
		len(rep.Delegations) != 1 || rep.Delegations[0].ID != "poa-alice-victor" || rep.Delegations[0].LastUsed != "2023-05-02T16:20:00Z" {
		t.Fatalf("report before: %+v", rep)
	}
	if code, data := s.do(t, http.MethodPost, "/v1/dormancy/identities/user:heidi/revalidate",
		`{"actor":{"type":"staff","id":"kim"},"reason":"identity checked at the branch"}`, demoKey("backoffice")...); code != http.StatusCreated {
		t.Fatalf("revalidate heidi: %d %s", code, data)
	}
	if code, data := s.do(t, http.MethodPost, "/v1/dormancy/delegations/poa-alice-victor/reconfirm",
		`{"actor":{"type":"user","id":"alice"}}`, demoKey("mobile-banking")...); code != http.StatusCreated {
		t.Fatalf("alice re-confirms: %d %s", code, data)
	}

	fill()
	for i := 0; ; i++ { // the trail's last pages still take a few records
		if a := ask(aliceViews); slices.Equal(a.Context.Reasons, []string{"trail_unavailable"}) {
			break
		}
		if i == 1000 {
			t.Fatal("the decision trail still takes records on a full file system")
		}
	}
	for range 3 {
		fill()
		want("heidi views with the trail full", ask(heidi), false, "trail_unavailable")
		fill()
		want("victor views for alice with the trail full", ask(victor), false, "trail_unavailable")
	}

	time.Sleep(activityFlush)
	if postgres == "" {
		b, err := os.ReadFile(filepath.Join(data, "consent.jsonl.activity"))
		var stored map[string]string
		if err != nil || json.Unmarshal(b, &stored) != nil {
			t.Fatalf("the activity file: %v %s", err, b)
		}
		if stored["user:heidi"] != "2023-01-10T09:00:00Z" || stored["delegation#agent:poa-alice-victor"] != "2023-05-02T16:20:00Z" {
			t.Fatalf("unrecorded decisions' activity was stored: %s", b)
		}
	}

	free()
	eventually(t, "/readyz is 200 again", func() bool {
		code, _ := s.do(t, http.MethodGet, "/readyz", "")
		return code == http.StatusOK
	})
	first := want("heidi views, recorded", ask(heidi), true)
	explains("heidi's first recorded decision", first.Context.DecisionID,
		[]string{"Dormancy: user:heidi (last activity 2023-01-10 09:00:00Z", "(admin, by staff:kim) ended it"}, nil)
	first = want("victor views for alice, recorded", ask(victor), true)
	explains("victor's first recorded decision", first.Context.DecisionID,
		[]string{"Dormancy: delegation poa-alice-victor (last activity 2023-05-02 16:20:00Z", "ended it"}, nil)

	// The recorded decisions marked the activity.
	next := want("heidi views again", ask(heidi), true)
	explains("heidi's next decision", next.Context.DecisionID, nil, []string{"Dormancy:"})
	next = want("victor views for alice again", ask(victor), true)
	explains("victor's next decision", next.Context.DecisionID, nil, []string{"Dormancy:"})

	if rep := s.activityReport(t); len(rep.Identities) != 0 || len(rep.Delegations) != 0 {
		t.Fatalf("report after: %+v", rep)
	}
}
