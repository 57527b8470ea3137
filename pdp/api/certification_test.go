package api

import (
	"net/http"
	"reflect"
	"regexp"
	"testing"

	"github.com/ciampdp/pdp/pdp/authzen"
)

const (
	evalPath  = authzen.EvaluationPath
	evalsPath = authzen.EvaluationsPath
)

// TestCertificationSingle runs Basic Core and Basic Properties of the
// AuthZEN 1.0 certification scenario over HTTP, on both endpoints that
// answer single evaluations (evaluations without items behaves the same).
func TestCertificationSingle(t *testing.T) {
	e := newEnv(t, Config{})
	tests := []struct {
		name string
		body string
		want bool
	}{
		{"c-2-2-1 rule 1 alice read record-1", evalBody(subAlice, actRead, res1), true},
		{"rule 1 from fixture entities", evalBody(subAlice, actRead, res1Bare), true},
		{"c-2-2-2 rule 2 alice write record-1", evalBody(subAlice, actWrite, res1), true},
		{"c-2-2-3 rule 3 bob read record-1", evalBody(subBob, actRead, res1), true},
		{"c-2-2-8 rule 4 bob write record-1", evalBody(subBob, actWrite, res1), false},
		{"rule 4 from fixture entities", evalBody(subBobBare, actWrite, res1Bare), false},
		{"c-2-2-4 rule 5 alice write archived", evalBody(subAlice, actWrite, res2), false},
		{"c-2-2-5 rule 6 admin write archived", evalBody(subBob, actWrite, res2), true},
		{"c-2-2-6 rule 7 soft delete", evalBody(subAlice, `{"name":"delete","properties":{"soft":true}}`, res1), true},
		{"c-2-2-7 rule 8 hard delete", evalBody(subAlice, `{"name":"delete","properties":{"soft":false}}`, res1), false},
		{"c-2-2-9 rule 1 with context",
			`{"subject":` + subAlice + `,"action":` + actRead + `,"resource":` + res1 +
				`,"context":{"time":"2024-10-26T01:22-07:00","ip":"192.168.1.1"}}`, true},
		{"c-2-3 rule 1 with extra properties",
			evalBody(`{"type":"user","id":"alice","properties":{"department":"Sales","role":"manager"}}`,
				`{"name":"read","properties":{"method":"GET"}}`,
				`{"type":"record","id":"record-1","properties":{"status":"active","owner":"bob"}}`), true},
		{"c-2-4 unknown top-level fields",
			`{"subject":` + subAlice + `,"action":` + actRead + `,"resource":` + res1 +
				`,"foo":"bar","futureField":{"nested":true}}`, true},
		{"unknown nested fields",
			evalBody(`{"type":"user","id":"alice","x":1}`, `{"name":"read","y":[]}`, `{"type":"record","id":"record-1","z":{}}`), true},
	}
	for _, path := range []string{evalPath, evalsPath} {
		for _, tt := range tests {
			t.Run(path+"/"+tt.name, func(t *testing.T) {
				res, body := e.post(path, tt.body)
				if got := singleDecision(t, res, body); got != tt.want {
					t.Errorf("decision %v, want %v: %s", got, tt.want, body)
				}
			})
		}
	}
}

// TestCertificationBadRequest checks every 400 case of Basic Core (c-2-6)
// and the other malformed shapes, on both endpoints.
func TestCertificationBadRequest(t *testing.T) {
	e := newEnv(t, Config{})
	tests := []struct {
		name        string
		contentType string
		body        string
	}{
		{"missing subject", "", `{"action":` + actRead + `,"resource":` + res1 + `}`},
		{"missing action", "", `{"subject":` + subAlice + `,"resource":` + res1 + `}`},
		{"missing resource", "", `{"subject":` + subAlice + `,"action":` + actRead + `}`},
		{"subject missing type", "", evalBody(`{"id":"alice"}`, actRead, res1)},
		{"subject missing id", "", evalBody(`{"type":"user"}`, actRead, res1)},
		{"action is empty", "", evalBody(subAlice, `{}`, res1)},
		{"resource missing type", "", evalBody(subAlice, actRead, `{"id":"record-1"}`)},
		{"resource missing id", "", evalBody(subAlice, actRead, `{"type":"record"}`)},
		{"content type text/plain", "text/plain", evalBody(subAlice, actRead, res1)},
		{"content type form", "application/x-www-form-urlencoded", evalBody(subAlice, actRead, res1)},
		{"no content type", noContentType, evalBody(subAlice, actRead, res1)},
		{"unparsable content type", "application/json; charset", evalBody(subAlice, actRead, res1)},
		{"non-utf-8 charset", "application/json; charset=latin1", evalBody(subAlice, actRead, res1)},
		{"malformed JSON", "", `{"subject":{"type":"user","id":"alice"},"action":`},
		{"empty body", "", ``},
		{"subject is a string", "", evalBody(`"alice"`, actRead, res1)},
		{"action name is a number", "", evalBody(subAlice, `{"name":123}`, res1)},
		{"top-level array", "", `[` + evalBody(subAlice, actRead, res1) + `]`},
		{"properties not an object", "", evalBody(`{"type":"user","id":"alice","properties":"x"}`, actRead, res1)},
		{"context not an object", "", `{"subject":` + subAlice + `,"action":` + actRead + `,"resource":` + res1 + `,"context":[]}`},
	}
	for _, path := range []string{evalPath, evalsPath} {
		for _, tt := range tests {
			t.Run(path+"/"+tt.name, func(t *testing.T) {
				res, body := e.do(call{path: path, contentType: tt.contentType, body: tt.body})
				errorStatus(t, res, body, http.StatusBadRequest)
			})
		}
	}
}

// TestCertificationBatch runs Batch Core and Batch Properties, plus the
// short-circuit semantics and the batch-level 400s.
func TestCertificationBatch(t *testing.T) {
	for _, compact := range []bool{false, true} {
		e := newEnv(t, Config{CompactBatch: compact})
		tests := []struct {
			name string
			body string
			want []bool
		}{
			{"c-3-2-2 action per item keeps order",
				`{"subject":` + subBob + `,"resource":` + res1 + `,"evaluations":[{"action":{"name":"read"}},{"action":{"name":"write"}}]}`,
				[]bool{true, false}},
			{"c-3-2-5 fully specified items",
				`{"evaluations":[` + evalBody(subAlice, actRead, res1) + `,` + evalBody(subBob, actWrite, res1) + `]}`,
				[]bool{true, false}},
			{"c-3-2-6 item overrides top-level context",
				`{"subject":` + subAlice + `,"action":` + actRead + `,"context":{"time":"2024-10-26T01:22-07:00"},
				"evaluations":[{"resource":` + res1 + `},{"resource":` + res1 + `,"context":{"time":"2025-01-01T00:00Z"}}]}`,
				[]bool{true, true}},
			{"c-3-4-1 incomplete item is denied, not rejected",
				`{"subject":` + subAlice + `,"action":` + actRead + `,"options":{"evaluations_semantic":"execute_all"},
				"evaluations":[{"resource":` + res1 + `},{}]}`,
				[]bool{true, false}},
			{"item with entity lacking id is denied",
				`{"subject":` + subAlice + `,"action":` + actRead + `,"evaluations":[{"resource":{"type":"record"}},{"resource":` + res1 + `}]}`,
				[]bool{false, true}},
			{"c-3-2-3 alice write active and archived",
				`{"subject":` + subAlice + `,"action":` + actWrite + `,"evaluations":[{"resource":` + res1 + `},{"resource":` + res2 + `}]}`,
				[]bool{true, false}},
			{"c-3-2-4 write archived as alice and admin",
				`{"action":` + actWrite + `,"resource":` + res2 + `,"evaluations":[{"subject":` + subAlice + `},{"subject":` + subBob + `}]}`,
				[]bool{false, true}},
			{"c-3-2-7 whole-entity inheritance",
				`{"subject":` + subAlice + `,"action":` + actWrite + `,"resource":` + res1 + `,"evaluations":[{},{"resource":` + res2 + `}]}`,
				[]bool{true, false}},
			{"c-3-3 top-level decision in the request is ignored",
				`{"decision":false,"subject":` + subAlice + `,"action":` + actRead + `,"evaluations":[{"resource":` + res1 + `},{"resource":` + res2 + `},{"resource":` + res1Bare + `}]}`,
				[]bool{true, true, true}},
			{"deny_on_first_deny stops at the first deny",
				`{"subject":` + subAlice + `,"options":{"evaluations_semantic":"deny_on_first_deny"},"resource":` + res1 + `,
				"evaluations":[{"action":{"name":"read"}},{"action":{"name":"delete"}},{"action":{"name":"write"}}]}`,
				[]bool{true, false}},
			{"permit_on_first_permit stops at the first permit",
				`{"subject":` + subAlice + `,"options":{"evaluations_semantic":"permit_on_first_permit"},"action":` + actWrite + `,
				"evaluations":[{"resource":` + res2 + `},{"resource":` + res1 + `},{"resource":` + res2 + `}]}`,
				[]bool{false, true}},
			{"permit_on_first_permit without a permit answers all",
				`{"subject":` + subAlice + `,"options":{"evaluations_semantic":"permit_on_first_permit"},"action":` + actWrite + `,
				"evaluations":[{"resource":` + res2 + `},{"resource":` + res2 + `}]}`,
				[]bool{false, false}},
		}
		for _, tt := range tests {
			t.Run(map[bool]string{false: "full/", true: "compact/"}[compact]+tt.name, func(t *testing.T) {
				res, body := e.post(evalsPath, tt.body)
				if got := batchDecisions(t, res, body); !reflect.DeepEqual(got, tt.want) {
					t.Errorf("decisions %v, want %v: %s", got, tt.want, body)
				}
				if compact && !regexp.MustCompile(`^\{"evaluations":\[(\{"decision":(true|false)\},?)+\]\}\n?$`).Match(body) {
					t.Errorf("compact batch answer is not items of exactly {\"decision\":bool}: %s", body)
				}
			})
		}
	}
}

func TestCertificationBatchStructure(t *testing.T) {
	e := newEnv(t, Config{})
	// c-3-2-1: structure only.
	res, body := e.post(evalsPath, `{"subject":`+subAlice+`,"action":`+actRead+
		`,"evaluations":[{"resource":{"type":"record","id":"record-1"}},{"resource":{"type":"record","id":"record-2"}}]}`)
	if got := batchDecisions(t, res, body); len(got) != 2 {
		t.Errorf("got %d decisions, want 2: %s", len(got), body)
	}
	// c-3-4-2 and c-3-4-3: no items answers a single decision.
	for _, b := range []string{
		evalBody(subAlice, actRead, res1),
		`{"subject":` + subAlice + `,"action":` + actRead + `,"resource":` + res1 + `,"evaluations":[]}`,
	} {
		res, body := e.post(evalsPath, b)
		if !singleDecision(t, res, body) {
			t.Errorf("decision false, want true: %s", body)
		}
	}
}

func TestCertificationBatchBadRequest(t *testing.T) {
	e := newEnv(t, Config{})
	tests := []struct{ name, body string }{
		{"evaluations not an array", `{"subject":` + subAlice + `,"evaluations":{"a":1}}`},
		{"item not an object", `{"evaluations":[` + evalBody(subAlice, actRead, res1) + `,42]}`},
		{"item is null", `{"evaluations":[null]}`},
		{"item subject is a string", `{"action":` + actRead + `,"resource":` + res1 + `,"evaluations":[{"subject":"alice"}]}`},
		{"item action name is a number", `{"subject":` + subAlice + `,"resource":` + res1 + `,"evaluations":[{"action":{"name":123}}]}`},
		{"default resource is an array", `{"resource":[],"evaluations":[{}]}`},
		{"unknown semantic", `{"options":{"evaluations_semantic":"majority"},"evaluations":[` + evalBody(subAlice, actRead, res1) + `]}`},
		{"options not an object", `{"options":[],"evaluations":[` + evalBody(subAlice, actRead, res1) + `]}`},
		{"no items and no resource", `{"subject":` + subAlice + `,"action":` + actRead + `,"evaluations":[]}`},
		{"malformed JSON", `{"evaluations":[{]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, body := e.post(evalsPath, tt.body)
			errorStatus(t, res, body, http.StatusBadRequest)
		})
	}
}

// TestCertificationTransport covers c-2-5 (X-Request-ID), repeated
// identical requests, the charset parameter and the decision context.
func TestCertificationTransport(t *testing.T) {
	e := newEnv(t, Config{})
	uuidRE := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

	t.Run("X-Request-ID echoed", func(t *testing.T) {
		for _, c := range []call{
			{path: evalPath, body: evalBody(subAlice, actRead, res1)},
			{path: evalsPath, body: `{"evaluations":[` + evalBody(subAlice, actRead, res1) + `]}`},
			{path: evalPath, body: `{}`},                     // errors too
			{method: http.MethodGet, path: "/healthz"},       // and ops
			{method: http.MethodGet, path: "/no/such/route"}, // and 404s
			{path: evalPath, body: `{}`, contentType: "text/plain"},
		} {
			c.header = map[string]string{"X-Request-ID": "req-12345"}
			res, body := e.do(c)
			if got := res.Header.Get("X-Request-ID"); got != "req-12345" {
				t.Errorf("%s %s: X-Request-ID %q, want req-12345 (%s)", c.method, c.path, got, body)
			}
		}
	})
	t.Run("X-Request-ID generated when absent", func(t *testing.T) {
		res, body := e.post(evalPath, evalBody(subAlice, actRead, res1))
		singleDecision(t, res, body)
		if got := res.Header.Get("X-Request-ID"); !uuidRE.MatchString(got) {
			t.Errorf("generated X-Request-ID %q is not a UUID", got)
		}
	})
	t.Run("repeated identical requests agree", func(t *testing.T) {
		for _, b := range []string{evalBody(subAlice, actRead, res1), evalBody(subBob, actWrite, res1)} {
			res, body := e.post(evalPath, b)
			first := singleDecision(t, res, body)
			for range 5 {
				res, body := e.post(evalPath, b)
				if got := singleDecision(t, res, body); got != first {
					t.Fatalf("decision changed from %v to %v", first, got)
				}
			}
		}
	})
	t.Run("charset parameter accepted", func(t *testing.T) {
		for _, ct := range []string{"application/json; charset=utf-8", "Application/JSON;charset=UTF-8"} {
			res, body := e.do(call{path: evalPath, contentType: ct, body: evalBody(subAlice, actRead, res1)})
			if !singleDecision(t, res, body) {
				t.Errorf("%s: decision false", ct)
			}
		}
	})
	t.Run("single answer carries the decision context", func(t *testing.T) {
		res, body := e.post(evalPath, evalBody(subBob, actWrite, res1))
		ctx := jsonObject(t, res, body)["context"]
		want := regexp.MustCompile(`^\{"decision_id":"[0-9a-f-]{36}","policy_version":"fakehash","policies":\[\],"reasons":\["not_permitted"\],"obligations":\[\]\}$`)
		if !want.Match(ctx) {
			t.Errorf("context %s does not match %s", ctx, want)
		}
	})
}
