package trail

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"filippo.io/age"
)

var testHashKey = []byte("0123456789abcdef0123456789abcdef")

// auditor is one key pair for the whole test binary (generation is cheap,
// but fixed keys keep fuzz seeds meaningful).
var auditor = sync.OnceValues(func() (struct{ id, rcpt string }, error) {
	id, rcpt, err := NewAuditorIdentity()
	return struct{ id, rcpt string }{id, rcpt}, err
})

func testAuditor(t testing.TB) (identity, recipient string) {
	t.Helper()
	a, err := auditor()
	if err != nil {
		t.Fatal(err)
	}
	return a.id, a.rcpt
}

func newTestRedactor(t testing.TB, rules ...RedactionRule) *Redactor {
	t.Helper()
	_, rcpt := testAuditor(t)
	r, err := NewRedactor(rules, testHashKey, []string{rcpt})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// realisticBody is a decision body as the recorder writes it: about 2 KB,
// personal data in the request and in the Cedar input
// (testdata/decision_body.json, encoded by package recorder's
// DecisionBody).
func realisticBody(t testing.TB) []byte {
	t.Helper()
	body, err := os.ReadFile("testdata/decision_body.json")
	if err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSpace(body)
}

func compact(t testing.TB, body []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, body); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// at returns the value at a concrete path of a decoded body.
func at(v any, path string) (any, bool) {
	segs, err := parsePath(path)
	if err != nil {
		return nil, false
	}
	for _, seg := range segs {
		k := seg.key
		switch x := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = x[k]; !ok {
				return nil, false
			}
		case []any:
			n := parseIndex([]byte(k))
			if n < 0 || n >= len(x) {
				return nil, false
			}
			v = x[n]
		default:
			return nil, false
		}
	}
	return v, true
}

func decode(t testing.TB, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%v in %s", err, b)
	}
	return v
}

func TestParseRulePath(t *testing.T) {
	tests := []struct {
		path, want, err string
	}{
		{path: "request.context.ip", want: "request.context.ip"},
		{path: "decision.input.entities.*.attrs.email", want: "decision.input.entities.*.attrs.email"},
		{path: "a.0.b", want: "a.0.b"},
		{path: `a.b\.c.\*.\\`, want: `a.b\.c.\*.\\`},
		{path: "*", want: "*"},
		{path: "", err: "empty path"},
		{path: "a..b", err: "empty segment 2"},
		{path: "a.", err: "empty segment 2"},
		{path: ".a", err: "empty segment 1"},
		{path: "a.em*il", err: "* must be a whole segment"},
		{path: "a.**", err: "* must be a whole segment"},
		{path: `a.b\`, err: "lone"},
		{path: `a.\n`, err: "unknown escape"},
		{path: "a.\xff", err: "UTF-8"},
	}
	for _, tt := range tests {
		segs, err := parsePath(tt.path)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("parsePath(%q) = %v, want error with %q", tt.path, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("parsePath(%q): %v", tt.path, err)
			continue
		}
		if got := formatSegments(segs); got != tt.want {
			t.Errorf("parsePath(%q) formats as %q, want %q", tt.path, got, tt.want)
		}
	}
	segs, _ := parsePath(`x.\*.*.007.7`)
	if !segs[2].wild || segs[1].wild || segs[1].key != "*" || segs[3].index != -1 || segs[4].index != 7 {
		t.Errorf("segments: %+v", segs)
	}
}

func TestRedactPaths(t *testing.T) {
	const body = `{
		"a": {"b": 1, "c": [10, {"d": "x"}, {"d": "y", "e": null}], "f": {"g": {"h": true}}},
		"list": [{"email": "p@q"}, {"other": 1}, {"email": {"nested": [1,2]}}],
		"dot.key": {"*": "star", "k": 2}
	}`
	tests := []struct {
		name  string
		rules []string
		want  []string // hidden paths, in body order
	}{
		{"one key", []string{"a.b"}, []string{"a.b"}},
		{"whole object", []string{"a"}, []string{"a"}},
		{"array index", []string{"a.c.0"}, []string{"a.c.0"}},
		{"wildcard over array", []string{"a.c.*.d"}, []string{"a.c.1.d", "a.c.2.d"}},
		{"wildcard over object", []string{"a.*"}, []string{"a.b", "a.c", "a.f"}},
		{"wildcard at the top", []string{"*.*.email"}, []string{"list.0.email", "list.2.email"}},
		{"deep", []string{"a.f.g.h"}, []string{"a.f.g.h"}},
		{"missing paths", []string{"a.z", "nope.x", "a.c.9", "a.b.c"}, nil},
		{"index is not a key of an object", []string{"a.0"}, nil},
		{"outer rule wins", []string{"a.f.g.h", "a.f"}, []string{"a.f"}},
		{"escaped keys", []string{`dot\.key.\*`}, []string{`dot\.key.\*`}},
		{"null and object values", []string{"a.c.2.e", "list.2.email"}, []string{"a.c.2.e", "list.2.email"}},
	}
	id, _ := testAuditor(t)
	for _, tt := range tests {
		for _, method := range []string{RedactHash, RedactEncrypt} {
			t.Run(tt.name+"/"+method, func(t *testing.T) {
				var rules []RedactionRule
				for _, p := range tt.rules {
					rules = append(rules, RedactionRule{Path: p, Method: method})
				}
				out, err := newTestRedactor(t, rules...).Redact([]byte(body))
				if err != nil {
					t.Fatal(err)
				}
				if !json.Valid(out) || !bytes.Equal(out, compact(t, out)) {
					t.Fatalf("output is not compact JSON: %s", out)
				}
				_, hidden, err := Reveal(out, nil)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(hidden, tt.want) {
					t.Errorf("hidden = %q, want %q", hidden, tt.want)
				}
				if method == RedactEncrypt {
					revealed, hidden, err := Reveal(out, []string{id})
					if err != nil || len(hidden) > 0 {
						t.Fatalf("Reveal: %v, hidden %q", err, hidden)
					}
					if want := compact(t, []byte(body)); !bytes.Equal(revealed, want) {
						t.Errorf("revealed\n%s\nwant\n%s", revealed, want)
					}
					return
				}
				// Hash: each marker is the HMAC of the value it replaced,
				// and everything else is unchanged.
				orig, got := decode(t, []byte(body)), decode(t, out)
				for _, p := range tt.want {
					v, _ := at(orig, p)
					m, _ := at(got, p)
					want, _ := HashValue(testHashKey, v)
					if mm, ok := m.(map[string]any); !ok || mm[markerKey] != MarkerHMAC || mm["value"] != want {
						t.Errorf("%s: marker %v, want hmac %s", p, m, want)
					}
				}
				masked, _ := json.Marshal(got)
				for _, p := range tt.want {
					v, _ := at(orig, p)
					masked = setAt(t, masked, p, v)
				}
				if !jsonEqual(masked, []byte(body)) {
					t.Errorf("unmatched values changed:\n%s", out)
				}
			})
		}
	}
}

// setAt returns body with the value at the concrete path p set to v.
func setAt(t *testing.T, body []byte, p string, v any) []byte {
	t.Helper()
	root := decode(t, body)
	segs, err := parsePath(p)
	if err != nil {
		t.Fatal(err)
	}
	parent := root
	if len(segs) > 1 {
		parent, _ = at(root, formatSegments(segs[:len(segs)-1]))
	}
	switch last := segs[len(segs)-1]; x := parent.(type) {
	case map[string]any:
		x[last.key] = v
	case []any:
		x[last.index] = v
	}
	b, _ := json.Marshal(root)
	return b
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

func TestRedactHashKeyed(t *testing.T) {
	body := realisticBody(t)
	rules := []RedactionRule{
		{Path: "request.subject.properties.email", Method: RedactHash},
		{Path: "decision.input.entities.*.attrs.email", Method: RedactHash},
	}
	r1 := newTestRedactor(t, rules...)
	a, err := r1.Redact(body)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := r1.Redact(body)
	if !bytes.Equal(a, b) {
		t.Error("hashing is not deterministic")
	}
	other, err := NewRedactor(rules, []byte("another key, 16+ bytes long"), nil)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := other.Redact(body)
	if bytes.Equal(a, c) {
		t.Error("a different key gives the same record")
	}
	v := decode(t, a)
	req, _ := at(v, "request.subject.properties.email")
	ent, _ := at(v, "decision.input.entities.0.attrs.email")
	bob, _ := at(v, "decision.input.entities.2.attrs.email")
	if fmt.Sprint(req) != fmt.Sprint(ent) || fmt.Sprint(req) == fmt.Sprint(bob) {
		t.Errorf("equal values must match across fields, different ones not: %v %v %v", req, ent, bob)
	}
	want, _ := HashValue(testHashKey, "alice.martin@example.com")
	if req.(map[string]any)["value"] != want {
		t.Errorf("HashValue does not confirm the candidate: %v, want %s", req, want)
	}
	if bytes.Contains(a, []byte("alice.martin@")) || bytes.Contains(a, []byte("bob@")) {
		t.Errorf("e-mail left in the record: %s", a)
	}
	_, hidden, _ := Reveal(a, nil)
	want2 := []string{"decision.input.entities.0.attrs.email", "decision.input.entities.2.attrs.email", "request.subject.properties.email"}
	if !slices.Equal(hidden, want2) {
		t.Errorf("hidden = %q, want %q", hidden, want2)
	}
}

func TestRedactEncryptReveal(t *testing.T) {
	body := realisticBody(t)
	id, rcpt := testAuditor(t)
	otherID, otherRcpt, _ := NewAuditorIdentity()
	rules := []RedactionRule{
		{Path: "request.subject.properties", Method: RedactEncrypt},
		{Path: "decision.input.entities.*.attrs.email", Method: RedactEncrypt},
		{Path: "decision.input.context.device.*", Method: RedactEncrypt},
		{Path: "request.context.ip", Method: RedactHash},
	}
	r, err := NewRedactor(rules, testHashKey, []string{rcpt, otherRcpt})
	if err != nil {
		t.Fatal(err)
	}
	out, err := r.Redact(body)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(out, []byte("alice.martin@")) || bytes.Contains(out, []byte("sha256:9b1f2c7d4e5a6b8c9d0e1f2a3b4c5d6e\",\"id\":\"d-7f3a9c\",\"trusted\":true},\"ip\":\"203")) {
		t.Fatalf("personal data left in the record: %s", out)
	}
	encrypted := []string{
		"decision.input.context.device.fingerprint", "decision.input.context.device.id", "decision.input.context.device.trusted",
		"decision.input.entities.0.attrs.email", "decision.input.entities.2.attrs.email", "request.subject.properties",
	}
	tests := []struct {
		name string
		ids  []string
		want []string // hidden
	}{
		{"auditor", []string{id}, []string{"request.context.ip"}},
		{"second recipient", []string{otherID}, []string{"request.context.ip"}},
		{"wrong identity, then the right one", []string{mustIdentity(t), id}, []string{"request.context.ip"}},
		{"no identity", nil, append(slices.Clone(encrypted[:5]), "request.subject.properties", "request.context.ip")},
		{"wrong identity", []string{mustIdentity(t)}, append(slices.Clone(encrypted[:5]), "request.subject.properties", "request.context.ip")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			revealed, hidden, err := Reveal(out, tt.ids)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(hidden, tt.want) {
				t.Errorf("hidden = %q, want %q", hidden, tt.want)
			}
			if len(tt.want) > 1 {
				return
			}
			// Only the hashed ip differs from the original.
			if !jsonEqual(setAt(t, revealed, "request.context.ip", "203.0.113.42"), body) {
				t.Errorf("revealed body differs:\n%s\nwant\n%s", revealed, body)
			}
			orig, got := decode(t, body), decode(t, revealed)
			for _, p := range encrypted {
				a, _ := at(orig, p)
				b, _ := at(got, p)
				aj, _ := json.Marshal(a)
				bj, _ := json.Marshal(b)
				if !bytes.Equal(aj, bj) {
					t.Errorf("%s: revealed %s, want %s", p, bj, aj)
				}
			}
		})
	}
	if got := NotReplayable(tests[3].want); !slices.Equal(got, encrypted[:5]) {
		t.Errorf("NotReplayable = %q, want %q", got, encrypted[:5])
	}
}

func mustIdentity(t *testing.T) string {
	id, _, err := NewAuditorIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestNotReplayable(t *testing.T) {
	tests := []struct {
		hidden, want []string
	}{
		{nil, nil},
		{[]string{"request.subject.properties.email", "request.context.ip"}, nil},
		{[]string{"decision.input.entities.3.attrs.email", "request.context.ip", "decision.input.context.ip"},
			[]string{"decision.input.entities.3.attrs.email", "decision.input.context.ip"}},
		{[]string{"decision.input"}, []string{"decision.input"}},
		{[]string{"decision"}, []string{"decision"}},
		{[]string{"decision.inputs.x", `decision\.input.x`, "decision.facts.0", "decision.message"}, nil},
	}
	for _, tt := range tests {
		if got := NotReplayable(tt.hidden); !slices.Equal(got, tt.want) {
			t.Errorf("NotReplayable(%q) = %q, want %q", tt.hidden, got, tt.want)
		}
	}
}

func TestNewRedactorErrors(t *testing.T) {
	id, rcpt := testAuditor(t)
	pq, err := age.GenerateHybridIdentity()
	if err != nil {
		t.Fatal(err)
	}
	hash := func(p string) []RedactionRule { return []RedactionRule{{Path: p, Method: RedactHash}} }
	many := make([]RedactionRule, MaxRedactionRules+1)
	for i := range many {
		many[i] = RedactionRule{Path: fmt.Sprintf("a.%d", i), Method: RedactHash}
	}
	tests := []struct {
		name       string
		rules      []RedactionRule
		key        []byte
		recipients []string
		err        error
		msg        string
	}{
		{"empty path", hash(""), testHashKey, nil, ErrBadRule, `rule 1 (""): empty path`},
		{"empty segment", []RedactionRule{{"a.b", RedactHash}, {"a..b", RedactHash}}, testHashKey, nil, ErrBadRule, `rule 2 ("a..b"): empty segment 2`},
		{"partial star", hash("request.e*"), testHashKey, nil, ErrBadRule, "* must be a whole segment"},
		{"method", []RedactionRule{{"request.context.ip", "erase"}}, testHashKey, nil, ErrBadRule, `rule 1 ("request.context.ip"): method "erase", want hash or encrypt`},
		{"no method", []RedactionRule{{"request.context.ip", ""}}, testHashKey, nil, ErrBadRule, `method ""`},
		{"duplicate", []RedactionRule{{"a.b", RedactHash}, {`a.\b`, RedactEncrypt}}, testHashKey, []string{rcpt}, ErrBadRule, "escape"},
		{"duplicate path", []RedactionRule{{"a.*", RedactHash}, {"a.*", RedactEncrypt}}, testHashKey, []string{rcpt}, ErrBadRule, "same path as rule 1"},
		{"too many", many, testHashKey, nil, ErrBadRule, "at most 64"},
		{"no hash key", hash("a"), nil, nil, ErrNoHashKey, "no hash key"},
		{"short hash key", hash("a"), []byte("short"), nil, ErrNoHashKey, "5 bytes, want at least 16"},
		{"no recipients", []RedactionRule{{"a", RedactEncrypt}}, nil, nil, ErrNoRecipient, "encrypt"},
		{"bad recipient", []RedactionRule{{"a", RedactEncrypt}}, nil, []string{"age1notakey"}, ErrBadRecipient, "recipient 1"},
		{"not a recipient", nil, nil, []string{rcpt, "ssh-ed25519 AAAA"}, ErrBadRecipient, "recipient 2: not an age recipient"},
		{"identity as recipient", []RedactionRule{{"a", RedactEncrypt}}, nil, []string{id}, ErrBadRecipient, "this is an identity"},
		{"mixed post-quantum", []RedactionRule{{"a", RedactEncrypt}}, nil, []string{rcpt, pq.Recipient().String()}, ErrBadRecipient, "incompatible"},
	}
	for _, tt := range tests {
		_, err := NewRedactor(tt.rules, tt.key, tt.recipients)
		if !errors.Is(err, tt.err) || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%s: %v, want %v with %q", tt.name, err, tt.err, tt.msg)
		}
		if err != nil && strings.Contains(err.Error(), id) {
			t.Errorf("%s: the error quotes the secret key", tt.name)
		}
	}
	// Fine: no rules at all; post-quantum recipients alone; a key without hash rules.
	if _, err := NewRedactor(nil, nil, nil); err != nil {
		t.Error(err)
	}
	if _, err := NewRedactor([]RedactionRule{{"a", RedactEncrypt}}, nil, []string{pq.Recipient().String()}); err != nil {
		t.Error(err)
	}
}

func TestRedactPostQuantum(t *testing.T) {
	id, err := age.GenerateHybridIdentity()
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewRedactor([]RedactionRule{{"a.b", RedactEncrypt}}, nil, []string{id.Recipient().String()})
	if err != nil {
		t.Fatal(err)
	}
	out, err := r.Redact([]byte(`{"a":{"b":"secret"}}`))
	if err != nil {
		t.Fatal(err)
	}
	got, hidden, err := Reveal(out, []string{id.String()})
	if err != nil || len(hidden) > 0 || string(got) != `{"a":{"b":"secret"}}` {
		t.Errorf("Reveal = %s, %q, %v", got, hidden, err)
	}
}

func TestRedactMalformed(t *testing.T) {
	r := newTestRedactor(t, RedactionRule{"a.b", RedactHash}, RedactionRule{"a.c", RedactEncrypt})
	for _, in := range []string{
		"", " ", "{", "}", `{"a":}`, `{"a" 1}`, `{"a":1,}`, `{a:1}`, `[1,]`, `[1 2]`, `{"a":{"b":1}`,
		`{"a":{"b":[1,2}}`, `{"a":{"c":"x}}`, `"\x"`, `"\u12G4"`, "\"a\x01\"", `01`, `-`, `1.`, `1e`, `.5`, `+1`,
		`tru`, `nul`, `{"a":1} x`, `{"a":1}{}`, `{"a":{"b":01}}`, `{"a":NaN}`, strings.Repeat("[", 1001) + strings.Repeat("]", 1001),
	} {
		out, err := r.Redact([]byte(in))
		if !errors.Is(err, ErrBadBody) {
			t.Errorf("Redact(%q) = %s, %v; want ErrBadBody", in, out, err)
		}
		if _, _, err := Reveal([]byte(in), nil); err == nil && !json.Valid([]byte(in)) {
			t.Errorf("Reveal(%q) accepted it", in)
		}
	}
	for _, in := range []string{`0`, `-0.5e+7`, `""`, `"\u00e9\n\/"`, `[]`, `{}`, ` {"a" : { "b" : [ 1 , 2 ] } } `, `null`, `[true,false]`,
		strings.Repeat("[", 1000) + strings.Repeat("]", 1000)} {
		out, err := r.Redact([]byte(in))
		if err != nil {
			t.Errorf("Redact(%q): %v", in, err)
		} else if !json.Valid(out) {
			t.Errorf("Redact(%q) = %s, not JSON", in, out)
		}
	}
}

// A client that puts a marker into its request must not make a decision
// look unreplayable, nor choose what replay would see.
func TestRedactPlantedMarker(t *testing.T) {
	id, rcpt := testAuditor(t)
	// A real age marker to the auditor, planted by a client that knows the
	// auditor's public recipient.
	planted, err := newTestRedactor(t, RedactionRule{"x", RedactEncrypt}).Redact([]byte(`{"x":"forged"}`))
	if err != nil {
		t.Fatal(err)
	}
	forged, _ := at(decode(t, planted), "x")
	forgedJSON, _ := json.Marshal(forged)
	body := fmt.Sprintf(`{"decision":{"input":{"context":{"note":%s,"deep":{"$redacted":{"$redacted":"hmac-sha256","value":"x"}}}}},`+
		`"request":{"context":{"note":%s,"x":"someone@example.com"},"odd":{"k":1,"\u0024redacted":2}}}`, forgedJSON, forgedJSON)
	r, err := NewRedactor([]RedactionRule{{"request.context.x", RedactHash}, {"decision.input.context.deep.$redacted.value", RedactEncrypt}}, testHashKey, []string{rcpt})
	if err != nil {
		t.Fatal(err)
	}
	out, err := r.Redact([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	for _, ids := range [][]string{nil, {id}} {
		revealed, hidden, err := Reveal(out, ids)
		if err != nil {
			t.Fatal(err)
		}
		wantHidden := []string{"request.context.x"}
		if ids == nil {
			wantHidden = []string{`decision.input.context.deep.$redacted.value`, "request.context.x"}
		}
		if !slices.Equal(hidden, wantHidden) {
			t.Errorf("ids %d: hidden = %q, want %q", len(ids), hidden, wantHidden)
		}
		if ids == nil {
			continue
		}
		want := compact(t, []byte(strings.Replace(body, `"x":"someone@example.com"`, `"x":{"$redacted":"hmac-sha256","value":"`+mustHash(t, "someone@example.com")+`"}`, 1)))
		if !bytes.Equal(revealed, want) {
			t.Errorf("revealed\n%s\nwant\n%s", revealed, want)
		}
	}
}

func mustHash(t *testing.T, v any) string {
	h, err := HashValue(testHashKey, v)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestRevealErrors(t *testing.T) {
	id, _ := testAuditor(t)
	tests := []struct {
		body string
		ids  []string
		err  error
		msg  string
	}{
		{`{"a":{"$redacted":"rot13","value":"x"}}`, nil, ErrBadMarker, `at "a": unknown method "rot13"`},
		{`{"a":{"$redacted":"age"}}`, nil, ErrBadBody, ""},
		{`{"a":{"$redacted":1,"value":"x"}}`, nil, ErrBadMarker, "method is not a string"},
		{`{"a":{"$redacted":"age","other":"x"}}`, nil, ErrBadMarker, `want the member "value"`},
		{`{"a":{"$redacted":"age","value":7}}`, nil, ErrBadMarker, "value is not a string"},
		{`{"a":{"$redacted":"age","value":"x","more":1}}`, nil, ErrBadMarker, "members beyond"},
		{`{"a":{"$redacted":"literal","value":[1]}}`, nil, ErrBadMarker, "not an object"},
		{`{"a":{"k":1,"$redacted":"age"}}`, nil, ErrBadMarker, "not the first key"},
		{`{"a":{"$redacted":"age","value":"!!"}}`, []string{id}, ErrBadMarker, "not base64"},
		{`{"a":{"$redacted":"age","value":"aGVsbG8="}}`, []string{id}, ErrBadMarker, "age:"},
		{`{}`, []string{"AGE-SECRET-KEY-1NOPE"}, ErrBadIdentity, "identity 1"},
		{`{}`, []string{id, "age1abc"}, ErrBadIdentity, "identity 2: not an age identity"},
		{`{"a":1`, nil, ErrBadBody, "unexpected end"},
	}
	for _, tt := range tests {
		_, _, err := Reveal([]byte(tt.body), tt.ids)
		if !errors.Is(err, tt.err) || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("Reveal(%s) = %v, want %v with %q", tt.body, err, tt.err, tt.msg)
		}
		if err != nil && strings.Contains(err.Error(), "NOPE") {
			t.Errorf("the error quotes the identity: %v", err)
		}
	}
	// Without identities an age marker is not opened, so not checked.
	if _, hidden, err := Reveal([]byte(`{"a":{"$redacted":"age","value":"!!"}}`), nil); err != nil || len(hidden) != 1 {
		t.Errorf("no identities: %q, %v", hidden, err)
	}
}

// The hidden paths Reveal returns are rule paths that select exactly the
// value they name.
func TestHiddenPathsAreRulePaths(t *testing.T) {
	body := []byte(`{"a.b":{"*":[{"c\\d":1}]},"e":{"*":2,"f":3}}`)
	r := newTestRedactor(t, RedactionRule{"*.*.*.*", RedactHash}, RedactionRule{`e.\*`, RedactHash})
	out, err := r.Redact(body)
	if err != nil {
		t.Fatal(err)
	}
	_, hidden, _ := Reveal(out, nil)
	if want := []string{`a\.b.\*.0.c\\d`, `e.\*`}; !slices.Equal(hidden, want) {
		t.Fatalf("hidden = %q, want %q", hidden, want)
	}
	for _, p := range hidden {
		out2, _ := newTestRedactor(t, RedactionRule{p, RedactHash}).Redact(body)
		_, h2, _ := Reveal(out2, nil)
		if !slices.Equal(h2, []string{p}) {
			t.Errorf("rule %q hides %q", p, h2)
		}
	}
}

func TestRedactConcurrent(t *testing.T) {
	body := realisticBody(t)
	r := newTestRedactor(t, RedactionRule{"request.subject.properties.email", RedactHash}, RedactionRule{"decision.input.context.ip", RedactHash})
	want, _ := r.Redact(body)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				if got, err := r.Redact(body); err != nil || !bytes.Equal(got, want) {
					t.Error("concurrent Redact differs")
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestNewAuditorIdentity(t *testing.T) {
	id, rcpt, err := NewAuditorIdentity()
	if err != nil || !strings.HasPrefix(id, "AGE-SECRET-KEY-1") || !strings.HasPrefix(rcpt, "age1") {
		t.Fatalf("NewAuditorIdentity() = %q, %q, %v", id, rcpt, err)
	}
}

var benchRules = map[string][]RedactionRule{
	"none": nil,
	"hash3": {
		{Path: "request.subject.properties.email", Method: RedactHash},
		{Path: "decision.input.entities.*.attrs.email", Method: RedactHash},
		{Path: "decision.input.context.ip", Method: RedactHash},
	},
	"encrypt3": {
		{Path: "request.subject.properties.email", Method: RedactEncrypt},
		{Path: "decision.input.entities.*.attrs.email", Method: RedactEncrypt},
		{Path: "decision.input.context.ip", Method: RedactEncrypt},
	},
}

func BenchmarkRedact(b *testing.B) {
	body := realisticBody(b)
	for _, name := range []string{"none", "hash3", "encrypt3"} {
		b.Run(name, func(b *testing.B) {
			r := newTestRedactor(b, benchRules[name]...)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			var out []byte
			for b.Loop() {
				var err error
				if out, err = r.Redact(body); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(out)), "bytes-out")
		})
	}
	// For scale: what encoding/json takes just to check the body.
	b.Run("json.Valid", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			json.Valid(body)
		}
	})
}

func BenchmarkReveal(b *testing.B) {
	body := realisticBody(b)
	id, _ := testAuditor(b)
	out, err := newTestRedactor(b, benchRules["encrypt3"]...).Redact(body)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Reveal(out, []string{id}); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzParseRulePath(f *testing.F) {
	for _, s := range []string{"request.context.ip", "decision.input.entities.*.attrs.email", `a\.b.\*.\\`, "a..b", `x\`, "*.0.*", "em*il"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		segs, err := parsePath(p)
		if err != nil {
			return
		}
		back := formatSegments(segs)
		again, err := parsePath(back)
		if err != nil || !slices.Equal(again, segs) {
			t.Fatalf("%q -> %q -> %v, %v", p, back, again, err)
		}
	})
}

// FuzzRedact: any input either is refused as malformed or yields compact
// JSON, and encrypting then revealing gives the input back, byte for byte
// once compacted.
func FuzzRedact(f *testing.F) {
	f.Add(realisticBody(f))
	for _, s := range []string{`{"a":{"b":1}}`, `{"a":[{"b":"x"},{"c":[1,{"b":2}]}]}`, `{"$redacted":"age","value":"x"}`,
		`{"a":{"$redacted":{"$redacted":"literal","value":{}}}}`, `[{"a":{"b":{"c":null}}}]`, ` {"a" : "\u0024redacted"} `, `{"a":}`, `1e5`} {
		f.Add([]byte(s))
	}
	id, _ := testAuditor(f)
	hasher := newTestRedactor(f, RedactionRule{"a.b", RedactHash}, RedactionRule{"*.*.c", RedactHash}, RedactionRule{"request.subject.properties.email", RedactHash})
	sealer := newTestRedactor(f, RedactionRule{"a.b", RedactEncrypt}, RedactionRule{"*.1.*", RedactEncrypt}, RedactionRule{"decision.input.context", RedactEncrypt})
	f.Fuzz(func(t *testing.T, body []byte) {
		out, err := hasher.Redact(body)
		valid := json.Valid(body)
		if err != nil {
			if valid && !strings.Contains(err.Error(), "nested deeper") {
				t.Fatalf("valid JSON refused: %v", err)
			}
			return
		}
		if !valid {
			t.Fatalf("invalid JSON accepted: %q -> %q", body, out)
		}
		if !json.Valid(out) || !bytes.Equal(out, compact(t, out)) {
			t.Fatalf("output is not compact JSON: %q", out)
		}
		if _, _, err := Reveal(out, nil); err != nil {
			t.Fatalf("Reveal of a redacted body: %v", err)
		}
		sealed, err := sealer.Redact(body)
		if err != nil {
			t.Fatal(err)
		}
		revealed, hidden, err := Reveal(sealed, []string{id})
		if err != nil || len(hidden) > 0 {
			t.Fatalf("Reveal: %v, hidden %q", err, hidden)
		}
		if want := compact(t, body); !bytes.Equal(revealed, want) {
			t.Fatalf("round trip:\n%q\nwant\n%q", revealed, want)
		}
	})
}

// FuzzReveal: any input is refused or yields valid JSON, and every hidden
// path names a marker of the input.
func FuzzReveal(f *testing.F) {
	id, _ := testAuditor(f)
	body := realisticBody(f)
	for _, rules := range benchRules {
		out, err := newTestRedactor(f, rules...).Redact(body)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(out)
	}
	for _, s := range []string{`{"a":{"$redacted":"literal","value":{"$redacted":1}}}`, `{"$redacted":"hmac-sha256","value":"x"}`,
		`[{"$redacted":"age","value":"YWdl"}]`, `{"a":{"$redacted":"rot13","value":"x"}}`, `{}`, `[`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, hidden, err := Reveal(in, []string{id})
		if err != nil {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("output is not JSON: %q", out)
		}
		_, hidden2, err := Reveal(in, nil)
		if err != nil || len(hidden2) < len(hidden) {
			t.Fatalf("without identities: %q, %v; with: %q", hidden2, err, hidden)
		}
	})
}
