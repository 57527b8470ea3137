package signals

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// ErrInvalidRegistry: schema/signals.yaml does not parse or is not valid.
var ErrInvalidRegistry = errors.New("invalid signals registry")

// Effects of a rule on an action.
const (
	EffectDeny     = "deny"
	EffectStepUp   = "step_up_authentication" // allow with this obligation
	EffectReauth   = "reauthenticate"         // allow with this obligation
	EffectNone     = "none"
	ScopeSubject   = "subject" // the rule holds for every request of the subject
	ScopeSession   = "session" // only for sessions that began before the event
	reasonPattern  = "lower-case letters, digits and underscores"
	maxRegistryLen = 1 << 20
)

// Registry is the signals registry of a policy bundle
// (schema/signals.yaml): how transmitters' subjects map to entities, what
// each event type does to each action and for how long, and the velocity
// rules. It is immutable once parsed.
type Registry struct {
	Version  string
	Subjects []SubjectRule
	// Rules by event type URI.
	Rules    map[string]*Rule
	Velocity []VelocityRule
	// StepUps are the failed step-up rules, by name.
	StepUps []StepUpRule
}

// SubjectRule maps subject identifiers of a format (and, for iss_sub, an
// issuer) to entities of a Cedar type: the identifier's sub, email,
// phone_number or id is the entity id.
type SubjectRule struct {
	Format string `yaml:"format"`
	Iss    string `yaml:"iss"`
	Entity string `yaml:"entity"`
}

// Rule is what an event type does.
type Rule struct {
	Name string // the registry key (short name)
	Type string // the event type URI
	// Reason is the reason code a deny (or an obligation) reports.
	Reason string
	// Effects by action name; "*" for every other action.
	Effects map[string]string
	// Duration bounds how long the event holds (0: until lifted).
	Duration time.Duration
	// LiftedBy are the event type URIs whose later event for the same
	// subject ends it.
	LiftedBy []string
	// Scope is ScopeSubject or ScopeSession.
	Scope string
	// Match: payload members that must equal these strings for the
	// event to count (e.g. change_direction: decrease).
	Match map[string]string
}

// VelocityRule: Threshold denied decisions for distinct subjects with
// the same context attribute Key (e.g. ip) within Window (the
// Threshold-th begins the block) make every request with that value
// denied with Reason for Block.
type VelocityRule struct {
	Name      string        `yaml:"-"`
	Key       string        `yaml:"key"`
	Threshold int           `yaml:"threshold"`
	Window    time.Duration `yaml:"-"`
	Block     time.Duration `yaml:"-"`
	Reason    string        `yaml:"reason"`
}

// StepUpRule: Count failed step-up authentications of one subject,
// reported within Window by the Reporters as decisions of the action
// Report (context.step_up.outcome "failed"), make the subject's Actions
// answer with Effect (allow only with step_up_authentication, or deny
// with Reason) for Block, until a successful step-up is reported.
type StepUpRule struct {
	Name      string
	Report    string
	Reporters []string
	Count     int
	Window    time.Duration
	Block     time.Duration
	Actions   []string
	Effect    string
	Reason    string
}

// Applies says whether the rule holds action back.
func (r *StepUpRule) Applies(action string) bool { return slices.Contains(r.Actions, action) }

// StepUpReport returns the failed step-up rules whose report action is
// action.
func (r *Registry) StepUpReport(action string) []*StepUpRule {
	if r == nil {
		return nil
	}
	var out []*StepUpRule
	for i := range r.StepUps {
		if r.StepUps[i].Report == action {
			out = append(out, &r.StepUps[i])
		}
	}
	return out
}

// Effect is what the rule does to action ("" when nothing).
func (r *Rule) Effect(action string) string {
	e, ok := r.Effects[action]
	if !ok {
		e = r.Effects["*"]
	}
	if e == EffectNone {
		return ""
	}
	return e
}

// Rule returns the rule of an event type URI.
func (r *Registry) Rule(typ string) (*Rule, bool) {
	if r == nil {
		return nil, false
	}
	rule, ok := r.Rules[typ]
	return rule, ok
}

// Map maps a subject identifier to the entity ("Type::\"id\"" as Cedar
// writes it) the first matching rule names; "" when none matches.
func (r *Registry) Map(s *SubjectID) string {
	if r == nil || s == nil {
		return ""
	}
	for _, p := range s.persons() {
		for _, sr := range r.Subjects {
			if sr.Format != p.Format {
				continue
			}
			var id string
			switch p.Format {
			case FormatIssSub:
				if sr.Iss != "" && sr.Iss != p.Iss {
					continue
				}
				id = p.Sub
			case FormatEmail:
				id = p.Email
			case FormatPhoneNumber:
				id = p.PhoneNumber
			case FormatOpaque:
				id = p.ID
			case FormatAccount, FormatURI:
				id = p.URI
			}
			if id != "" {
				return EntityKey(sr.Entity, id)
			}
		}
	}
	return ""
}

// EntityKey writes an entity reference as Cedar does: Type::"id".
func EntityKey(typ, id string) string { return typ + "::" + strconv.Quote(id) }

// rawRegistry is the YAML document.
type rawRegistry struct {
	Version  string                 `yaml:"version"`
	Subjects []SubjectRule          `yaml:"subjects"`
	Events   map[string]rawRule     `yaml:"events"`
	Velocity map[string]rawVelocity `yaml:"velocity"`
	StepUps  map[string]rawStepUp   `yaml:"failed_step_ups"`
}

type rawStepUp struct {
	Report    string   `yaml:"report"`
	Reporters []string `yaml:"reporters"`
	Count     int      `yaml:"count"`
	Window    string   `yaml:"window"`
	Block     string   `yaml:"block"`
	Actions   []string `yaml:"actions"`
	Effect    string   `yaml:"effect"`
	Reason    string   `yaml:"reason"`
}

type rawRule struct {
	Type     string            `yaml:"type"`
	Reason   string            `yaml:"reason"`
	Effects  map[string]string `yaml:"effects"`
	Duration string            `yaml:"duration"`
	LiftedBy []string          `yaml:"lifted_by"`
	Scope    string            `yaml:"scope"`
	Match    map[string]string `yaml:"match"`
}

type rawVelocity struct {
	Key       string `yaml:"key"`
	Threshold int    `yaml:"threshold"`
	Window    string `yaml:"window"`
	Block     string `yaml:"block"`
	Reason    string `yaml:"reason"`
}

// ParseRegistry parses and checks schema/signals.yaml. Every error wraps
// ErrInvalidRegistry and names the key at fault.
func ParseRegistry(data []byte) (*Registry, error) {
	if len(data) > maxRegistryLen {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrInvalidRegistry, maxRegistryLen)
	}
	var raw rawRegistry
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidRegistry, err)
	}
	fail := func(path, format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrInvalidRegistry, path, fmt.Sprintf(format, args...))
	}
	r := &Registry{Version: raw.Version, Rules: map[string]*Rule{}}
	for i, s := range raw.Subjects {
		path := fmt.Sprintf("subjects[%d]", i)
		switch s.Format {
		case FormatIssSub, FormatEmail, FormatPhoneNumber, FormatOpaque, FormatAccount, FormatURI:
		default:
			return nil, fail(path, "format %q cannot be mapped (iss_sub, email, phone_number, opaque, account or uri)", s.Format)
		}
		if s.Entity == "" || strings.ContainsAny(s.Entity, " \"") {
			return nil, fail(path, "entity must name a Cedar entity type")
		}
		r.Subjects = append(r.Subjects, s)
	}
	names := make([]string, 0, len(raw.Events))
	for n := range raw.Events {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, name := range names {
		rr := raw.Events[name]
		path := "events." + name
		rule := Rule{Name: name, Type: rr.Type, Reason: rr.Reason, Effects: rr.Effects, Scope: rr.Scope, Match: rr.Match}
		if rule.Type == "" {
			u, ok := TypeURI(name)
			if !ok {
				return nil, fail(path, "unknown event type; give its URI in type")
			}
			rule.Type = u
		}
		if _, dup := r.Rules[rule.Type]; dup {
			return nil, fail(path, "event type %s has two rules", rule.Type)
		}
		if !validCode(rule.Reason) {
			return nil, fail(path+".reason", "a reason code (%s) is required", reasonPattern)
		}
		if len(rule.Effects) == 0 {
			return nil, fail(path+".effects", "at least one action (or \"*\") is required")
		}
		for a, e := range rule.Effects {
			switch e {
			case EffectDeny, EffectStepUp, EffectReauth, EffectNone:
			default:
				return nil, fail(path+".effects."+a, "%q is not deny, step_up_authentication, reauthenticate or none", e)
			}
		}
		switch rule.Scope {
		case "":
			rule.Scope = ScopeSubject
		case ScopeSubject, ScopeSession:
		default:
			return nil, fail(path+".scope", "%q is not subject or session", rule.Scope)
		}
		if rr.Duration != "" {
			d, err := ParseDuration(rr.Duration)
			if err != nil || d <= 0 {
				return nil, fail(path+".duration", "%q is not a positive duration (e.g. 12h, 30d)", rr.Duration)
			}
			rule.Duration = d
		}
		for _, l := range rr.LiftedBy {
			u := l
			if !strings.Contains(l, "://") {
				var ok bool
				if u, ok = TypeURI(l); !ok {
					return nil, fail(path+".lifted_by", "unknown event type %q", l)
				}
			}
			rule.LiftedBy = append(rule.LiftedBy, u)
		}
		r.Rules[rule.Type] = &rule
	}
	vnames := make([]string, 0, len(raw.Velocity))
	for n := range raw.Velocity {
		vnames = append(vnames, n)
	}
	slices.Sort(vnames)
	for _, name := range vnames {
		rv := raw.Velocity[name]
		path := "velocity." + name
		v := VelocityRule{Name: name, Key: rv.Key, Threshold: rv.Threshold, Reason: rv.Reason}
		if v.Key == "" {
			return nil, fail(path+".key", "the context attribute to count by is required (e.g. ip)")
		}
		if v.Threshold < 1 {
			return nil, fail(path+".threshold", "must be at least 1")
		}
		if !validCode(v.Reason) {
			return nil, fail(path+".reason", "a reason code (%s) is required", reasonPattern)
		}
		var err error
		if v.Window, err = ParseDuration(rv.Window); err != nil || v.Window <= 0 {
			return nil, fail(path+".window", "%q is not a positive duration", rv.Window)
		}
		if v.Block, err = ParseDuration(rv.Block); err != nil || v.Block <= 0 {
			return nil, fail(path+".block", "%q is not a positive duration", rv.Block)
		}
		r.Velocity = append(r.Velocity, v)
	}
	snames := make([]string, 0, len(raw.StepUps))
	for n := range raw.StepUps {
		snames = append(snames, n)
	}
	slices.Sort(snames)
	for _, name := range snames {
		v, err := parseStepUp(name, raw.StepUps[name], fail)
		if err != nil {
			return nil, err
		}
		// A report is refused whole when one of its rules does not list
		// the reporting application: rules of one report action listing
		// different reporters would leave some of them counting nothing.
		for _, o := range r.StepUps {
			if o.Report == v.Report && !sameSet(o.Reporters, v.Reporters) {
				return nil, fail("failed_step_ups."+name+".reporters",
					"rules sharing the report action %s must list the same reporters (%s lists %s)", v.Report, o.Name, strings.Join(o.Reporters, ", "))
			}
		}
		r.StepUps = append(r.StepUps, v)
	}
	return r, nil
}

// sameSet reports whether a and b hold the same strings.
func sameSet(a, b []string) bool {
	return slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
}

// parseStepUp checks one failed step-up rule.
func parseStepUp(name string, rs rawStepUp, fail func(path, format string, args ...any) error) (StepUpRule, error) {
	path := "failed_step_ups." + name
	v := StepUpRule{Name: name, Report: rs.Report, Reporters: rs.Reporters, Count: rs.Count, Actions: rs.Actions, Effect: rs.Effect, Reason: rs.Reason}
	if v.Report == "" {
		return v, fail(path+".report", "the action applications report step-up outcomes with is required (e.g. complete_step_up)")
	}
	if len(v.Reporters) == 0 || slices.Contains(v.Reporters, "") {
		return v, fail(path+".reporters", "the applications whose reports count are required (their API key ids)")
	}
	if v.Count < 1 {
		return v, fail(path+".count", "must be at least 1")
	}
	if len(v.Actions) == 0 || slices.Contains(v.Actions, "") {
		return v, fail(path+".actions", "at least one action to hold back is required (e.g. make_payment)")
	}
	if slices.Contains(v.Actions, v.Report) {
		return v, fail(path+".actions", "must not hold back the report action %s (a step-up could never be reported)", v.Report)
	}
	switch v.Effect {
	case EffectStepUp, EffectDeny:
	default:
		return v, fail(path+".effect", "%q is not step_up_authentication or deny", v.Effect)
	}
	if !validCode(v.Reason) {
		return v, fail(path+".reason", "a reason code (%s) is required", reasonPattern)
	}
	var err error
	if v.Window, err = ParseDuration(rs.Window); err != nil || v.Window <= 0 {
		return v, fail(path+".window", "%q is not a positive duration", rs.Window)
	}
	if v.Block, err = ParseDuration(rs.Block); err != nil || v.Block <= 0 {
		return v, fail(path+".block", "%q is not a positive duration", rs.Block)
	}
	return v, nil
}

func validCode(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

// ParseDuration reads a Go duration or a number of days ("30d").
func ParseDuration(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n < 0 || n > 36500 {
			return 0, fmt.Errorf("%q is not a number of days", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}
