package policy_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/ciampdp/pdp/pdp/internal/policygen"
	"github.com/ciampdp/pdp/pdp/policy"
)

// exampleFile reads a file of the repository's examples, or "" when it is
// gone (the seeds are a convenience, not the test).
func exampleFile(name string) string {
	data, err := os.ReadFile(filepath.Join("..", "..", "examples", filepath.FromSlash(name)))
	if err != nil {
		return ""
	}
	return string(data)
}

// loadTimeout bounds one LoadFiles call of a fuzz input: the Reloader holds
// its lock while loading, so an input that makes loading hang would stall
// reloads and Status. A hang fails the input, which the fuzzer then records.
const loadTimeout = 10 * time.Second

func loadFilesWithin(t *testing.T, files map[string][]byte) (*policy.Bundle, error) {
	t.Helper()
	type result struct {
		b   *policy.Bundle
		err error
	}
	done := make(chan result, 1)
	go func() {
		b, err := policy.LoadFiles(files)
		done <- result{b, err}
	}()
	select {
	case r := <-done:
		return r.b, r.err
	case <-time.After(loadTimeout):
		t.Fatalf("LoadFiles did not return within %v", loadTimeout)
		return nil, nil
	}
}

// checkBundleOrError holds for every outcome of a load: a bundle whose
// policies all have distinct ids and whose version is a SHA-256 with no
// commit, or LoadErrors that each name a file on one line.
func checkBundleOrError(t *testing.T, b *policy.Bundle, err error) {
	t.Helper()
	if err != nil {
		if b != nil {
			t.Fatalf("bundle and error returned together: %v", err)
		}
		if errors.Is(err, policy.ErrNoSchema) {
			t.Fatalf("ErrNoSchema although a schema file was given")
		}
		var les policy.LoadErrors
		if !errors.As(err, &les) {
			t.Fatalf("error %T is not LoadErrors: %v", err, err)
		}
		if len(les) == 0 {
			t.Fatal("empty LoadErrors")
		}
		for _, le := range les {
			if le == nil || le.File == "" || le.Err == nil || le.Line < 0 {
				t.Fatalf("incomplete LoadError %#v", le)
			}
			if strings.Contains(le.Error(), "\n") {
				t.Fatalf("LoadError spans several lines: %q", le.Error())
			}
		}
		return
	}
	if !hashRE.MatchString(b.Version().Hash) || b.Version().Commit != "" {
		t.Fatalf("version %+v: want sha256:<64 hex> and no commit", b.Version())
	}
	seen := map[types.PolicyID]bool{}
	for _, p := range b.Policies() {
		if p.ID == "" || seen[p.ID] {
			t.Fatalf("policy id %q empty or repeated", p.ID)
		}
		seen[p.ID] = true
		if q, ok := b.Policy(p.ID); !ok || q != p || b.PolicySet().Get(p.ID) != p.Cedar {
			t.Fatalf("policy %q not found by its id", p.ID)
		}
	}
	for uid := range b.Entities() {
		if slices.Contains(b.Ancestors(uid), uid) {
			t.Fatalf("%v is its own ancestor", uid)
		}
	}
	for uid := range b.Schema().Actions {
		if _, ok := b.Entities()[uid]; !ok {
			t.Fatalf("schema action %v missing from Entities()", uid)
		}
	}
}

func FuzzLoadFiles(f *testing.F) {
	type seed struct {
		policies, schema string
		json             bool
	}
	seeds := []seed{
		{fixturePolicies, fixtureSchema, false},
		{fixturePolicies, jsonSchema, true},
		{exampleFile("authzen-todo/policies/todo.cedar"), exampleFile("authzen-todo/schema/todo.cedarschema"), false},
		{exampleFile("authzen-certification/policies/records.cedar"), exampleFile("authzen-certification/schema/certification.cedarschema"), false},
		{`permit (principal, action, resource);`, "", false},
		{`@id("x") @id("y") permit (principal is User in Role::"a", action in [Action::"read"], resource) unless { context has ip };`, fixtureSchema, false},
		{"forbid (principal, action, resource) when { principal.name like \"*\\u{0}\" };\n", fixtureSchema, false},
		{"permit (", "entity A in [A] { a?: Set<{ b: Long }> };\ntype T = A;\naction x appliesTo { principal: A, resource: T };", false},
	}
	gen, _ := policygen.Bundle(policygen.Params{Seed: 1, Policies: 12, Users: 3, Groups: 2, Docs: 3, Folders: 2, WildcardPercent: 20})
	seeds = append(seeds, seed{string(gen["policies/gen.cedar"]), string(gen["schema/gen.cedarschema"]), false})
	for i, s := range seeds {
		// Some seeds split the schema in two files at a line break.
		split := 0
		if i%2 == 0 && !s.json {
			split = strings.LastIndex(s.schema, ";\n") + 2
		}
		f.Add(s.policies, s.schema, s.json, uint16(split))
	}
	f.Fuzz(func(t *testing.T, policies, schema string, schemaJSON bool, split uint16) {
		files := map[string][]byte{"policies/fuzz.cedar": []byte(policies)}
		switch {
		case schemaJSON:
			files["schema/fuzz.cedarschema.json"] = []byte(schema)
		case split > 0 && int(split) < len(schema):
			files["schema/a.cedarschema"] = []byte(schema[:split])
			files["schema/b.cedarschema"] = []byte(schema[split:])
		default:
			files["schema/fuzz.cedarschema"] = []byte(schema)
		}
		b, err := loadFilesWithin(t, files)
		checkBundleOrError(t, b, err)
		if err != nil {
			// A line an error names lies in its file (or just past its end).
			for _, le := range loadErrors(t, err) {
				for name, data := range files {
					if strings.TrimPrefix(strings.TrimPrefix(name, "policies/"), "schema/") == le.File &&
						le.Line > strings.Count(string(data), "\n")+1 {
						t.Fatalf("%v: line %d is past the end of %s", le, le.Line, name)
					}
				}
			}
			return
		}
		again, err := loadFilesWithin(t, files)
		if err != nil || again.Version() != b.Version() || len(again.Policies()) != len(b.Policies()) {
			t.Fatalf("second load differs: %v %v", err, again.Version())
		}
	})
}

func FuzzLoadEntities(f *testing.F) {
	seeds := []string{
		fixtureEntities,
		exampleFile("authzen-todo/policies/entities.json"),
		exampleFile("authzen-certification/policies/entities.json"),
		"null", "[]", "{}", "", "[null]", `[{}]`,
		`[{"uid": {"type": "Role", "id": "a"}, "attrs": {}, "parents": [{"type": "Role", "id": "a"}]}]`,
		`[{"uid": {"type": "Action", "id": "read"}, "attrs": {}, "parents": []}]`,
		`[{"uid": {"type": "Status", "id": "active"}, "attrs": {}, "parents": []}]`,
		`[{"uid": {"type": "Doc", "id": "d"}, "attrs": {"owner": {"__entity": {"type": "User", "id": "alice"}}, "public": true}, "parents": [], "tags": {"t": 1}}]`,
		`[{"uid": {"__entity": {"type": "User", "id": "u"}}, "attrs": {"name": "u", "email": {"__extn": {"fn": "ip", "arg": "10.0.0.1"}}}, "parents": []}]`,
		`[{"uid": {"type": "User", "id": "u"}, "attrs": {"name": "u"}, "parents": []}, {"uid": {"type": "User", "id": "u"}, "attrs": {"name": "v"}, "parents": []}]`,
	}
	gen, _ := policygen.Bundle(policygen.Params{Seed: 2, Policies: 1, Users: 2, Groups: 2, Docs: 2, Folders: 2})
	seeds = append(seeds, string(gen["policies/entities.json"]))
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, entities string) {
		b, err := loadFilesWithin(t, map[string][]byte{
			"schema/app.cedarschema": []byte(fixtureSchema),
			"policies/app.cedar":     []byte(fixturePolicies),
			"policies/entities.json": []byte(entities),
		})
		checkBundleOrError(t, b, err)
		if err != nil {
			for _, le := range loadErrors(t, err) {
				if le.File != "entities.json" {
					t.Fatalf("error for a good file: %v", le)
				}
			}
			return
		}
		for uid := range b.Entities() {
			if _, isAction := b.Schema().Actions[uid]; !isAction && (uid.Type == "Action" || strings.HasSuffix(string(uid.Type), "::Action")) {
				t.Fatalf("action entity %v from the entities file was accepted", uid)
			}
		}
	})
}
