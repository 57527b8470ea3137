// Package northbank_test checks the Northbank example's data against the
// calendar: the walkthroughs (README.md, run by cmd/pdp's tests) make
// claims that hold only while some date of the data is still ahead.
package northbank_test

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/ciampdp/pdp/internal/seedtime"
	"github.com/ciampdp/pdp/pdp/consent"
)

// warnAhead is how far ahead a date the example depends on must lie: a
// claim that will expire is found this many years before it does.
const warnAhead = 5

// keepFor is how long after seed time (the first start on a fresh data
// folder, which dates the seed's relative times) a claim of the
// walkthroughs that rests on a relative time must hold: a data folder of
// the example may be kept and tried again for a year. A grant of a
// purpose whose longest validity is shorter (PSD2 account information
// sharing: 180 days) cannot; it must be given at most recentGrant before
// seed time and last its longest validity (cmd/pdp's tests, each on a
// fresh data folder, rely on it; a walkthrough does not).
const (
	keepFor     = 365 * 24 * time.Hour
	recentGrant = 30 * 24 * time.Hour
)

// TestDatesOutliveTheExample: every date in the example's files (README,
// seeds, entities, policy tests), and every date derived from them by
// the example's rules — carol's age of consent, the end of each grant,
// the day an unused power of attorney turns dormant — is either past
// (the claims about it only grow truer) or at least warnAhead years
// ahead. A seed time relative to seed time ("seed-67d", consents.json)
// lies at or before seed time when it dates history, and what is derived
// from it lies at least keepFor after seed time.
func TestDatesOutliveTheExample(t *testing.T) {
	now := time.Now().UTC()
	horizon := now.AddDate(warnAhead, 0, 0)
	var soon []string
	for file, dates := range literalDates(t) {
		for _, d := range dates {
			if d.After(now) && d.Before(horizon) {
				soon = append(soon, fmt.Sprintf("a date in %s on %s", file, d.Format(time.DateOnly)))
			}
		}
	}
	derived := derivedDates(t)
	for what, d := range derived {
		switch {
		case d.relative && d.shortLived > 0:
			if least := d.shortLived - recentGrant; d.offset < least {
				t.Errorf("%s %s after seed time: a grant its purpose allows for %s only must be given at most %s before seed time and last that long", what, dur(d.offset), dur(d.shortLived), dur(recentGrant))
			}
		case d.relative:
			if d.offset < keepFor {
				t.Errorf("%s %s after seed time: less than %s; a data folder kept that long would break a walkthrough claim", what, dur(d.offset), dur(keepFor))
			}
		case d.at.After(now) && d.at.Before(horizon):
			soon = append(soon, fmt.Sprintf("%s on %s", what, d.at.Format(time.DateOnly)))
		}
	}
	for _, what := range []string{"grant grant-alice-ais ends", "grant grant-alice-advice ends", "delegation poa-alice-bob becomes dormant"} {
		if d, ok := derived[what]; !ok || !d.relative {
			t.Errorf("%s: want it relative to seed time (consents.json), so that the walkthroughs hold after any first run", what)
		}
	}
	slices.Sort(soon)
	for _, s := range soon {
		t.Errorf("%s: less than %d years ahead; a walkthrough or test claim depends on it — move it further ahead (or past), or make it relative to seed time", s, warnAhead)
	}
}

// dur writes a duration in days (and the rest).
func dur(d time.Duration) string {
	days := d / (24 * time.Hour)
	if rest := d - days*24*time.Hour; rest != 0 {
		return fmt.Sprintf("%dd%s", days, rest)
	}
	return fmt.Sprintf("%dd", days)
}

var dateRE = regexp.MustCompile(`\b(\d{4})-(\d{2})-(\d{2})\b`)

// literalDates are the dates written in the example's text files, by
// file (the PDP's data folder, which a run writes, left out).
func literalDates(t *testing.T) map[string][]time.Time {
	t.Helper()
	out := map[string][]time.Time{}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path == "data" {
				return filepath.SkipDir
			}
			return nil
		}
		switch filepath.Ext(path) {
		case ".md", ".json", ".yaml", ".cedar", ".txt", ".zed", ".cedarschema":
		default:
			return nil
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range dateRE.FindAllString(string(raw), -1) {
			if d, err := time.Parse(time.DateOnly, m); err == nil {
				out[path] = append(out[path], d)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatal("no dates found: is the test running in examples/northbank?")
	}
	return out
}

// derived is a date derived by the example's rules: absolute (at), or
// relative to seed time (offset after it). shortLived is set for a grant
// whose purpose allows less than keepFor: that longest validity.
type derived struct {
	at         time.Time
	relative   bool
	offset     time.Duration
	shortLived time.Duration
}

// derivedDates are the dates the example's rules make of its data.
func derivedDates(t *testing.T) map[string]derived {
	t.Helper()
	out := map[string]derived{}
	var purposes struct {
		Purposes map[string]struct {
			Rules map[string]struct {
				MaxValidity string `yaml:"max_validity"`
				MinAge      int    `yaml:"min_age"`
			} `yaml:"rules"`
		} `yaml:"purposes"`
	}
	readYAML(t, "schema/purposes.yaml", &purposes)
	var dormancy struct {
		Identities []struct {
			ID    string `yaml:"id"`
			After string `yaml:"after"`
		} `yaml:"identities"`
		Delegations []struct {
			Basis       string `yaml:"basis"`
			UnusedAfter string `yaml:"unused_after"`
		} `yaml:"delegations"`
	}
	readYAML(t, "schema/dormancy.yaml", &dormancy)

	// Each minor reaches each age of consent of the registry.
	var entities []struct {
		UID   struct{ ID string }        `json:"uid"`
		Attrs map[string]json.RawMessage `json:"attrs"`
	}
	readJSON(t, "policies/entities.json", &entities)
	for _, e := range entities {
		raw, ok := e.Attrs["birth_date"]
		if !ok {
			continue
		}
		var born struct {
			Extn struct {
				Arg string `json:"arg"`
			} `json:"__extn"`
		}
		if err := json.Unmarshal(raw, &born); err != nil {
			t.Fatalf("%s's birth_date: %v", e.UID.ID, err)
		}
		b, err := time.Parse(time.DateOnly, born.Extn.Arg)
		if err != nil {
			t.Fatalf("%s's birth_date: %v", e.UID.ID, err)
		}
		for name, p := range purposes.Purposes {
			for j, r := range p.Rules {
				if r.MinAge > 0 {
					out[fmt.Sprintf("%s reaches %s's age of consent in %s (%d)", e.UID.ID, name, j, r.MinAge)] = derived{at: b.AddDate(r.MinAge, 0, 0)}
				}
			}
		}
	}

	// The seed of the consent ledger, read as the PDP reads it: its times
	// may be relative to seed time.
	f, err := os.Open("consents.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seed, err := consent.DecodeSeed(f)
	if err != nil {
		t.Fatalf("consents.json: %v", err)
	}
	// history: a seeded time relative to seed time is at or before it.
	history := func(what string, st seedtime.Time) {
		if st.IsRelative() && st.Offset() > 0 {
			t.Errorf("%s %s: after seed time, but a seed is history", what, st)
		}
	}

	// Each grant ends at its expiry or its purpose's longest validity.
	for _, ev := range seed.Events {
		history("event "+ev.ID+" at", ev.At)
		history("event "+ev.ID+" recorded_at", ev.RecordedAt)
		if ev.Type != consent.EventGiven {
			continue
		}
		times := []seedtime.Time{ev.At}
		if !ev.Expires.IsZero() {
			times = append(times, ev.Expires)
		}
		relative := ev.At.IsRelative()
		for _, st := range times {
			if st.IsRelative() != relative {
				t.Errorf("grant %s mixes times relative to seed time and absolute ones (%s, %s): its end would depend on the day of the first run", ev.GrantID, ev.At, ev.Expires)
			}
		}
		// With relative times, seed time is the zero time: an end is its
		// offset from it.
		var zero time.Time
		var ends []time.Time
		if !ev.Expires.IsZero() {
			ends = append(ends, ev.Expires.Resolve(zero))
		}
		var longest time.Duration
		for _, r := range purposes.Purposes[ev.Purpose].Rules {
			if r.MaxValidity != "" {
				v := days(t, r.MaxValidity)
				ends = append(ends, ev.At.Resolve(zero).Add(v))
				longest = max(longest, v)
			}
		}
		if len(ends) == 0 {
			continue
		}
		end := slices.MinFunc(ends, time.Time.Compare)
		d := derived{at: end}
		if relative {
			d = derived{relative: true, offset: end.Sub(zero)}
			if longest > 0 && longest < keepFor {
				d.shortLived = longest
			}
		}
		out["grant "+ev.GrantID+" ends"] = d
	}

	// An identity with a recorded activity turns dormant after it.
	lastUse := map[string]seedtime.Time{}
	for k, st := range seed.Activity {
		history("activity "+k, st)
		if id, ok := strings.CutPrefix(k, "delegation#agent:"); ok {
			lastUse[id] = st
			continue
		}
		if strings.Contains(k, "#") || len(dormancy.Identities) == 0 {
			continue
		}
		after := days(t, dormancy.Identities[0].After)
		for _, r := range dormancy.Identities[1:] {
			after = min(after, days(t, r.After))
		}
		if st.IsRelative() {
			out["identity "+k+" turns dormant"] = derived{relative: true, offset: st.Offset() + after}
		} else {
			out["identity "+k+" turns dormant"] = derived{at: st.Resolve(time.Time{}).Add(after)}
		}
	}

	// Each delegation ends; an active one of a dormancy rule's basis turns
	// dormant after its acceptance (or creation), or its last use when
	// the seed records one after it.
	var delegations []struct {
		ID         string     `json:"id"`
		Status     string     `json:"status"`
		Basis      string     `json:"basis"`
		ValidUntil time.Time  `json:"valid_until"`
		CreatedAt  time.Time  `json:"created_at"`
		AcceptedAt *time.Time `json:"accepted_at"`
	}
	readJSON(t, "delegations.json", &delegations)
	for _, d := range delegations {
		out["delegation "+d.ID+" ends"] = derived{at: d.ValidUntil}
		if d.Status != "active" {
			continue
		}
		since := d.CreatedAt
		if d.AcceptedAt != nil {
			since = *d.AcceptedAt
		}
		for _, r := range dormancy.Delegations {
			if r.Basis != d.Basis {
				continue
			}
			unused := days(t, r.UnusedAfter)
			what := "delegation " + d.ID + " becomes dormant"
			switch used, ok := lastUse[d.ID]; {
			case ok && used.IsRelative():
				// Seed time is the first start, after the delegation's
				// acceptance (a date of the past): the use is the later.
				if !since.Before(time.Now()) {
					t.Errorf("%s: accepted %s, not in the past, but used relative to seed time", d.ID, since)
				}
				out[what] = derived{relative: true, offset: used.Offset() + unused}
			case ok && used.Resolve(time.Time{}).After(since):
				out[what] = derived{at: used.Resolve(time.Time{}).Add(unused)}
			default:
				out[what] = derived{at: since.Add(unused)}
			}
		}
	}
	return out
}

// days parses a duration in days, "730d".
func days(t *testing.T, s string) time.Duration {
	t.Helper()
	n, err := strconv.Atoi(strings.TrimSuffix(s, "d"))
	if err != nil || !strings.HasSuffix(s, "d") {
		t.Fatalf("duration %q: want days, such as 730d", s)
	}
	return time.Duration(n) * 24 * time.Hour
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
