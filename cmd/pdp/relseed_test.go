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
