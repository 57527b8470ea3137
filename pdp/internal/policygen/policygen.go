// Package policygen generates synthetic, schema-valid Cedar bundles (schema,
// entities and policies in every scope form) for the slicing differential
// test and the decision benchmarks.
package policygen

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
)

// Schema is the schema every generated bundle uses.
const Schema = `
entity Group in [Group];
entity User in [Group] { level: Long, name: String };
entity Folder in [Folder];
entity Doc in [Folder] { owner: User, level: Long, public: Bool };
action doc_actions;
action admin_actions;
action read, comment in [doc_actions] appliesTo { principal: [User], resource: [Doc], context: { hour?: Long } };
action write, share in [doc_actions, admin_actions] appliesTo { principal: [User], resource: [Doc], context: { hour?: Long } };
action purge in [admin_actions] appliesTo { principal: [User], resource: [Doc], context: { hour?: Long } };
`

// Actions are the concrete actions of Schema, plus the extra plain ones a
// bundle adds (a0, a1, …) to spread policies the way real sets do.
var baseActions = []string{"read", "comment", "write", "share", "purge"}

// Params shape a bundle.
type Params struct {
	Seed     uint64
	Policies int
	Users    int
	Groups   int
	Docs     int
	Folders  int
	// ExtraActions adds plain actions a0..aN-1 (no groups).
	ExtraActions int
	// WildcardPercent is the share of policies whose principal and resource
	// scopes are unconstrained or only typed: the ones no index can skip.
	WildcardPercent int
}

// Bundle returns the files of a generated bundle, keyed as policy.LoadFiles
// expects, and the names of its actions.
func Bundle(p Params) (files map[string][]byte, actions []string) {
	r := rand.New(rand.NewPCG(p.Seed, p.Seed^0x9e3779b97f4a7c15))
	actions = append([]string{}, baseActions...)
	schema := Schema
	if p.ExtraActions > 0 {
		var extra []string
		for i := range p.ExtraActions {
			extra = append(extra, fmt.Sprintf("a%d", i))
		}
		actions = append(actions, extra...)
		schema += "action " + strings.Join(extra, ", ") + " appliesTo { principal: [User], resource: [Doc], context: { hour?: Long } };\n"
	}

	type ent struct {
		UID     map[string]string   `json:"uid"`
		Attrs   map[string]any      `json:"attrs"`
		Parents []map[string]string `json:"parents"`
	}
	uid := func(t, id string) map[string]string { return map[string]string{"type": t, "id": id} }
	var ents []ent
	for i := range p.Groups {
		var parents []map[string]string
		if i > 0 && r.IntN(2) == 0 {
			parents = append(parents, uid("Group", fmt.Sprintf("g%d", r.IntN(i))))
		}
		ents = append(ents, ent{UID: uid("Group", fmt.Sprintf("g%d", i)), Attrs: map[string]any{}, Parents: nonNil(parents)})
	}
	for i := range p.Folders {
		var parents []map[string]string
		if i > 0 && r.IntN(2) == 0 {
			parents = append(parents, uid("Folder", fmt.Sprintf("f%d", r.IntN(i))))
		}
		ents = append(ents, ent{UID: uid("Folder", fmt.Sprintf("f%d", i)), Attrs: map[string]any{}, Parents: nonNil(parents)})
	}
	for i := range p.Users {
		var parents []map[string]string
		if p.Groups > 0 {
			for range 1 + r.IntN(2) {
				parents = append(parents, uid("Group", fmt.Sprintf("g%d", r.IntN(p.Groups))))
			}
		}
		ents = append(ents, ent{UID: uid("User", fmt.Sprintf("u%d", i)),
			Attrs:   map[string]any{"level": r.IntN(10), "name": fmt.Sprintf("user %d", i)},
			Parents: nonNil(dedupe(parents))})
	}
	for i := range p.Docs {
		var parents []map[string]string
		if p.Folders > 0 {
			parents = append(parents, uid("Folder", fmt.Sprintf("f%d", r.IntN(p.Folders))))
		}
		ents = append(ents, ent{UID: uid("Doc", fmt.Sprintf("d%d", i)),
			Attrs: map[string]any{"owner": map[string]any{"__entity": uid("User", fmt.Sprintf("u%d", r.IntN(max(p.Users, 1))))},
				"level": r.IntN(10), "public": r.IntN(4) == 0},
			Parents: nonNil(parents)})
	}
	entJSON, _ := json.MarshalIndent(ents, "", " ")

	var pol strings.Builder
	for i := range p.Policies {
		fmt.Fprintf(&pol, "@id(\"p%d\")\n%s\n", i, policy(r, p, actions))
	}
	return map[string][]byte{
		"schema/gen.cedarschema": []byte(schema),
		"policies/gen.cedar":     []byte(pol.String()),
		"policies/entities.json": entJSON,
	}, actions
}

func nonNil(s []map[string]string) []map[string]string {
	if s == nil {
		return []map[string]string{}
	}
	return s
}

func dedupe(s []map[string]string) []map[string]string {
	seen := map[string]bool{}
	var out []map[string]string
	for _, u := range s {
		if !seen[u["id"]] {
			seen[u["id"]] = true
			out = append(out, u)
		}
	}
	return out
}

func policy(r *rand.Rand, p Params, actions []string) string {
	effect := "permit"
	if r.IntN(5) == 0 {
		effect = "forbid"
	}
	user := func() string { return fmt.Sprintf(`User::"u%d"`, r.IntN(max(p.Users, 1))) }
	group := func() string { return fmt.Sprintf(`Group::"g%d"`, r.IntN(max(p.Groups, 1))) }
	doc := func() string { return fmt.Sprintf(`Doc::"d%d"`, r.IntN(max(p.Docs, 1))) }
	folder := func() string { return fmt.Sprintf(`Folder::"f%d"`, r.IntN(max(p.Folders, 1))) }
	act := func() string { return fmt.Sprintf(`Action::"%s"`, actions[r.IntN(len(actions))]) }

	var ps, rs string
	if r.IntN(100) < p.WildcardPercent {
		ps = []string{"principal", "principal is User"}[r.IntN(2)]
		rs = []string{"resource", "resource is Doc"}[r.IntN(2)]
	} else {
		switch r.IntN(6) {
		case 0, 1:
			ps = "principal == " + user()
		case 2:
			ps = "principal in " + group()
		case 3:
			ps = "principal is User in " + group()
		default:
			ps = []string{"principal", "principal is User"}[r.IntN(2)]
		}
		switch r.IntN(5) {
		case 0, 1:
			rs = "resource == " + doc()
		case 2:
			rs = "resource in " + folder()
		case 3:
			rs = "resource is Doc in " + folder()
		default:
			rs = []string{"resource", "resource is Doc"}[r.IntN(2)]
		}
		if strings.HasPrefix(ps, "principal is User") && !strings.Contains(ps, " in ") &&
			(rs == "resource" || rs == "resource is Doc") {
			ps = "principal == " + user()
		}
		if ps == "principal" && (rs == "resource" || rs == "resource is Doc") {
			rs = "resource == " + doc()
		}
	}
	var as string
	switch r.IntN(10) {
	case 0:
		as = "action"
	case 1:
		as = "action in " + []string{`Action::"doc_actions"`, `Action::"admin_actions"`}[r.IntN(2)]
	case 2:
		as = fmt.Sprintf("action in [%s, %s]", act(), act())
	default:
		as = "action == " + act()
	}
	conds := []string{
		"",
		"when { principal.level >= %d }",
		"when { resource.owner == principal }",
		"when { resource.public }",
		"unless { resource.level > %d }",
		"when { context has hour && context.hour < 18 }",
		// Overflows (an evaluation error) for large levels: errors must match too.
		"when { principal.level * 2305843009213693952 > %d }",
	}
	c := conds[r.IntN(len(conds))]
	if strings.Contains(c, "%d") {
		c = fmt.Sprintf(c, r.IntN(10))
	}
	return fmt.Sprintf("%s(%s, %s, %s) %s;", effect, ps, as, rs, c)
}
