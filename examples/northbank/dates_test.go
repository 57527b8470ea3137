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
)

// warnAhead is how far ahead a date the example depends on must lie: a
// claim that will expire is found this many years before it does.
const warnAhead = 5

// knownBreaks are the dates less than warnAhead years ahead that the
// example cannot move: each follows from a rule relative to the present
// (a grant's longest validity, a power of attorney's dormancy) applied to
// a seeded event that must lie in the past. They are logged, not failed;
// the day each passes, the tests named fail and the seed must change
// (or seeding must become relative to the first run).
var knownBreaks = map[string]string{
	"grant grant-alice-ais ends":               "PSD2 account information sharing lasts 180 days (schema/purposes.yaml); cmd/pdp's tests give alice a fresh grant where they need one",
	"grant grant-alice-advice ends":            "financial_advice lasts 730 days; the consent walkthrough's first claim (gina views alice's portfolio) fails after",
	"delegation poa-alice-bob becomes dormant": "a power of attorney unused for 730 days is dormant (schema/dormancy.yaml); bob's payments in the walkthroughs fail after",
}

// TestDatesOutliveTheExample: every date in the example's files (README,
// seeds, entities, policy tests), and every date derived from them by
// the example's rules — carol's age of consent, the end of each grant,
// the day an unused power of attorney turns dormant — is either past
// (the claims about it only grow truer) or at least warnAhead years
// ahead, unless it is one of knownBreaks.
func TestDatesOutliveTheExample(t *testing.T) {
	now := time.Now().UTC()
	horizon := now.AddDate(warnAhead, 0, 0)
	var soon []string
	check := func(what string, at time.Time) {
		if at.After(now) && at.Before(horizon) {
			if why, ok := knownBreaks[what]; ok {
				t.Logf("known: %s on %s (%s)", what, at.Format(time.DateOnly), why)
				return
			}
			soon = append(soon, fmt.Sprintf("%s on %s", what, at.Format(time.DateOnly)))
		}
	}
	for file, dates := range literalDates(t) {
		for _, d := range dates {
			check("a date in "+file, d)
		}
	}
	for what, at := range derivedDates(t) {
		check(what, at)
	}
	for what := range knownBreaks {
		if _, ok := derivedDates(t)[what]; !ok {
			t.Errorf("knownBreaks lists %q, which the example no longer has: remove it", what)
		}
	}
	slices.Sort(soon)
	for _, s := range soon {
		t.Errorf("%s: less than %d years ahead; a walkthrough or test claim depends on it — move it further ahead (or past)", s, warnAhead)
	}
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

// derivedDates are the dates the example's rules make of its data.
func derivedDates(t *testing.T) map[string]time.Time {
	t.Helper()
	out := map[string]time.Time{}
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
					out[fmt.Sprintf("%s reaches %s's age of consent in %s (%d)", e.UID.ID, name, j, r.MinAge)] = b.AddDate(r.MinAge, 0, 0)
				}
			}
		}
	}

	// Each grant ends at its expiry or its purpose's longest validity.
	var consents struct {
		Events []struct {
			Type    string     `json:"type"`
			GrantID string     `json:"grant_id"`
			Purpose string     `json:"purpose"`
			At      time.Time  `json:"at"`
			Expires *time.Time `json:"expires"`
		} `json:"events"`
	}
	readJSON(t, "consents.json", &consents)
	for _, ev := range consents.Events {
		if ev.Type != "given" {
			continue
		}
		var ends []time.Time
		if ev.Expires != nil {
			ends = append(ends, *ev.Expires)
		}
		for _, r := range purposes.Purposes[ev.Purpose].Rules {
			if r.MaxValidity != "" {
				ends = append(ends, ev.At.Add(days(t, r.MaxValidity)))
			}
		}
		if len(ends) > 0 {
			out["grant "+ev.GrantID+" ends"] = slices.MinFunc(ends, time.Time.Compare)
		}
	}

	// Each delegation ends; an active one of a dormancy rule's basis turns
	// dormant after its acceptance (or creation) unless it is used.
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
		out["delegation "+d.ID+" ends"] = d.ValidUntil
		if d.Status != "active" {
			continue
		}
		since := d.CreatedAt
		if d.AcceptedAt != nil {
			since = *d.AcceptedAt
		}
		for _, r := range dormancy.Delegations {
			if r.Basis == d.Basis {
				out["delegation "+d.ID+" becomes dormant"] = since.Add(days(t, r.UnusedAfter))
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
