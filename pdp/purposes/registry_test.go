package purposes

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// northbankRegistry parses testdata/purposes.yaml, the registry of the
// Northbank scenario.
func northbankRegistry(t testing.TB) *Registry {
	t.Helper()
	data, err := os.ReadFile("testdata/purposes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	reg, err := ParseRegistry(data)
	if err != nil {
		t.Fatalf("ParseRegistry(testdata/purposes.yaml): %v", err)
	}
	return reg
}

func TestRegistryParsesNorthbank(t *testing.T) {
	reg := northbankRegistry(t)
	const day = 24 * time.Hour
	want := &Registry{
		Version:  "2026-11",
		Dormancy: 730 * day,
		Purposes: map[string]Purpose{
			"account_servicing": {
				ID: "account_servicing", Version: 1, Applications: []string{"mobile-banking"},
				Rules: map[string]Rule{"*": {Basis: BasisContract}},
			},
			"financial_advice": {
				ID: "financial_advice", Version: 1, Applications: []string{"advisor-portal"}, NoticeMinVersion: 2,
				Rules: map[string]Rule{"*": {Basis: BasisConsent, Default: DefaultOptIn, MaxValidity: 730 * day}},
			},
			"marketing": {
				ID: "marketing", Version: 3, Applications: []string{"marketing-hub"},
				Rules: map[string]Rule{
					"DE":    {Basis: BasisConsent, Default: DefaultOptIn, MinAge: 16},
					"US-CA": {Basis: BasisConsent, Default: DefaultOptOut},
					"*":     {Basis: BasisConsent, Default: DefaultOptIn},
				},
			},
			"account_information_sharing": {
				ID: "account_information_sharing", Version: 1, Applications: []string{"budget-app"},
				Rules: map[string]Rule{"*": {Basis: BasisConsent, Default: DefaultOptIn, MaxValidity: 180 * day}},
			},
		},
	}
	if !reflect.DeepEqual(reg, want) {
		t.Errorf("ParseRegistry:\n got %+v\nwant %+v", reg, want)
	}
}

func TestRegistryLookups(t *testing.T) {
	reg := northbankRegistry(t)
	m, ok := reg.Purpose("marketing")
	if !ok {
		t.Fatal("Purpose(marketing): not found")
	}
	if _, ok := reg.Purpose("telemarketing"); ok {
		t.Error("Purpose(telemarketing): found")
	}
	if _, ok := (*Registry)(nil).Purpose("marketing"); ok {
		t.Error("nil registry: Purpose found")
	}
	if !m.Allows("marketing-hub") || m.Allows("advisor-portal") || m.Allows("") {
		t.Error("Allows: want only marketing-hub")
	}

	// US-NY has no rule of its own and there is no "US" rule: "*".
	withUS := m
	withUS.Rules = map[string]Rule{"US": {Basis: BasisConsent, Default: DefaultOptOut}, "DE": m.Rules["DE"]}
	for _, tc := range []struct {
		p     Purpose
		j     string
		want  Rule
		found bool
	}{
		{m, "DE", m.Rules["DE"], true},
		{m, "US-CA", m.Rules["US-CA"], true},
		{m, "US-NY", m.Rules["*"], true},
		{m, "FR", m.Rules["*"], true},
		{m, "", m.Rules["*"], true},
		{withUS, "US-NY", withUS.Rules["US"], true}, // a subdivision falls back to its country
		{withUS, "FR", Rule{}, false},
		{withUS, "", Rule{}, false},
	} {
		got, found := tc.p.Rule(tc.j)
		if got != tc.want || found != tc.found {
			t.Errorf("Rule(%q) = %+v, %v; want %+v, %v", tc.j, got, found, tc.want, tc.found)
		}
	}
}

func TestRegistryDurations(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"180d": 180 * 24 * time.Hour, "0": 0, "4320h": 4320 * time.Hour, "90m": 90 * time.Minute, "1h30m": 90 * time.Minute, "0d": 0,
	} {
		got, err := parseDuration(in)
		if err != nil || got != want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "180", "1.5d", "-1d", "-5m", "d", "180 d", "999999999999999d", "1y"} {
		if got, err := parseDuration(in); err == nil {
			t.Errorf("parseDuration(%q) = %v, want an error", in, got)
		}
	}
}

// TestRegistryErrors: each broken registry fails with the message fragment
// at the line.
func TestRegistryErrors(t *testing.T) {
	const head = "version: \"1\"\npurposes:\n  p:\n    version: 1\n    applications: [app]\n    rules:\n" // rules of p start at line 7
	for _, tc := range []struct {
		name, yaml string
		line       int
		fragment   string
	}{
		{"unknown basis", head + "      DE: {basis: concent, default: opt_in}\n", 7,
			`purposes.p.rules.DE.basis: unknown basis "concent"; want consent, contract, legal_obligation, legitimate_interest, vital_interest, public_task`},
		{"unknown default", head + "      DE: {basis: consent, default: opt-in}\n", 7,
			`purposes.p.rules.DE.default: unknown default "opt-in"; want opt_in, opt_out`},
		{"consent without default", head + "      \"*\":\n        basis: consent\n", 8,
			`purposes.p.rules.*: a consent rule needs a default: opt_in, opt_out`},
		{"default on contract", head + "      \"*\": {basis: contract, default: opt_in}\n", 7,
			`purposes.p.rules.*.default: only a consent rule has a default (basis is contract)`},
		{"max_validity on legal obligation", head + "      \"*\":\n        basis: legal_obligation\n        max_validity: 30d\n", 9,
			`purposes.p.rules.*.max_validity: only a consent rule has a max_validity`},
		{"no basis", head + "      \"*\": {default: opt_in}\n", 7, `purposes.p.rules.*: no basis`},
		{"empty basis", head + "      \"*\": {basis: \"\"}\n", 7, `purposes.p.rules.*.basis: must not be empty`},
		{"negative min_age", head + "      \"*\": {basis: consent, default: opt_in, min_age: -1}\n", 7,
			`purposes.p.rules.*.min_age: must not be negative`},
		{"min_age not a number", head + "      \"*\": {basis: consent, default: opt_in, min_age: sixteen}\n", 7,
			`purposes.p.rules.*.min_age: want a whole number, got "sixteen"`},
		{"negative max_validity", head + "      \"*\": {basis: consent, default: opt_in, max_validity: -180d}\n", 7,
			`purposes.p.rules.*.max_validity: must not be negative`},
		{"bad max_validity", head + "      \"*\": {basis: consent, default: opt_in, max_validity: 6 months}\n", 7,
			`purposes.p.rules.*.max_validity: want a duration such as 180d, 4320h or 90m, got "6 months"`},
		{"unknown rule key", head + "      \"*\": {basis: consent, default: opt_in, maxvalidity: 180d}\n", 7,
			`purposes.p.rules.*.maxvalidity: unknown key`},
		{"bad jurisdiction", head + "      de: {basis: contract}\n", 7,
			`purposes.p.rules.de: jurisdiction "de": want "*" or an ISO 3166 code such as DE or US-CA`},
		{"duplicate jurisdiction", head + "      DE: {basis: contract}\n      DE: {basis: contract}\n", 8,
			`purposes.p.rules.DE: duplicate key (first at line 7)`},
		{"rule not a mapping", head + "      DE: contract\n", 7, `purposes.p.rules.DE: want a mapping with basis`},
		{"empty rules", "version: \"1\"\npurposes:\n  p:\n    version: 1\n    applications: [app]\n    rules: {}\n", 6,
			`purposes.p.rules: no rules`},
		{"no rules", "version: \"1\"\npurposes:\n  p:\n    version: 1\n    applications: [app]\n", 4,
			`purposes.p: no rules`},
		{"empty applications", "version: \"1\"\npurposes:\n  p:\n    version: 1\n    applications: []\n    rules:\n      \"*\": {basis: contract}\n", 5,
			`purposes.p.applications: empty`},
		{"no applications", "version: \"1\"\npurposes:\n  p:\n    version: 1\n    rules:\n      \"*\": {basis: contract}\n", 4,
			`purposes.p: no applications`},
		{"duplicate application", "version: \"1\"\npurposes:\n  p:\n    version: 1\n    applications:\n      - app\n      - app\n    rules:\n      \"*\": {basis: contract}\n", 7,
			`purposes.p.applications: duplicate application "app"`},
		{"empty application name", "version: \"1\"\npurposes:\n  p:\n    version: 1\n    applications: [app, \"\"]\n    rules:\n      \"*\": {basis: contract}\n", 5,
			`purposes.p.applications: must not be empty`},
		{"negative notice_min_version", "version: \"1\"\npurposes:\n  p:\n    version: 1\n    applications: [app]\n    notice_min_version: -2\n    rules:\n      \"*\": {basis: contract}\n", 6,
			`purposes.p.notice_min_version: must not be negative, got -2`},
		{"purpose version 0", "version: \"1\"\npurposes:\n  p:\n    version: 0\n    applications: [app]\n    rules:\n      \"*\": {basis: contract}\n", 4,
			`purposes.p.version: must be 1 or more`},
		{"purpose version text", "version: \"1\"\npurposes:\n  p:\n    version: v1\n    applications: [app]\n    rules:\n      \"*\": {basis: contract}\n", 4,
			`purposes.p.version: want a whole number, got "v1"`},
		{"no purpose version", "version: \"1\"\npurposes:\n  p:\n    applications: [app]\n    rules:\n      \"*\": {basis: contract}\n", 4,
			`purposes.p: no version`},
		{"unknown purpose key", "version: \"1\"\npurposes:\n  p:\n    version: 1\n    application: [app]\n", 5,
			`purposes.p.application: unknown key`},
		{"bad purpose id", "version: \"1\"\npurposes:\n  \"a purpose\":\n    version: 1\n    applications: [app]\n    rules:\n      \"*\": {basis: contract}\n", 3,
			`purposes.a purpose: purpose id "a purpose"`},
		{"purposes empty", "version: \"1\"\npurposes: {}\n", 2, `purposes: no purposes`},
		{"purposes a list", "version: \"1\"\npurposes: [marketing]\n", 2, `purposes: want a mapping from purpose id to purpose`},
		{"no purposes", "version: \"1\"\n", 1, `no purposes`},
		{"no version", "purposes:\n  p:\n    version: 1\n    applications: [app]\n    rules:\n      \"*\": {basis: contract}\n", 1,
			`no version`},
		{"empty version", "version: \"\"\npurposes:\n  p:\n    version: 1\n    applications: [app]\n    rules:\n      \"*\": {basis: contract}\n", 1,
			`version: must not be empty`},
		{"negative dormancy", "version: \"1\"\ndormancy: -730d\npurposes: {}\n", 2, `dormancy: must not be negative`},
		{"dormancy without unit", "version: \"1\"\ndormancy: 730\npurposes: {}\n", 2, `dormancy: want a duration such as 180d`},
		{"unknown top key", "version: \"1\"\ndormant: 730d\n", 2, `dormant: unknown key`},
		{"alias", "version: \"1\"\npurposes:\n  p:\n    version: 1\n    applications: &apps [app]\n    rules:\n      \"*\": {basis: contract}\n  q:\n    version: 1\n    applications: *apps\n    rules:\n      \"*\": {basis: contract}\n", 10,
			`purposes.q.applications: aliases (*apps) are not supported`},
		{"merge key", "version: \"1\"\npurposes:\n  p:\n    <<: {version: 1}\n", 4, `a key must be a plain string`},
		{"not a mapping", "- version\n", 1, `the registry is a mapping`},
		{"empty file", "", 0, `empty registry`},
		{"yaml syntax", "version: \"1\"\npurposes:\n  p: [\n", 3, `did not find expected node content`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg, err := ParseRegistry([]byte(tc.yaml))
			if err == nil {
				t.Fatalf("ParseRegistry: no error, got %+v", reg)
			}
			if reg != nil {
				t.Errorf("ParseRegistry: a registry and an error")
			}
			if !errors.Is(err, ErrInvalidRegistry) {
				t.Errorf("error %v does not match ErrInvalidRegistry", err)
			}
			var found bool
			for _, line := range strings.Split(err.Error(), "\n") {
				prefix := ""
				if tc.line > 0 {
					prefix = fmt.Sprintf("line %d: ", tc.line)
				}
				if strings.HasPrefix(line, prefix) && strings.Contains(line, tc.fragment) {
					found = true
				}
			}
			if !found {
				t.Errorf("error does not say %q at line %d:\n%v", tc.fragment, tc.line, err)
			}
		})
	}
}

// TestRegistryErrorsJoined: every problem is reported, not only the first.
func TestRegistryErrorsJoined(t *testing.T) {
	const y = `version: "2026-11"
purposes:
  marketing:
    version: 3
    applications: []
    rules:
      DE: {basis: concent, default: opt_in, min_age: -16}
      US-CA: {basis: consent}
`
	_, err := ParseRegistry([]byte(y))
	want := []string{
		"line 5: purposes.marketing.applications: empty",
		`line 7: purposes.marketing.rules.DE.basis: unknown basis "concent"`,
		"line 7: purposes.marketing.rules.DE.min_age: must not be negative",
		"line 8: purposes.marketing.rules.US-CA: a consent rule needs a default",
	}
	if err == nil {
		t.Fatal("no error")
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not say %q:\n%v", w, err)
		}
	}
	if n := len(strings.Split(err.Error(), "\n")); n != len(want) {
		t.Errorf("%d errors, want %d:\n%v", n, len(want), err)
	}
}

func FuzzParseRegistry(f *testing.F) {
	data, err := os.ReadFile("testdata/purposes.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(data))
	f.Add("version: x\npurposes:\n  p:\n    version: 1\n    applications: [a]\n    rules:\n      \"*\": {basis: consent, default: opt_out}\n")
	f.Add("version: x\npurposes: &a {p: *a}\n")
	f.Fuzz(func(t *testing.T, in string) {
		reg, err := ParseRegistry([]byte(in))
		if err != nil {
			if reg != nil {
				t.Fatal("a registry and an error")
			}
			return
		}
		// What is accepted keeps the invariants Decide relies on.
		if reg.Version == "" || len(reg.Purposes) == 0 || reg.Dormancy < 0 {
			t.Fatalf("accepted %+v", reg)
		}
		for id, p := range reg.Purposes {
			if p.ID != id || p.Version < 1 || len(p.Applications) == 0 || len(p.Rules) == 0 || p.NoticeMinVersion < 0 {
				t.Fatalf("accepted purpose %+v", p)
			}
			for j, r := range p.Rules {
				switch {
				case r.MaxValidity < 0 || r.MinAge < 0:
					t.Fatalf("accepted negative limits in %s.%s: %+v", id, j, r)
				case r.Basis == BasisConsent && r.Default == "":
					t.Fatalf("accepted a consent rule without default in %s.%s", id, j)
				case r.Basis != BasisConsent && (r.Default != "" || r.MaxValidity != 0 || r.MinAge != 0):
					t.Fatalf("accepted consent settings on basis %s in %s.%s", r.Basis, id, j)
				case r.Basis == "":
					t.Fatalf("accepted a rule without basis in %s.%s", id, j)
				}
			}
		}
	})
}
