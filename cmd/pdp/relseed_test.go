package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp/consent"
)

// TestNorthbankSeedTimes: the Northbank consent seed's times relative to
// seed time are resolved at the first start on a fresh data folder —
// alice's advice grant given 67 days before it, her account information
// grant 14 days before and ending 166 days after, bob's power of
// attorney last used the day before — and a restart on the same folder
// keeps the first start's times (a restart is neither a grant nor a use).
func TestNorthbankSeedTimes(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("PDP_CONSENT_PATH", filepath.Join(dir, "consent.jsonl"))
	t.Setenv("PDP_DELEGATIONS_PATH", filepath.Join(dir, "delegations.jsonl"))
	t.Setenv("PDP_API_KEY", "demo-key-backoffice")
	const day = 24 * time.Hour
	grants := func(s *server) map[string]consent.Grant {
		t.Helper()
		var out, errOut bytes.Buffer
		if code := run(context.Background(), []string{"consent", "--server", s.URL, "get", "user:alice"}, strings.NewReader(""), &out, &errOut); code != exitOK {
			t.Fatalf("pdp consent get user:alice: exit %d: %s", code, errOut.String())
		}
		var st consent.State
		if err := json.Unmarshal(out.Bytes(), &st); err != nil {
			t.Fatalf("%v: %s", err, out.String())
		}
		m := map[string]consent.Grant{}
		for _, g := range st.Grants {
			m[g.ID] = g
		}
		return m
	}
	lastUse := func() time.Time {
		t.Helper()
		raw, err := os.ReadFile(filepath.Join(dir, "consent.jsonl.activity"))
		if err != nil {
			t.Fatal(err)
		}
		var act map[string]time.Time
		if err := json.Unmarshal(raw, &act); err != nil {
			t.Fatal(err)
		}
		return act["delegation#agent:poa-alice-bob"]
	}
	within := func(what string, got, from, to time.Time) {
		t.Helper()
		if got.Before(from) || got.After(to) {
			t.Fatalf("%s = %v, want between %v and %v", what, got, from, to)
		}
	}

	before := time.Now()
	s := startNorthbank(t)
	after := time.Now()
	first := grants(s)
	advice, ais := first["grant-alice-advice"], first["grant-alice-ais"]
	within("advice given", advice.GivenAt, before.Add(-67*day), after.Add(-67*day))
	within("account information given", ais.GivenAt, before.Add(-14*day), after.Add(-14*day))
	if ais.Expires == nil {
		t.Fatalf("account information grant without an end: %+v", ais)
	}
	within("account information ends", *ais.Expires, before.Add(166*day), after.Add(166*day))
	used := lastUse()
	within("poa-alice-bob last used", used, before.Add(-day), after.Add(-day))
	if d := s.nbAsk(t, "advisor-portal", user("gina"), "view_portfolio", `{"type":"account","id":"acc-alice"}`, `{"purpose":"financial_advice"}`); !d.Decision {
		t.Fatalf("gina on alice's advice grant: %v", d.Context.Reasons)
	}
	s.stop(t)

	time.Sleep(10 * time.Millisecond) // seed time at the restart differs
	s = startNorthbank(t)
	again := grants(s)
	for id, g := range first {
		h := again[id]
		if !h.GivenAt.Equal(g.GivenAt) || (g.Expires == nil) != (h.Expires == nil) || (g.Expires != nil && !g.Expires.Equal(*h.Expires)) {
			t.Errorf("%s after a restart: given %v, expires %v; the first start said %v, %v", id, h.GivenAt, h.Expires, g.GivenAt, g.Expires)
		}
	}
	if got := lastUse(); !got.Equal(used) {
		t.Errorf("poa-alice-bob's last use after a restart %v, the first start's %v: a restart is not a use", got, used)
	}
	if d := s.nbEvaluate(t, "bob", "make_payment", "acc-alice", forUser("alice", `,"amount":250,"currency":"EUR"`)); !d.Decision {
		t.Fatalf("bob pays for alice: %v", d.Context.Reasons)
	}
}

// relSuite is a policy test suite on the Northbank bundle whose consent
// seed is dated relative to the suite's now, a day long before the
// example's dates: alice's advice grant (67 days before) holds, judy's
// (800 days before; financial_advice lasts 730) has expired. Resolved
// against the wall clock instead, neither grant would yet be given.
const relSuite = `name: seed times on the suite's clock
application: advisor-portal
now: "2020-01-01T00:00:00Z"
relationships:
  - account:acc-alice#owner@user:alice
  - account:acc-judy#owner@user:judy
  - user:alice#advisor@user:gina
  - user:judy#advisor@user:gina
consents:
  events:
    - {id: cev-a, type: given, grant_id: g-a, subject: {type: user, id: alice}, application: advisor-portal,
       purpose: financial_advice, purpose_version: 1, applications: [advisor-portal], jurisdiction: DE,
       notice: {uri: "https://northbank.example/privacy/advice", version: 1}, at: seed-67d, recorded_at: seed-67d+1s}
    - {id: cev-j, type: given, grant_id: g-j, subject: {type: user, id: judy}, application: advisor-portal,
       purpose: financial_advice, purpose_version: 1, applications: [advisor-portal], jurisdiction: DE,
       notice: {uri: "https://northbank.example/privacy/advice", version: 1}, at: seed-800d}
cases:
  - name: alice's grant, 67 days old
    request: {subject: {type: user, id: gina}, action: {name: view_portfolio}, resource: {type: account, id: acc-alice}, context: {purpose: financial_advice}}
    expect: {decision: true}
  - name: judy's grant, 800 days old
    request: {subject: {type: user, id: gina}, action: {name: view_portfolio}, resource: {type: account, id: acc-judy}, context: {purpose: financial_advice}}
    expect: {decision: false, reasons: [consent_expired]}
`

// TestPolicySuiteSeedTimes: `pdp test` resolves a suite's relative seed
// times against the suite's now (its ledger's clock); a bad one fails the
// run naming the event and the field.
func TestPolicySuiteSeedTimes(t *testing.T) {
	abs, err := filepath.Abs(northbank)
	if err != nil {
		t.Fatal(err)
	}
	suite := func(t *testing.T, content string) (int, string) {
		t.Helper()
		dir := t.TempDir()
		for _, d := range []string{"policies", "schema"} {
			if err := os.CopyFS(filepath.Join(dir, d), os.DirFS(filepath.Join(abs, d))); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.MkdirAll(filepath.Join(dir, "tests"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "tests", "seed_test.yaml"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		var out, errOut bytes.Buffer
		code := run(context.Background(), []string{"test", dir}, strings.NewReader(""), &out, &errOut)
		return code, out.String() + errOut.String()
	}
	if code, out := suite(t, relSuite); code != exitOK || !strings.Contains(out, "2 passed, 0 failed") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	code, out := suite(t, strings.Replace(relSuite, "at: seed-800d", "at: seed-800days", 1))
	if code == exitOK || !strings.Contains(out, `event "cev-j": at: not a seed time: "seed-800days"`) {
		t.Fatalf("a bad seed time: exit %d:\n%s", code, out)
	}
}
