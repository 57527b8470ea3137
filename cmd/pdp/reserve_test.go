package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestCountsWaitForTheirRecords, through the binary on the Northbank
// example with its decision trail (sync) on a real file system that
// fills up: failed step-ups and velocity denials whose records could not
// be written (answered deny trail_unavailable) are not counted, and a
// success whose record could not be written does not lift a hold; once
// space returns, counting resumes. The requests carry a random note
// (incompressible, in subject.properties, which the evaluation ignores
// for a known subject and the record keeps) longer than a page, so that
// a record cannot fit in the slack the trail's failed write left (tmpfs
// allocates whole pages). Everything unrecorded is tried in one outage:
// once space returns the trail preallocates ahead of its records.
func TestCountsWaitForTheirRecords(t *testing.T) {
	root := t.TempDir()
	trailDir := filepath.Join(root, "trail")
	fill, free := mountFull(t, trailDir)
	storageEnv(t, filepath.Join(root, "data"), trailDir)
	s := startNorthbank(t)
	const key = "demo-key-mobile-banking"
	noise := make([]byte, 6144)
	_, _ = rand.Read(noise)
	note := base64.StdEncoding.EncodeToString(noise)
	ask := func(body string) sidecarAnswer {
		t.Helper()
		code, data, err := postJSON(s.URL, "/access/v1/evaluation", key, body)
		var a sidecarAnswer
		if err != nil || code != http.StatusOK || json.Unmarshal(data, &a) != nil {
			t.Fatalf("evaluation: %d %s %v", code, data, err)
		}
		return a
	}
	want := func(what string, a sidecarAnswer, allowed bool, reasons, obligations []string) {
		t.Helper()
		if reasons == nil {
			reasons = []string{}
		}
		if obligations == nil {
			obligations = []string{}
		}
		if a.Decision != allowed || !slices.Equal(a.Context.Reasons, reasons) || !slices.Equal(a.Context.Obligations, obligations) {
			t.Fatalf("%s: got %v %v %v (%s), want %v %v %v", what, a.Decision, a.Context.Reasons, a.Context.Obligations, a.Context.Message, allowed, reasons, obligations)
		}
	}
	unrecorded := func(what, body string) {
		t.Helper()
		fill()
		want(what+", with the trail full", ask(body), false, []string{"trail_unavailable"}, nil)
	}
	subject := func(id string) string {
		return `{"type":"user","id":"` + id + `","properties":{"note":"` + note + `"}}`
	}
	report := func(user, outcome string) string {
		return `{"subject":` + subject(user) + `,"action":{"name":"complete_step_up"},"resource":{"type":"user","id":"` + user + `"},` +
			`"context":{"purpose":"account_servicing","step_up":{"outcome":"` + outcome + `"}}}`
	}
	stuffed := func(i int) string {
		return `{"subject":` + subject(fmt.Sprintf("stuffed-%d", i)) + `,"action":{"name":"view_statements"},"resource":{"type":"account","id":"acc-alice"},` +
			`"context":{"purpose":"account_servicing","ip":"203.0.113.9"}}`
	}
	const viewFromIP = `{"subject":{"type":"user","id":"alice"},"action":{"name":"view_statements"},"resource":{"type":"account","id":"acc-alice"},` +
		`"context":{"purpose":"account_servicing","ip":"203.0.113.9"}}`
	stepUp := []string{"step_up_authentication"}

	// Recorded: alice failed three step-ups; she pays only with a step-up.
	for range 3 {
		want("alice's recorded failed step-up", ask(report("alice", "failed")), true, nil, nil)
	}
	want("alice pays", ask(alicePays), true, nil, stepUp)
	want("bob pays for alice", ask(bobPays), true, nil, nil)

	fill()
	for i := 0; ; i++ { // the trail's last pages still take a few records
		if a := ask(aliceViews); slices.Equal(a.Context.Reasons, []string{"trail_unavailable"}) {
			break
		}
		if i == 1000 {
			t.Fatal("the decision trail still takes records on a full file system")
		}
	}
	unrecorded("alice's successful step-up", report("alice", "succeeded"))
	for range 3 {
		unrecorded("bob's failed step-up", report("bob", "failed"))
	}
	for i := range 30 {
		unrecorded("a denial from the IP", stuffed(i))
	}

	free()
	eventually(t, "/readyz is 200 again", func() bool {
		code, _ := s.do(t, http.MethodGet, "/readyz", "")
		return code == http.StatusOK
	})
	want("alice pays after an unrecorded success", ask(alicePays), true, nil, stepUp)
	want("bob pays after three unrecorded failures", ask(bobPays), true, nil, nil)
	want("alice views from the IP after 30 unrecorded denials", ask(viewFromIP), true, nil, nil)

	// Counting resumes.
	want("alice's recorded success", ask(report("alice", "succeeded")), true, nil, nil)
	want("alice pays after a recorded success", ask(alicePays), true, nil, nil)
	var first string
	for i := range 3 {
		a := ask(report("bob", "failed"))
		want("bob's recorded failed step-up", a, true, nil, nil)
		if i == 0 {
			first = a.Context.DecisionID
		}
	}
	if words, _ := s.explain(t, first); !strings.Contains(words, `User::"bob" reported a failed step-up: 1 within 10m0s`) {
		t.Fatalf("bob's first recorded report does not count one failure:\n%s", words)
	}
	want("bob pays after three recorded failures", ask(bobPays), true, nil, stepUp)
	for i := range 30 {
		want("a recorded denial from the IP", ask(stuffed(i)), false, []string{"no_relationship"}, nil)
	}
	want("alice views from the IP after 30 recorded denials", ask(viewFromIP), false, []string{"risk_velocity"}, nil)
}
