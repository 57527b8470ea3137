package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/ciampdp/pdp/pdp/api"
)

// The HTTP fuzz test drives every AuthZEN and admin endpoint of the
// Northbank example, served by the real server with its shipped
// configuration (API keys, trail on), with mutated bodies, headers and
// keys, and holds three rules on every answer:
//
//  1. never a 5xx;
//  2. never a state change behind a 4xx: the delegation records and the
//     consent ledger (their files, byte for byte) are unchanged by any
//     refused request;
//  3. never an allow that the same request without the mutation would
//     deny: a mutation that keeps the JSON's meaning (whitespace, member
//     order, escapes, harmless headers) gets the original's answer, and a
//     mutated body that is answered at all is answered as its strict,
//     canonical re-encoding is (the PDP decides on what the JSON says, and
//     a body a strict decoder refuses — duplicate names, invalid UTF-8 —
//     is refused).
//
// PDP_FUZZ_N (default 3000) sets the number of mutated requests and
// PDP_FUZZ_SEED the random seed (default 1; "random" for a new one, printed
// on failure) to reproduce a run.

// fuzzCase is one valid request the mutations start from.
type fuzzCase struct {
	name   string
	method string
	path   string
	app    string // the application whose key is sent
	body   string
	authz  bool // an AuthZEN decision endpoint: rule 3 applies
	header http.Header
}

// sidecarHeader names the fuzz test's one sidecar on the change feed and
// the ingest endpoint.
var sidecarHeader = http.Header{api.SidecarIDHeader: {"fuzz-sidecar"}}

func fuzzCases() []fuzzCase {
	ev := func(name, app, subject, action, resource, ctx string) fuzzCase {
		return fuzzCase{name: name, method: http.MethodPost, path: "/access/v1/evaluation", app: app, authz: true,
			body: `{"subject":` + subject + `,"action":{"name":"` + action + `"},"resource":` + resource + `,"context":` + ctx + `}`}
	}
	acc := func(id string) string { return `{"type":"account","id":"` + id + `"}` }
	cases := []fuzzCase{
		ev("bob pays for alice", "mobile-banking", user("bob"), "make_payment", acc("acc-alice"), forUser("alice", `,"amount":250,"currency":"EUR"`)),
		ev("bob pays too much", "mobile-banking", user("bob"), "make_payment", acc("acc-alice"), forUser("alice", `,"amount":1500,"currency":"EUR"`)),
		ev("carol pays over her cap", "mobile-banking", user("carol"), "make_payment", acc("acc-carol"), `{"purpose":"account_servicing","amount":5000,"currency":"EUR"}`),
		ev("mallory views alice", "mobile-banking", user("mallory"), "view_statements", acc("acc-alice"), `{"purpose":"account_servicing"}`),
		ev("alice views her own", "mobile-banking", user("alice"), "view_statements", acc("acc-alice"), `{"purpose":"account_servicing"}`),
		ev("peggy not accepted", "mobile-banking", user("peggy"), "view_statements", acc("acc-alice"), forUser("alice", "")),
		ev("frank for acme", "mobile-banking", user("frank"), "view_statements", acc("acc-acme"), forAcme("")),
		ev("gina advises", "advisor-portal", user("gina"), "view_portfolio", acc("acc-alice"), `{"purpose":"financial_advice"}`),
		ev("marketing heidi", "marketing-hub", `{"type":"application","id":"marketing-hub"}`, "send_marketing", user("heidi"), `{"purpose":"marketing"}`),
		ev("judy expired", "budget-app", user("judy"), "share_account_information", acc("acc-judy"), `{"purpose":"account_information_sharing"}`),
		{name: "batch", method: http.MethodPost, path: "/access/v1/evaluations", app: "mobile-banking", authz: true,
			body: `{"subject":{"type":"user","id":"bob"},"action":{"name":"view_statements"},"context":{"purpose":"account_servicing","on_behalf_of":{"type":"user","id":"alice"}},` +
				`"evaluations":[{"resource":{"type":"account","id":"acc-alice"}},{"resource":{"type":"account","id":"acc-carol"}},` +
				`{"action":{"name":"make_payment"},"resource":{"type":"account","id":"acc-alice"},"context":{"purpose":"account_servicing","on_behalf_of":{"type":"user","id":"alice"},"amount":5000,"currency":"EUR"}}]}`},
		{name: "search resource", method: http.MethodPost, path: "/access/v1/search/resource", app: "mobile-banking", authz: true,
			body: `{"subject":{"type":"user","id":"dave"},"action":{"name":"view_statements"},"resource":{"type":"account"},"context":{"purpose":"account_servicing","on_behalf_of":{"type":"user","id":"carol"}}}`},
		{name: "search subject", method: http.MethodPost, path: "/access/v1/search/subject", app: "mobile-banking", authz: true,
			body: `{"subject":{"type":"user"},"action":{"name":"view_statements"},"resource":{"type":"account","id":"acc-alice"},"context":{"purpose":"account_servicing"}}`},
		{name: "search action", method: http.MethodPost, path: "/access/v1/search/action", app: "mobile-banking", authz: true,
			body: `{"subject":{"type":"user","id":"alice"},"resource":{"type":"account","id":"acc-alice"},"context":{"purpose":"account_servicing"}}`},
		{name: "offer", method: http.MethodPost, path: "/v1/delegations", app: "mobile-banking",
			body: `{"actor":{"type":"user","id":"alice"},"principal":{"type":"user","id":"alice"},"agent":{"type":"user","id":"trent"},` +
				`"basis":"power_of_attorney","source":"self_declared","scope":["view_statements","make_payment"],"resources":[{"type":"account","id":"acc-alice"}],` +
				`"constraints":{"max_amount":200,"currency":"EUR"},"valid_from":"2026-01-01T00:00:00Z","valid_until":"2036-01-01T00:00:00Z"}`},
		{name: "list delegations", method: http.MethodGet, path: "/v1/delegations?principal=user:alice", app: "mobile-banking"},
		{name: "get delegation", method: http.MethodGet, path: "/v1/delegations/poa-alice-bob", app: "mobile-banking"},
		{name: "consent state", method: http.MethodGet, path: "/v1/consents/subjects/user:alice", app: "advisor-portal"},
		{name: "consent history", method: http.MethodGet, path: "/v1/consents/subjects/user:alice/history", app: "advisor-portal"},
		{name: "consent give", method: http.MethodPost, path: "/v1/consents/give", app: "budget-app",
			body: `{"subject":{"type":"user","id":"judy"},"purpose":"account_information_sharing","jurisdiction":"DE","notice":{"uri":"https://budget.example/consent","version":3,"language":"de"},"channel":"web"}`},
		{name: "consent refuse", method: http.MethodPost, path: "/v1/consents/refuse", app: "marketing-hub",
			body: `{"subject":{"type":"user","id":"ivan"},"purpose":"marketing","jurisdiction":"US-CA","channel":"email"}`},
		{name: "consent withdraw", method: http.MethodPost, path: "/v1/consents/withdraw", app: "advisor-portal",
			body: `{"subject":{"type":"user","id":"alice"},"purpose":"financial_advice","reason":"changed my mind"}`},
		{name: "consent renew", method: http.MethodPost, path: "/v1/consents/renew", app: "budget-app",
			body: `{"subject":{"type":"user","id":"alice"},"grant_id":"grant-alice-ais"}`},
		{name: "audit query", method: http.MethodGet, path: "/v1/audit/decisions?resource=account:acc-alice&result=deny", app: "internal-audit"},
		{name: "changes", method: http.MethodGet, path: "/v1/changes?wait=0s", app: "mobile-banking", header: sidecarHeader},
		{name: "ingest", method: http.MethodPost, path: "/v1/trail/ingest", app: "mobile-banking", body: `{"records":[]}`, header: sidecarHeader},
	}
	for _, op := range []string{"accept", "revoke", "renounce", "suspend", "resume"} {
		for _, c := range []struct{ id, app, actor string }{
			{"poa-alice-peggy", "mobile-banking", "peggy"},
			{"poa-alice-bob", "mobile-banking", "alice"},
			{"rep-acme-erin", "backoffice", "registrar"},
			{"guardian-carol-dave", "mobile-banking", "mallory"},
		} {
			cases = append(cases, fuzzCase{name: c.id + " " + op, method: http.MethodPost, path: "/v1/delegations/" + c.id + "/" + op, app: c.app,
				body: `{"actor":{"type":"user","id":"` + c.actor + `"},"reason":"fuzz"}`})
		}
	}
	return cases
}

// apps are the keys a mutation may swap in: every application of the
// example, the auditor, a wrong key and none.
var fuzzApps = []string{"mobile-banking", "advisor-portal", "marketing-hub", "budget-app", "backoffice", "internal-audit", "nobody", ""}

func TestHTTPFuzz(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the HTTP fuzz test sends over a thousand requests to the real server")
	}
	n := envInt(t, "PDP_FUZZ_N", 3000)
	// A fixed seed by default, so that a run is reproducible; longer and
	// other runs: PDP_FUZZ_N=20000 PDP_FUZZ_SEED=random (or a number).
	seed := uint64(1)
	if v := os.Getenv("PDP_FUZZ_SEED"); v == "random" {
		seed = uint64(time.Now().UnixNano())
	} else if v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("PDP_FUZZ_SEED: %v", err)
		}
		seed = s
	}
	t.Logf("PDP_FUZZ_SEED=%d PDP_FUZZ_N=%d", seed, n)
	rng := rand.New(rand.NewPCG(seed, 0x5eed))

	dir := t.TempDir()
	stores := []string{filepath.Join(dir, "delegations.jsonl"), filepath.Join(dir, "consent.jsonl")}
	t.Setenv("PDP_DELEGATIONS_PATH", stores[0])
	t.Setenv("PDP_CONSENT_PATH", stores[1])
	s := startNorthbank(t)
	state := func() string {
		h := sha256.New()
		for _, p := range stores {
			b, err := os.ReadFile(p)
			if err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			h.Write(b)
		}
		return hex.EncodeToString(h.Sum(nil))
	}

	cases := fuzzCases()
	before := state()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("seed %d: "+format, append([]any{seed}, args...)...)
	}
	var counts = map[string]int{}
	for i := range n {
		c := cases[rng.IntN(len(cases))]
		m := pickMutation(rng, c)
		req := m.apply(rng, c)
		code, body := fuzzSend(t, s.URL, req)
		counts[fmt.Sprintf("%s %d", m.name, code/100*100)]++
		if code >= 500 {
			fail("request %d (%s, mutation %s): %d %s\nbody: %q", i, c.name, m.name, code, body, req.body)
		}
		after := state()
		if code >= 400 && after != before {
			fail("request %d (%s, mutation %s) was refused (%d %s) but changed the stores\nbody: %q", i, c.name, m.name, code, body, req.body)
		}
		before = after
		if !c.authz || code != http.StatusOK {
			continue
		}
		got := answerOf(t, c.path, body)
		if m.keepsMeaning {
			// The original, sent now (earlier changes may have changed
			// the facts): the same answer.
			oc, ob := fuzzSend(t, s.URL, fuzzRequest{method: c.method, path: c.path, app: req.app, body: c.body})
			if oc != http.StatusOK {
				fail("request %d (%s): the original answered %d %s where the same meaning, %s, answered 200", i, c.name, oc, ob, m.name)
			}
			if want := answerOf(t, c.path, ob); got != want {
				fail("request %d (%s, mutation %s): answer %s, the original's %s\nbody: %q", i, c.name, m.name, got, want, req.body)
			}
			continue
		}
		canon, err := canonical(req.body)
		if err != nil {
			fail("request %d (%s, mutation %s) was answered although a strict decoder refuses its body (%v)\nbody: %q\nanswer: %s", i, c.name, m.name, err, req.body, body)
		}
		cc, cb := fuzzSend(t, s.URL, fuzzRequest{method: c.method, path: c.path, app: req.app, body: canon})
		if cc != http.StatusOK {
			fail("request %d (%s, mutation %s) answered 200, its canonical form %d %s\nbody: %q", i, c.name, m.name, cc, cb, req.body)
		}
		if want := answerOf(t, c.path, cb); got != want {
			fail("request %d (%s, mutation %s): answer %s, its canonical form's %s\nbody: %q\ncanonical: %s", i, c.name, m.name, got, want, req.body, canon)
		}
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		t.Logf("%-28s %d", k, counts[k])
	}
}

// canonical is the body as a strict decoder reads it (no duplicate names,
// valid UTF-8, one JSON value), re-encoded per RFC 8785 (members sorted,
// strings and numbers in one spelling); numbers beyond float64 keep
// their text (compacted only).
func canonical(body string) (string, error) {
	v := jsontext.Value(body)
	if err := v.Compact(); err != nil {
		return "", err
	}
	c := slices.Clone(v)
	if err := c.Canonicalize(); err == nil {
		return string(c), nil
	}
	return string(v), nil
}

// answerOf reduces an AuthZEN answer to what rule 3 compares: the
// decisions, or the search results.
func answerOf(t *testing.T, path string, body []byte) string {
	t.Helper()
	var a struct {
		Decision    *bool `json:"decision"`
		Evaluations []struct {
			Decision bool `json:"decision"`
		} `json:"evaluations"`
		Results []json.RawMessage `json:"results"`
	}
	if err := json.Unmarshal(body, &a); err != nil {
		t.Fatalf("%s: answer is not JSON: %v: %s", path, err, body)
	}
	switch {
	case a.Decision != nil:
		return strconv.FormatBool(*a.Decision)
	case strings.Contains(path, "/search/"):
		rs := make([]string, len(a.Results))
		for i, r := range a.Results {
			rs[i] = string(r)
		}
		slices.Sort(rs)
		return "[" + strings.Join(rs, ",") + "]"
	default:
		ds := make([]string, len(a.Evaluations))
		for i, e := range a.Evaluations {
			ds[i] = strconv.FormatBool(e.Decision)
		}
		return "[" + strings.Join(ds, ",") + "]"
	}
}

type fuzzRequest struct {
	method, path, app, body string
	header                  http.Header
}

func fuzzSend(t *testing.T, base string, r fuzzRequest) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if r.body != "" || r.method == http.MethodPost {
		rd = strings.NewReader(r.body)
	}
	req, err := http.NewRequest(r.method, base+r.path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	switch r.app {
	case "":
	case "nobody":
		req.Header.Set("Authorization", "Bearer not-a-key")
	default:
		req.Header.Set("Authorization", "Bearer demo-key-"+r.app)
	}
	for k, vs := range r.header {
		req.Header.Del(k)
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	client := &http.Client{Timeout: 30 * time.Second}
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", r.method, r.path, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, data
}

// mutation changes a valid request. keepsMeaning: the JSON's meaning and
// the caller are the same as the original's.
type mutation struct {
	name         string
	keepsMeaning bool
	apply        func(rng *rand.Rand, c fuzzCase) fuzzRequest
}

func base(c fuzzCase) fuzzRequest {
	return fuzzRequest{method: c.method, path: c.path, app: c.app, body: c.body, header: c.header.Clone()}
}

func pickMutation(rng *rand.Rand, c fuzzCase) mutation {
	ms := mutations
	if c.body == "" {
		ms = headerMutations
	}
	return ms[rng.IntN(len(ms))]
}

var headerMutations = []mutation{
	{name: "other-key", apply: func(rng *rand.Rand, c fuzzCase) fuzzRequest {
		r := base(c)
		r.app = fuzzApps[rng.IntN(len(fuzzApps))]
		return r
	}},
	{name: "spoofed-headers", keepsMeaning: true, apply: func(rng *rand.Rand, c fuzzCase) fuzzRequest {
		r := base(c)
		r.header = merge(r.header, http.Header{
			"X-On-Behalf-Of":  {"alice"},
			"X-Authz-Subject": {"alice"},
			"X-Forwarded-For": {"10.0.0.1"},
			"X-Application":   {"backoffice"},
			"Actor-Token":     {"not-a-token"},
		})
		if c.path == "/v1/delegations" || strings.Contains(c.path, "/v1/consents/") && c.method == http.MethodPost ||
			strings.HasPrefix(c.path, "/v1/delegations/") && c.method == http.MethodPost {
			// an invalid actor token is refused where actor proof is
			// configured; it is not here (trusted-application mode)
			r.header.Del("Actor-Token")
		}
		return r
	}},
	{name: "query-noise", apply: func(rng *rand.Rand, c fuzzCase) fuzzRequest {
		r := base(c)
		sep := "?"
		if strings.Contains(r.path, "?") {
			sep = "&"
		}
		noise := []string{"x=1", "principal=user:bob", "resource=account:acc-carol", "%zz", "a=%00", "limit=-1", "limit=999999999999", "principal=", "principal=user:alice&principal=user:bob"}
		r.path += sep + noise[rng.IntN(len(noise))]
		return r
	}},
}

var mutations = append(slices.Clone(headerMutations),
	mutation{name: "whitespace", keepsMeaning: true, apply: func(rng *rand.Rand, c fuzzCase) fuzzRequest {
		r := base(c)
		r.body = respace(rng, c.body)
		return r
	}},
	mutation{name: "escapes", keepsMeaning: true, apply: func(rng *rand.Rand, c fuzzCase) fuzzRequest {
		r := base(c)
		r.body = escapeLetters(rng, c.body)
		return r
	}},
	mutation{name: "reorder", keepsMeaning: true, apply: func(rng *rand.Rand, c fuzzCase) fuzzRequest {
		r := base(c)
		r.body = reorder(rng, c.body)
		return r
	}},
	mutation{name: "content-type", keepsMeaning: true, apply: func(rng *rand.Rand, c fuzzCase) fuzzRequest {
		r := base(c)
		r.header = merge(r.header, http.Header{"Content-Type": {[]string{"application/json; charset=utf-8", "Application/JSON"}[rng.IntN(2)]}})
		return r
	}},
	mutation{name: "wrong-content-type", apply: func(rng *rand.Rand, c fuzzCase) fuzzRequest {
		r := base(c)
		r.header = merge(r.header, http.Header{"Content-Type": {[]string{"text/plain", "application/x-www-form-urlencoded", "", "multipart/form-data; boundary=x"}[rng.IntN(4)]}})
		return r
	}},
	mutation{name: "duplicate-name", apply: func(rng *rand.Rand, c fuzzCase) fuzzRequest {
		r := base(c)
		r.body = duplicateName(rng, c.body)
		return r
	}},
	mutation{name: "byte-flip", apply: func(rng *rand.Rand, c fuzzCase) fuzzRequest {
		r := base(c)
		b := []byte(c.body)
		for range 1 + rng.IntN(3) {
			b[rng.IntN(len(b))] = byte(rng.IntN(256))
		}
		r.body = string(b)
		return r
	}},
	mutation{name: "truncate", apply: func(rng *rand.Rand, c fuzzCase) fuzzRequest {
		r := base(c)
		r.body = c.body[:rng.IntN(len(c.body))]
		return r
	}},
	mutation{name: "token-swap", apply: func(rng *rand.Rand, c fuzzCase) fuzzRequest {
		r := base(c)
		r.body = swapToken(rng, c.body)
		return r
	}},
	mutation{name: "huge", apply: func(rng *rand.Rand, c fuzzCase) fuzzRequest {
		r := base(c)
		pad := strings.Repeat("x", 1<<(10+rng.IntN(12)))
		r.body = strings.Replace(c.body, `"id":"`, `"id":"`+pad, 1)
		return r
	}},
	mutation{name: "other-json", apply: func(rng *rand.Rand, c fuzzCase) fuzzRequest {
		r := base(c)
		r.body = []string{"", "null", "[]", "{}", "0", `"x"`, "{" + strings.Repeat(`"a":[`, 200), `{"subject":null}`, c.body + c.body, c.body + "garbage", "\xef\xbb\xbf" + c.body}[rng.IntN(11)]
		return r
	}},
)

// respace adds JSON whitespace between tokens, outside strings.
func respace(rng *rand.Rand, s string) string {
	var b strings.Builder
	inString, escaped := false, false
	ws := []string{" ", "\n", "\t", "\r\n  "}
	for _, r := range s {
		if !inString && strings.ContainsRune("{}[],:", r) && rng.IntN(2) == 0 {
			b.WriteString(ws[rng.IntN(len(ws))])
		}
		b.WriteRune(r)
		switch {
		case escaped:
			escaped = false
		case r == '\\':
			escaped = true
		case r == '"':
			inString = !inString
		}
	}
	return b.String()
}

// escapeLetters writes some ASCII letters inside strings as \u escapes.
func escapeLetters(rng *rand.Rand, s string) string {
	var b strings.Builder
	inString, escaped := false, false
	for _, r := range s {
		switch {
		case escaped:
			escaped = false
			b.WriteRune(r)
			continue
		case r == '\\':
			escaped = true
		case r == '"':
			inString = !inString
		case inString && r < 0x80 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') && rng.IntN(3) == 0:
			fmt.Fprintf(&b, `\u%04x`, r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// reorder rewrites the body with every object's members in a random
// order (the values unchanged).
func reorder(rng *rand.Rand, s string) string {
	var v any
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return s
	}
	var b bytes.Buffer
	writeShuffled(rng, &b, v)
	return b.String()
}

func writeShuffled(rng *rand.Rand, b *bytes.Buffer, v any) {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		rng.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			kb, _ := json.Marshal(k)
			b.Write(kb)
			b.WriteByte(':')
			writeShuffled(rng, b, x[k])
		}
		b.WriteByte('}')
	case []any:
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteByte(',')
			}
			writeShuffled(rng, b, e)
		}
		b.WriteByte(']')
	default:
		vb, _ := json.Marshal(x)
		b.Write(vb)
	}
}

// duplicateName repeats a member of some object with another value, before
// or after the original.
func duplicateName(rng *rand.Rand, s string) string {
	names := []string{`"id":`, `"type":`, `"name":`, `"amount":`, `"currency":`, `"purpose":`, `"on_behalf_of":`, `"actor":`, `"subject":`}
	var have []string
	for _, n := range names {
		if strings.Contains(s, n) {
			have = append(have, n)
		}
	}
	if len(have) == 0 {
		return s
	}
	n := have[rng.IntN(len(have))]
	vals := []string{`"alice"`, `"user"`, `"view_statements"`, `1`, `"USD"`, `{"type":"user","id":"alice"}`, `null`}
	return strings.Replace(s, n, n+vals[rng.IntN(len(vals))]+","+n, 1)
}

// swapToken replaces a string value with another one seen in the
// corpus, or a JSON value with one of another type.
func swapToken(rng *rand.Rand, s string) string {
	vals := []string{`"alice"`, `"bob"`, `"carol"`, `"acc-carol"`, `"user"`, `"account"`, `"organisation"`, `"make_payment"`, `"view_statements"`,
		`"marketing"`, `"account_servicing"`, `-1`, `1e400`, `0`, `99999999999999999999`, `true`, `null`, `[]`, `{}`, `""`, `"\u0000"`,
		`"a/b#c"`, `"user:alice"`, `"ä"`, `"` + strings.Repeat("é", 300) + `"`}
	// find the string or number values
	var spans [][2]int
	inString, escaped, start := false, false, 0
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case escaped:
			escaped = false
		case inString && ch == '\\':
			escaped = true
		case ch == '"':
			if inString {
				if i+1 < len(s) && s[i+1] != ':' {
					spans = append(spans, [2]int{start, i + 1})
				}
			} else {
				start = i
			}
			inString = !inString
		}
	}
	if len(spans) == 0 {
		return s
	}
	sp := spans[rng.IntN(len(spans))]
	return s[:sp[0]] + vals[rng.IntN(len(vals))] + s[sp[1]:]
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return n
}

// merge returns h with the values of add set over it.
func merge(h, add http.Header) http.Header {
	out := h.Clone()
	if out == nil {
		out = http.Header{}
	}
	for k, v := range add {
		out[http.CanonicalHeaderKey(k)] = v
	}
	return out
}
