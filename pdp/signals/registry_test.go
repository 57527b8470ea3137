package signals

import (
	"errors"
	"os"
	"testing"
	"time"
)

func northbankRegistry(t testing.TB) *Registry {
	t.Helper()
	data, err := os.ReadFile("../../examples/northbank/schema/signals.yaml")
	if err != nil {
		t.Fatal(err)
	}
	r, err := ParseRegistry(data)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestParseRegistryNorthbank(t *testing.T) {
	r := northbankRegistry(t)
	uri, _ := TypeURI("credential-compromise")
	rule, ok := r.Rule(uri)
	if !ok || rule.Reason != "account_compromised" || rule.Effect("make_payment") != EffectDeny || rule.Effect("view_statements") != EffectStepUp {
		t.Fatalf("credential-compromise rule: %+v", rule)
	}
	if len(r.Velocity) != 1 || r.Velocity[0].Threshold != 30 || r.Velocity[0].Window != time.Minute {
		t.Fatalf("velocity: %+v", r.Velocity)
	}
	if got := r.Map(&SubjectID{Format: FormatIssSub, Iss: idpIss, Sub: "bob"}); got != `User::"bob"` {
		t.Fatalf("map iss_sub: %q", got)
	}
	if got := r.Map(&SubjectID{Format: FormatIssSub, Iss: "https://other.example/", Sub: "bob"}); got != "" {
		t.Fatalf("another issuer mapped to %q", got)
	}
	cx := &SubjectID{Format: FormatComplex, User: &SubjectID{Format: FormatIssSub, Iss: idpIss, Sub: "alice"}, Session: &SubjectID{Format: FormatOpaque, ID: "s-1"}}
	if got := r.Map(cx); got != `User::"alice"` || cx.SessionID() != "s-1" {
		t.Fatalf("map complex: %q %q", got, cx.SessionID())
	}
}

func TestParseRegistryRefuses(t *testing.T) {
	for name, doc := range map[string]string{
		"unknown key":      "bogus: 1",
		"unknown event":    "events: {telepathy: {reason: x, effects: {'*': deny}}}",
		"no reason":        "events: {credential-compromise: {effects: {'*': deny}}}",
		"bad reason":       "events: {credential-compromise: {reason: Bad-Code, effects: {'*': deny}}}",
		"no effects":       "events: {credential-compromise: {reason: x}}",
		"bad effect":       "events: {credential-compromise: {reason: x, effects: {'*': maybe}}}",
		"bad duration":     "events: {credential-compromise: {reason: x, effects: {'*': deny}, duration: soon}}",
		"bad lifted_by":    "events: {credential-compromise: {reason: x, effects: {'*': deny}, lifted_by: [nope]}}",
		"bad scope":        "events: {credential-compromise: {reason: x, effects: {'*': deny}, scope: galaxy}}",
		"bad subject":      "subjects: [{format: complex, entity: User}]",
		"no entity":        "subjects: [{format: email}]",
		"velocity no key":  "velocity: {v: {threshold: 3, window: 1m, block: 1m, reason: r}}",
		"velocity zero":    "velocity: {v: {key: ip, threshold: 0, window: 1m, block: 1m, reason: r}}",
		"velocity bad win": "velocity: {v: {key: ip, threshold: 3, window: x, block: 1m, reason: r}}",
		"not a mapping":    "- 1",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseRegistry([]byte(doc)); !errors.Is(err, ErrInvalidRegistry) {
				t.Fatalf("got %v", err)
			}
		})
	}
}

func ev(pos int64, typ, entity string, at time.Time) Event {
	uri, _ := TypeURI(typ)
	return Event{Position: pos, Transmitter: testIss, JTI: typ, Type: uri, Time: at, Entity: entity}
}

func TestActive(t *testing.T) {
	r := northbankRegistry(t)
	bob := `User::"bob"`
	t0 := testNow
	compromised := ev(1, "credential-compromise", bob, t0)
	changed := ev(2, "credential-change", bob, t0.Add(time.Minute))
	revoked := ev(3, "session-revoked", bob, t0)
	decrease := ev(4, "assurance-level-change", bob, t0)
	decrease.Payload = []byte(`{"change_direction":"decrease"}`)
	increase := ev(5, "assurance-level-change", bob, t0.Add(time.Minute))
	increase.Payload = []byte(`{"change_direction":"increase"}`)
	unknown := Event{Position: 6, Type: "urn:example:whatever", Time: t0, Entity: bob}
	old := Session{ID: "s-old", AuthTime: t0.Add(-time.Hour), Known: true}
	fresh := Session{ID: "s-new", AuthTime: t0.Add(time.Hour), Known: true}
	for _, tc := range []struct {
		name    string
		events  []Event
		action  string
		sess    Session
		now     time.Time
		effects []string
	}{
		{"compromised: payment denied", []Event{compromised}, "make_payment", Session{}, t0.Add(time.Hour), []string{EffectDeny}},
		{"compromised: statements with step-up", []Event{compromised}, "view_statements", Session{}, t0.Add(time.Hour), []string{EffectStepUp}},
		{"credential change lifts it", []Event{compromised, changed}, "make_payment", Session{}, t0.Add(time.Hour), nil},
		{"an earlier change does not", []Event{ev(1, "credential-change", bob, t0.Add(-time.Minute)), ev(2, "credential-compromise", bob, t0)}, "make_payment", Session{}, t0.Add(time.Hour), []string{EffectDeny}},
		{"it expires", []Event{compromised}, "make_payment", Session{}, t0.Add(31 * 24 * time.Hour), nil},
		{"session revoked: older session denied", []Event{revoked}, "view_statements", old, t0.Add(time.Hour), []string{EffectDeny}},
		{"session revoked: fresh login allowed", []Event{revoked}, "view_statements", fresh, t0.Add(2 * time.Hour), nil},
		{"session revoked: no session in the request", []Event{revoked}, "view_statements", Session{}, t0.Add(time.Hour), nil},
		{"assurance decrease: payment steps up", []Event{decrease}, "make_payment", Session{}, t0.Add(time.Second), []string{EffectStepUp}},
		{"assurance decrease: statements untouched", []Event{decrease}, "view_statements", Session{}, t0.Add(time.Second), []string{""}},
		{"assurance restored", []Event{decrease, increase}, "make_payment", Session{}, t0.Add(time.Hour), nil},
		{"unknown type ignored", []Event{unknown}, "make_payment", Session{}, t0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := r.Active(tc.events, tc.action, tc.sess, tc.now)
			var effects []string
			for _, a := range got {
				effects = append(effects, a.Effect)
			}
			if len(effects) != len(tc.effects) {
				t.Fatalf("effects %q, want %q", effects, tc.effects)
			}
			for i := range effects {
				if effects[i] != tc.effects[i] {
					t.Fatalf("effects %q, want %q", effects, tc.effects)
				}
			}
		})
	}
	t.Run("a revoked session by id", func(t *testing.T) {
		e := revoked
		e.Session = "s-new"
		if got := r.Active([]Event{e}, "make_payment", fresh, t0.Add(2*time.Hour)); len(got) != 1 {
			t.Fatalf("the very session revoked is not denied: %v", got)
		}
		if got := r.Active([]Event{e}, "make_payment", old, t0.Add(2*time.Hour)); len(got) != 0 {
			t.Fatalf("another session is denied: %v", got)
		}
	})
}

// FuzzParseRegistry: whatever the document, ParseRegistry returns a
// registry or an error wrapping ErrInvalidRegistry, and never panics.
func FuzzParseRegistry(f *testing.F) {
	data, err := os.ReadFile("../../examples/northbank/schema/signals.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add([]byte("events: {x: {type: 'urn:x', reason: r, effects: {'*': deny}, duration: 1d}}"))
	f.Add([]byte("velocity: {v: {key: ip, threshold: 2, window: 1m, block: 1m, reason: r}}"))
	f.Add([]byte("failed_step_ups: {s: {report: r, reporters: [a], count: 3, window: 10m, block: 30m, actions: [pay], effect: deny, reason: r}}"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		r, err := ParseRegistry(doc)
		if err != nil {
			if !errors.Is(err, ErrInvalidRegistry) {
				t.Fatalf("error %v does not wrap ErrInvalidRegistry", err)
			}
			return
		}
		for _, rule := range r.Rules {
			if rule.Reason == "" || len(rule.Effects) == 0 {
				t.Fatalf("accepted an incomplete rule %+v", rule)
			}
		}
	})
}

// BenchmarkActive: the risk guard's work for one entity with 10 received
// events (5 active, 5 lifted).
func BenchmarkActive(b *testing.B) {
	r := northbankRegistry(b)
	var evs []Event
	for i := range 5 {
		at := testNow.Add(time.Duration(i) * time.Minute)
		evs = append(evs, ev(int64(2*i+1), "credential-compromise", `User::"bob"`, at), ev(int64(2*i+2), "account-disabled", `User::"bob"`, at))
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = r.Active(evs, "make_payment", Session{}, testNow.Add(time.Hour))
	}
}
