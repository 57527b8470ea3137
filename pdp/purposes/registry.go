package purposes

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// RegistryFile is where a policy bundle keeps its purposes registry, next
// to the Cedar schema.
const RegistryFile = "schema/purposes.yaml"

// ErrInvalidRegistry is matched (errors.Is) by every *RegistryError.
var ErrInvalidRegistry = errors.New("invalid purposes registry")

// RegistryError is one problem of a purposes registry file, at a line (0
// when unknown) and a path of keys ("purposes.marketing.rules.DE.basis").
type RegistryError struct {
	Line int
	Path string
	Msg  string
}

func (e *RegistryError) Error() string {
	var b strings.Builder
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Is makes every RegistryError match ErrInvalidRegistry.
func (e *RegistryError) Is(target error) bool { return target == ErrInvalidRegistry }

// Rule is what holds for a purpose in one jurisdiction.
type Rule struct {
	// Basis is the legal basis of processing; only BasisConsent needs a
	// grant.
	Basis Basis
	// Default is what holds without a recorded choice (consent only).
	Default Default
	// MaxValidity is the longest a grant is valid after it was given or
	// renewed (0: no limit; consent only).
	MaxValidity time.Duration
	// MinAge is the age below which the data subject cannot consent alone:
	// only a guardian's grant counts (0: no limit; consent only).
	MinAge int
}

// Purpose is one purpose of processing.
type Purpose struct {
	ID      string
	Version int
	// Applications may process for the purpose; no other may.
	Applications []string
	// NoticeMinVersion: a grant given (or last renewed) on a notice version
	// below it was given on a materially changed notice and must be
	// revalidated (0: any version).
	NoticeMinVersion int
	// Rules by jurisdiction: an ISO 3166-1 country ("DE"), an ISO 3166-2
	// subdivision ("US-CA"), or "*" for every other.
	Rules map[string]Rule
	// RepresentativeScope (representative_scope) are the delegation
	// actions of which a representative's delegation must cover one for
	// them to give, refuse, renew or withdraw consent to the purpose for
	// the data subject. See Purpose.RepresentableBy.
	RepresentativeScope []string
}

// RepresentableBy reports whether a representative holding mandate m may
// make or end a choice for the purpose on the data subject's behalf: when
// the delegation's scope is every action ("*"), or covers one of the
// purpose's representative_scope; a purpose without one may be chosen for
// only by a statutory representative (a guardian or legal representative,
// who stands in for the person by law) or one with every action.
func (p Purpose) RepresentableBy(m Mandate) bool {
	if slices.Contains(m.Scope, "*") {
		return true
	}
	if len(p.RepresentativeScope) == 0 {
		return m.Statutory
	}
	for _, a := range p.RepresentativeScope {
		if slices.Contains(m.Scope, a) {
			return true
		}
	}
	return false
}

// Registry is the purposes registry of a policy bundle (RegistryFile).
type Registry struct {
	// Version is the registry's own version, as written in the file.
	Version string
	// Dormancy: a data subject inactive for longer needs to revalidate
	// consent-based purposes (0: off).
	Dormancy time.Duration
	// Purposes by id.
	Purposes map[string]Purpose
}

// Purpose returns the purpose with the id. A nil registry has none.
func (r *Registry) Purpose(id string) (Purpose, bool) {
	if r == nil {
		return Purpose{}, false
	}
	p, ok := r.Purposes[id]
	return p, ok
}

// Rule returns the rule for a jurisdiction: the jurisdiction's own, else
// for a subdivision ("US-CA") its country's ("US"), else "*". An empty
// jurisdiction gets the "*" rule.
func (p Purpose) Rule(jurisdiction string) (Rule, bool) {
	if jurisdiction != "" {
		if r, ok := p.Rules[jurisdiction]; ok {
			return r, true
		}
		if country, _, sub := strings.Cut(jurisdiction, "-"); sub {
			if r, ok := p.Rules[country]; ok {
				return r, true
			}
		}
	}
	r, ok := p.Rules[AnyJurisdiction]
	return r, ok
}

// Allows reports whether the application may process for the purpose.
func (p Purpose) Allows(application string) bool {
	return application != "" && slices.Contains(p.Applications, application)
}

// AnyJurisdiction is the rules key for every jurisdiction without its own
// rule.
const AnyJurisdiction = "*"

var (
	actionRE       = regexp.MustCompile(`^[a-z][a-z0-9_]{0,127}$`)
	purposeIDRE    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$`)
	jurisdictionRE = regexp.MustCompile(`^[A-Z]{2}(-[A-Z0-9]{1,3})?$`)
	daysRE         = regexp.MustCompile(`^\+?([0-9]+)d$`)
)

var (
	basisNames   = []Basis{BasisConsent, BasisContract, BasisLegalObligation, BasisLegitimateInterest, BasisVitalInterest, BasisPublicTask}
	defaultNames = []Default{DefaultOptIn, DefaultOptOut}
)

// ParseRegistry decodes a purposes registry (the YAML of RegistryFile) and
// checks it strictly: unknown keys, duplicate keys, unknown bases or
// defaults, negative numbers, a consent rule without a default, a default
// or limit on a rule whose basis is not consent, a purpose without
// applications or rules are errors. Every problem is reported, each a
// *RegistryError naming its line and path, joined with errors.Join.
// Anchors and aliases are not supported.
func ParseRegistry(data []byte) (*Registry, error) {
	p := &regParser{}
	r := p.registry(data)
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	return r, nil
}

// regParser walks the YAML node tree by hand, so that every problem
// carries a line and unknown keys are rejected.
type regParser struct {
	errs []error
}

func (p *regParser) fail(n *yaml.Node, path, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	p.errs = append(p.errs, &RegistryError{Line: line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func (p *regParser) registry(data []byte) *Registry {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		msg, line := err.Error(), 0
		if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
			line, _ = strconv.Atoi(m[1])
			msg = m[2]
		}
		p.errs = append(p.errs, &RegistryError{Line: line, Msg: strings.TrimPrefix(msg, "yaml: ")})
		return nil
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		p.fail(nil, "", "empty registry: want version and purposes")
		return nil
	}
	root := doc.Content[0]
	if !p.mapping(root, "", "the registry is a mapping with version, dormancy and purposes") {
		return nil
	}
	r := &Registry{Purposes: map[string]Purpose{}}
	var hasVersion, hasPurposes bool
	p.fields(root, "", func(key string, k, v *yaml.Node) bool {
		switch key {
		case "version":
			r.Version, _ = p.name(v, "version")
			hasVersion = true
		case "dormancy":
			r.Dormancy = p.duration(v, "dormancy")
		case "purposes":
			hasPurposes = true
			p.purposes(v, r)
		default:
			return false
		}
		return true
	})
	if !hasVersion {
		p.fail(root, "", "no version (the registry's own version, such as \"2026-11\")")
	}
	if !hasPurposes {
		p.fail(root, "", "no purposes")
	}
	return r
}

func (p *regParser) purposes(n *yaml.Node, r *Registry) {
	if !p.mapping(n, "purposes", "want a mapping from purpose id to purpose") {
		return
	}
	if len(n.Content) == 0 {
		p.fail(n, "purposes", "no purposes")
		return
	}
	p.fields(n, "purposes", func(id string, k, v *yaml.Node) bool {
		path := "purposes." + id
		if !purposeIDRE.MatchString(id) {
			p.fail(k, path, "purpose id %q: want letters, digits, _ . : - (at most 128, starting with a letter or digit)", id)
		}
		r.Purposes[id] = p.purpose(id, path, v)
		return true
	})
}

func (p *regParser) purpose(id, path string, n *yaml.Node) Purpose {
	pu := Purpose{ID: id, Rules: map[string]Rule{}}
	if !p.mapping(n, path, "want a mapping with version, applications, notice_min_version, representative_scope and rules") {
		return pu
	}
	var hasVersion, hasApps, hasRules bool
	p.fields(n, path, func(key string, k, v *yaml.Node) bool {
		switch key {
		case "version":
			hasVersion = true
			before := len(p.errs)
			if pu.Version = p.integer(v, path+".version"); pu.Version == 0 && len(p.errs) == before {
				p.fail(v, path+".version", "must be 1 or more")
			}
		case "applications":
			hasApps = true
			pu.Applications = p.applications(v, path+".applications")
		case "notice_min_version":
			pu.NoticeMinVersion = p.integer(v, path+".notice_min_version")
		case "representative_scope":
			pu.RepresentativeScope = p.actions(v, path+".representative_scope")
		case "rules":
			hasRules = true
			p.rules(v, path+".rules", pu.Rules)
		default:
			return false
		}
		return true
	})
	if !hasVersion {
		p.fail(n, path, "no version (the purpose's version, 1 or more)")
	}
	if !hasApps {
		p.fail(n, path, "no applications: name the applications that may process for the purpose")
	}
	if !hasRules {
		p.fail(n, path, "no rules: give at least a \"*\" rule")
	}
	return pu
}

func (p *regParser) applications(n *yaml.Node, path string) []string {
	if n.Kind == yaml.AliasNode {
		p.alias(n, path)
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.fail(n, path, "want a list of application names")
		return nil
	}
	if len(n.Content) == 0 {
		p.fail(n, path, "empty: name the applications that may process for the purpose")
		return nil
	}
	out := make([]string, 0, len(n.Content))
	for _, it := range n.Content {
		s, ok := p.name(it, path)
		switch {
		case !ok:
		case slices.Contains(out, s):
			p.fail(it, path, "duplicate application %q", s)
		default:
			out = append(out, s)
		}
	}
	return out
}

// actions decodes representative_scope: a non-empty list of delegation
// action names.
func (p *regParser) actions(n *yaml.Node, path string) []string {
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		p.fail(n, path, "want a non-empty list of delegation actions (such as view_portfolio)")
		return nil
	}
	out := make([]string, 0, len(n.Content))
	for _, it := range n.Content {
		s, ok := p.name(it, path)
		switch {
		case !ok:
		case !actionRE.MatchString(s):
			p.fail(it, path, "%q is not an action name (a-z, 0-9, _)", s)
		case slices.Contains(out, s):
			p.fail(it, path, "duplicate action %q", s)
		default:
			out = append(out, s)
		}
	}
	return out
}

func (p *regParser) rules(n *yaml.Node, path string, into map[string]Rule) {
	if !p.mapping(n, path, "want a mapping from jurisdiction (\"DE\", \"US-CA\", \"*\") to rule") {
		return
	}
	if len(n.Content) == 0 {
		p.fail(n, path, "no rules: give at least a \"*\" rule")
		return
	}
	p.fields(n, path, func(j string, k, v *yaml.Node) bool {
		rp := path + "." + j
		if j != AnyJurisdiction && !jurisdictionRE.MatchString(j) {
			p.fail(k, rp, "jurisdiction %q: want \"*\" or an ISO 3166 code such as DE or US-CA", j)
		}
		into[j] = p.rule(v, rp)
		return true
	})
}

func (p *regParser) rule(n *yaml.Node, path string) Rule {
	var r Rule
	if !p.mapping(n, path, "want a mapping with basis, default, max_validity and min_age") {
		return r
	}
	var basisNode, defaultNode, maxNode, ageNode *yaml.Node
	p.fields(n, path, func(key string, k, v *yaml.Node) bool {
		switch key {
		case "basis":
			basisNode = v
			if s, ok := p.name(v, path+".basis"); ok {
				if b := Basis(s); slices.Contains(basisNames, b) {
					r.Basis = b
				} else {
					p.fail(v, path+".basis", "unknown basis %q; want %s", s, joinNames(basisNames))
				}
			}
		case "default":
			defaultNode = v
			if s, ok := p.name(v, path+".default"); ok {
				if d := Default(s); slices.Contains(defaultNames, d) {
					r.Default = d
				} else {
					p.fail(v, path+".default", "unknown default %q; want %s", s, joinNames(defaultNames))
				}
			}
		case "max_validity":
			maxNode = v
			r.MaxValidity = p.duration(v, path+".max_validity")
		case "min_age":
			ageNode = v
			r.MinAge = p.integer(v, path+".min_age")
		default:
			return false
		}
		return true
	})
	switch {
	case basisNode == nil:
		p.fail(n, path, "no basis; want %s", joinNames(basisNames))
	case r.Basis == BasisConsent:
		if defaultNode == nil {
			p.fail(n, path, "a consent rule needs a default: %s", joinNames(defaultNames))
		}
	case r.Basis != "":
		for _, f := range []struct {
			node *yaml.Node
			key  string
		}{{defaultNode, "default"}, {maxNode, "max_validity"}, {ageNode, "min_age"}} {
			if f.node != nil {
				p.fail(f.node, path+"."+f.key, "only a consent rule has a %s (basis is %s)", f.key, r.Basis)
			}
		}
	}
	return r
}

// fields calls f for every key of a mapping; f returns false for a key it
// does not know, which is an error.
func (p *regParser) fields(n *yaml.Node, path string, f func(key string, k, v *yaml.Node) bool) {
	seen := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.Tag == "!!merge" {
			p.fail(k, path, "a key must be a plain string (merge keys and complex keys are not supported)")
			continue
		}
		kp := joinPath(path, k.Value)
		if first, dup := seen[k.Value]; dup {
			p.fail(k, kp, "duplicate key (first at line %d)", first)
			continue
		}
		seen[k.Value] = k.Line
		if v.Kind == yaml.AliasNode {
			p.alias(v, kp)
			continue
		}
		if !f(k.Value, k, v) {
			p.fail(k, kp, "unknown key")
		}
	}
}

func (p *regParser) alias(n *yaml.Node, path string) {
	p.fail(n, path, "aliases (*%s) are not supported in the purposes registry", n.Value)
}

// mapping reports whether n is a mapping, failing with want if not.
func (p *regParser) mapping(n *yaml.Node, path, want string) bool {
	if n.Kind == yaml.AliasNode {
		p.alias(n, path)
		return false
	}
	if n.Kind != yaml.MappingNode {
		p.fail(n, path, "%s", want)
		return false
	}
	return true
}

func (p *regParser) str(n *yaml.Node, path string) string {
	if n.Kind == yaml.AliasNode {
		p.alias(n, path)
		return ""
	}
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.fail(n, path, "want a string")
		return ""
	}
	return n.Value
}

// name decodes a non-empty string.
func (p *regParser) name(n *yaml.Node, path string) (string, bool) {
	if n.Kind == yaml.ScalarNode && n.Tag != "!!null" && n.Value == "" {
		p.fail(n, path, "must not be empty")
		return "", false
	}
	s := p.str(n, path)
	return s, s != ""
}

// integer decodes a whole number from 0 to math.MaxInt32.
func (p *regParser) integer(n *yaml.Node, path string) int {
	var v int64
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&v) != nil {
		p.fail(n, path, "want a whole number, got %q", n.Value)
		return 0
	}
	if v < 0 {
		p.fail(n, path, "must not be negative, got %d", v)
		return 0
	}
	if v > math.MaxInt32 {
		p.fail(n, path, "too large: %d", v)
		return 0
	}
	return int(v)
}

// duration decodes a Go duration ("4320h", "90m") or whole days ("180d");
// it must not be negative.
func (p *regParser) duration(n *yaml.Node, path string) time.Duration {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.fail(n, path, "want a duration such as 180d, 4320h or 90m")
		return 0
	}
	d, err := parseDuration(n.Value)
	if err != nil {
		p.fail(n, path, "%v", err)
		return 0
	}
	return d
}

// parseDuration reads a duration as the purposes registry writes it: Go
// syntax ("4320h", "90m", "0") or whole days ("180d"). It must not be
// negative.
func parseDuration(s string) (time.Duration, error) {
	const day = 24 * time.Hour
	if strings.HasPrefix(s, "-") {
		return 0, fmt.Errorf("must not be negative, got %q", s)
	}
	if m := daysRE.FindStringSubmatch(s); m != nil {
		n, err := strconv.ParseInt(m[1], 10, 64)
		if err != nil || n > int64(math.MaxInt64/day) {
			return 0, fmt.Errorf("duration %q is too long", s)
		}
		return time.Duration(n) * day, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("want a duration such as 180d, 4320h or 90m, got %q", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("must not be negative, got %q", s)
	}
	return d, nil
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func joinNames[T ~string](names []T) string {
	var b strings.Builder
	for i, n := range names {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(string(n))
	}
	return b.String()
}
