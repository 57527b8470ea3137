package policytest

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ciampdp/pdp/pdp/authzen"
	"go.yaml.in/yaml/v3"
)

// ParseSuite decodes one test file. file names it in errors and becomes
// Suite.File. Every request is turned into JSON and decoded by the authzen
// package, so a request that the HTTP API would reject is an error here.
// The error is an *Error, or several joined with errors.Join.
func ParseSuite(file string, data []byte) (Suite, error) {
	p := parser{file: file}
	s := p.suite(data)
	if len(p.errs) > 0 {
		return Suite{}, errors.Join(p.errs...)
	}
	return s, nil
}

// parser walks the YAML node tree by hand, so that every problem carries a
// line and unknown fields are rejected.
type parser struct {
	file string
	errs []error
}

func (p *parser) fail(n *yaml.Node, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	p.errs = append(p.errs, &Error{File: p.file, Line: line, Err: fmt.Errorf(format, args...)})
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func (p *parser) suite(data []byte) Suite {
	s := Suite{File: p.file}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		msg := err.Error()
		line := 0
		if m := yamlLine.FindStringSubmatch(msg); m != nil {
			line, _ = strconv.Atoi(m[1])
			msg = m[2]
		}
		p.errs = append(p.errs, &Error{File: p.file, Line: line, Err: errors.New(strings.TrimPrefix(msg, "yaml: "))})
		return s
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		p.fail(nil, "empty test file")
		return s
	}
	root := deref(doc.Content[0])
	if root.Kind != yaml.MappingNode {
		p.fail(root, "a test file is a mapping with name, cases and batches")
		return s
	}
	var casesNode, batchesNode *yaml.Node
	p.fields(root, func(key string, v *yaml.Node) bool {
		switch key {
		case "name":
			s.Name = p.str(v, "name")
		case "application":
			s.Application = p.str(v, "application")
		case "relationships":
			s.Relationships = p.strings(v, "relationships")
		case "delegations":
			s.Delegations, s.DelegationsFile = p.jsonOrFile(v, "delegations", yaml.SequenceNode)
		case "consents":
			s.Consents, s.ConsentsFile = p.jsonOrFile(v, "consents", yaml.MappingNode)
		case "signals":
			s.Signals, s.SignalsFile = p.jsonOrFile(v, "signals", yaml.SequenceNode)
		case "now":
			if str := p.str(v, "now"); str != "" {
				t, err := time.Parse(time.RFC3339, str)
				if err != nil {
					p.fail(v, "now: want an RFC 3339 time such as 2026-11-28T09:00:00Z, got %q", str)
				}
				s.Now = t
			}
		case "cases":
			casesNode = v
		case "batches":
			batchesNode = v
		default:
			return false
		}
		return true
	})
	if s.Name == "" {
		s.Name = filepath.Base(p.file)
	}
	seen := map[string]int{}
	unique := func(n *yaml.Node, name string) {
		if name == "" {
			return
		}
		if prev, dup := seen[name]; dup {
			p.fail(n, "duplicate name %q (first at line %d)", name, prev)
			return
		}
		seen[name] = n.Line
	}
	for _, n := range p.seq(casesNode, "cases") {
		c, ok := p.testCase(n, s.Application)
		if ok {
			unique(n, c.Name)
			s.Cases = append(s.Cases, c)
		}
	}
	for _, n := range p.seq(batchesNode, "batches") {
		b, ok := p.batch(n, s.Application)
		if ok {
			unique(n, b.Name)
			s.Batches = append(s.Batches, b)
		}
	}
	if len(p.errs) == 0 && len(s.Cases) == 0 && len(s.Batches) == 0 {
		p.fail(root, "no cases and no batches")
	}
	return s
}

// entry reads what cases and batches share: a mapping with a name, a
// request (converted to a JSON body) and an expect node. kind is "case" or
// "batch", for messages.
func (p *parser) entry(n *yaml.Node, kind string) (name, label string, body []byte, req, exp *yaml.Node) {
	n = deref(n)
	if n.Kind != yaml.MappingNode {
		p.fail(n, "a %s is a mapping with name, request and expect", kind)
		return "", "", nil, nil, nil
	}
	p.fields(n, func(key string, v *yaml.Node) bool {
		switch key {
		case "name":
			name = p.str(v, "name")
		case "request":
			req = v
		case "expect":
			exp = v
		default:
			return false
		}
		return true
	})
	if name == "" {
		p.fail(n, "%s without a name", kind)
	}
	label = fmt.Sprintf("%s %q", kind, name)
	if req == nil {
		p.fail(n, "%s: no request", label)
	} else if b, ok := p.body(req, label); ok {
		body = b
	}
	if exp == nil {
		p.fail(n, "%s: no expect", label)
	}
	return name, label, body, req, exp
}

func (p *parser) testCase(n *yaml.Node, app string) (Case, bool) {
	c := Case{Line: n.Line}
	before := len(p.errs)
	name, label, body, req, exp := p.entry(n, "case")
	c.Name = name
	if body != nil {
		r, err := authzen.DecodeEvaluation(body)
		if err != nil {
			p.fail(req, "%s: request: %v", label, err)
		} else {
			r.Application = app
			c.Body, c.Request = body, r
		}
	}
	if exp != nil {
		c.Expect = p.expect(exp, label)
	}
	return c, len(p.errs) == before
}

func (p *parser) expect(n *yaml.Node, label string) Expect {
	var e Expect
	n = deref(n)
	if n.Kind != yaml.MappingNode {
		p.fail(n, "%s: expect is a mapping with decision, policies, reasons and obligations", label)
		return e
	}
	hasDecision := false
	p.fields(n, func(key string, v *yaml.Node) bool {
		switch key {
		case "decision":
			e.Decision, hasDecision = p.boolean(v, label+": expect.decision"), true
		case "policies":
			e.Policies = p.strings(v, label+": expect.policies")
		case "reasons":
			e.Reasons = p.strings(v, label+": expect.reasons")
		case "obligations":
			e.Obligations = p.strings(v, label+": expect.obligations")
		default:
			return false
		}
		return true
	})
	if !hasDecision {
		p.fail(n, "%s: expect has no decision", label)
	}
	return e
}

func (p *parser) batch(n *yaml.Node, app string) (BatchCase, bool) {
	b := BatchCase{Line: n.Line}
	before := len(p.errs)
	name, label, body, req, exp := p.entry(n, "batch")
	b.Name = name
	if body != nil {
		ev, err := authzen.DecodeEvaluations(body)
		if err != nil {
			p.fail(req, "%s: request: %v", label, err)
		} else {
			for i := range ev.Requests {
				ev.Requests[i].Application = app
			}
			b.Body, b.Eval = body, ev
		}
	}
	if exp != nil {
		items := p.seq(exp, label+": expect")
		if deref(exp).Kind == yaml.SequenceNode && len(items) == 0 {
			p.fail(exp, "%s: expect lists no decisions", label)
		}
		for _, it := range items {
			b.Expect = append(b.Expect, p.boolean(it, label+": expect"))
		}
	}
	return b, len(p.errs) == before
}

// fields calls f for every key of a mapping; f returns false for a key it
// does not know, which is an error.
func (p *parser) fields(n *yaml.Node, f func(key string, v *yaml.Node) bool) {
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			p.fail(k, "a key must be a plain string")
			continue
		}
		if seen[k.Value] {
			p.fail(k, "duplicate key %q", k.Value)
			continue
		}
		seen[k.Value] = true
		if !f(k.Value, v) {
			p.fail(k, "unknown field %q", k.Value)
		}
	}
}

func (p *parser) str(n *yaml.Node, what string) string {
	n = deref(n)
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.fail(n, "%s must be a string", what)
		return ""
	}
	return n.Value
}

func (p *parser) boolean(n *yaml.Node, what string) bool {
	n = deref(n)
	var b bool
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" || n.Decode(&b) != nil {
		p.fail(n, "%s must be true or false, not %q", what, n.Value)
		return false
	}
	return b
}

// strings decodes a list of strings; an empty list gives an empty, non-nil
// slice.
func (p *parser) strings(n *yaml.Node, what string) []string {
	items := p.seq(n, what)
	out := make([]string, 0, len(items))
	for _, it := range items {
		if s := p.str(it, what+" item"); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// seq returns the items of a sequence node; nil n (an absent field) and
// null give none.
func (p *parser) seq(n *yaml.Node, what string) []*yaml.Node {
	if n == nil {
		return nil
	}
	n = deref(n)
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.fail(n, "%s must be a list", what)
		return nil
	}
	return n.Content
}

// body converts a request mapping to the JSON body the HTTP API would get.
func (p *parser) body(n *yaml.Node, label string) ([]byte, bool) {
	if deref(n).Kind != yaml.MappingNode {
		p.fail(n, "%s: request must be a mapping (an AuthZEN request body)", label)
		return nil, false
	}
	var v any
	if err := n.Decode(&v); err != nil {
		p.fail(n, "%s: request: %v", label, err)
		return nil, false
	}
	v, err := jsonValue(v)
	if err != nil {
		p.fail(n, "%s: request: %v", label, err)
		return nil, false
	}
	body, err := json.Marshal(v)
	if err != nil {
		p.fail(n, "%s: request: %v", label, err)
		return nil, false
	}
	return body, true
}

// jsonValue turns a decoded YAML value into one encoding/json writes as the
// same JSON: mapping keys become strings, timestamps RFC 3339 strings, and
// non-finite numbers are refused.
func jsonValue(v any) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			j, err := jsonValue(e)
			if err != nil {
				return nil, err
			}
			x[k] = j
		}
		return x, nil
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			j, err := jsonValue(e)
			if err != nil {
				return nil, err
			}
			out[fmt.Sprint(k)] = j
		}
		return out, nil
	case []any:
		for i, e := range x {
			j, err := jsonValue(e)
			if err != nil {
				return nil, err
			}
			x[i] = j
		}
		return x, nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("%v is not a JSON number", x)
		}
		return x, nil
	case time.Time:
		return x.Format(time.RFC3339Nano), nil
	}
	return v, nil
}

// jsonOrFile reads a suite's seed data: inline YAML of the given kind
// (turned into JSON), or the path of a JSON file, relative to the suite's
// folder.
func (p *parser) jsonOrFile(n *yaml.Node, what string, kind yaml.Kind) ([]byte, string) {
	switch deref(n).Kind {
	case yaml.ScalarNode:
		path := p.str(n, what)
		if path != "" && !filepath.IsAbs(path) {
			path = filepath.Join(filepath.Dir(p.file), path)
		}
		return nil, path
	case kind:
		var v any
		if err := n.Decode(&v); err != nil {
			p.fail(n, "%s: %v", what, err)
			return nil, ""
		}
		v, err := jsonValue(v)
		if err != nil {
			p.fail(n, "%s: %v", what, err)
			return nil, ""
		}
		raw, err := json.Marshal(v)
		if err != nil {
			p.fail(n, "%s: %v", what, err)
		}
		return raw, ""
	}
	shape := "a list"
	if kind == yaml.MappingNode {
		shape = "a mapping"
	}
	p.fail(n, "%s must be %s or the path of a JSON file", what, shape)
	return nil, ""
}

// deref follows an alias to the node it names.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; i < 64 && n != nil && n.Kind == yaml.AliasNode && n.Alias != nil; i++ {
		n = n.Alias
	}
	return n
}
