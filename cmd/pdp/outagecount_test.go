package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"testing"
)

// TestOutageAtThresholdDoesNotPublish, through the binary on the
// Northbank example with its decision trail (sync) on a real file system
// that fills up: bob one failed step-up short of his hold (3) and an IP
// one denial short of its velocity block (30). While the trail is full,
// every further failure and denial reaches the threshold as the
// decisions see it and is dropped (answered trail_unavailable); no
// decision is answered with those pending blocks, so the sidecars' change
// feed is not told (its seq stays): before, each failing decision was a
// publish waiting on the sidecars. Once space returns, the recorded
// failure that begins the hold is told.
func TestOutageAtThresholdDoesNotPublish(t *testing.T) {
	root := t.TempDir()
	trailDir := filepath.Join(root, "trail")
	fill, free := mountFull(t, trailDir)
	storageEnv(t, filepath.Join(root, "data"), trailDir)
	s := startNorthbank(t)
	const key = "demo-key-mobile-banking"
	noise := make([]byte, 6144) // incompressible, longer than a page: no record fits the slack of a failed write
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
	unavailable := func(a sidecarAnswer) bool { return slices.Equal(a.Context.Reasons, []string{"trail_unavailable"}) }
	seq := func() uint64 {
		t.Helper()
		code, data := s.do(t, http.MethodGet, "/v1/changes?wait=0s", "", "Authorization", "Bearer "+key, "PDP-Sidecar-Id", "outage-watch")
		var a struct {
			Seq uint64 `json:"seq"`
		}
		if code != http.StatusOK || json.Unmarshal(data, &a) != nil {
			t.Fatalf("changes: %d %s", code, data)
		}
		return a.Seq
	}
	subject := func(id string) string {
		return `{"type":"user","id":"` + id + `","properties":{"note":"` + note + `"}}`
	}
	bobFails := `{"subject":` + subject("bob") + `,"action":{"name":"complete_step_up"},"resource":{"type":"user","id":"bob"},` +
		`"context":{"purpose":"account_servicing","step_up":{"outcome":"failed"}}}`
	stuffed := func(i int) string {
		return `{"subject":` + subject(fmt.Sprintf("stuffed-%d", i)) + `,"action":{"name":"view_statements"},"resource":{"type":"account","id":"acc-alice"},` +
			`"context":{"purpose":"account_servicing","ip":"203.0.113.9"}}`
	}

	for range 2 {
		if a := ask(bobFails); !a.Decision {
			t.Fatalf("bob's recorded failed step-up: %v %s", a.Context.Reasons, a.Context.Message)
		}
	}
	for i := range 29 {
		if a := ask(stuffed(i)); a.Decision || unavailable(a) {
			t.Fatalf("a recorded denial from the IP: %v %v", a.Decision, a.Context.Reasons)
		}
	}
	before := seq()

	fill()
	for i := 0; ; i++ { // the trail's last pages still take a few records
		if unavailable(ask(aliceViews)) {
			break
		}
		if i == 1000 {
			t.Fatal("the decision trail still takes records on a full file system")
		}
	}
	const n = 20
	for i := range n {
		fill() // again after the trail cut a failed write back
		if a := ask(bobFails); !unavailable(a) {
			t.Fatalf("bob's failed step-up %d with the trail full: %v %v", i, a.Decision, a.Context.Reasons)
		}
		fill()
		if a := ask(stuffed(100 + i)); !unavailable(a) {
			t.Fatalf("denial %d from the IP with the trail full: %v %v", i, a.Decision, a.Context.Reasons)
		}
	}
	if after := seq(); after != before {
		t.Fatalf("%d failing decisions at their thresholds, none answered with the pending blocks: change feed went from seq %d to %d, want no change", 2*n, before, after)
	}

	free()
	eventually(t, "/readyz is 200 again", func() bool {
		code, _ := s.do(t, http.MethodGet, "/readyz", "")
		return code == http.StatusOK
	})
	if a := ask(bobPays); !a.Decision || len(a.Context.Obligations) != 0 {
		t.Fatalf("bob pays after unrecorded failures: %v %v", a.Decision, a.Context.Obligations)
	}
	if a := ask(bobFails); !a.Decision {
		t.Fatalf("bob's third recorded failed step-up: %v", a.Context.Reasons)
	}
	if after := seq(); after <= before {
		t.Fatalf("the recorded failure that began bob's hold: change feed at seq %d, want past %d", after, before)
	}
	if a := ask(bobPays); !slices.Equal(a.Context.Obligations, []string{"step_up_authentication"}) {
		t.Fatalf("bob pays after three recorded failures: %v %v", a.Decision, a.Context.Obligations)
	}
}
