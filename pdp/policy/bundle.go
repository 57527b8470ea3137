package policy

import (
	"sort"
	"strings"
	"time"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
	"github.com/cedar-policy/cedar-go/x/exp/schema/resolved"
)

// Policy is one validated Cedar policy with where it came from and the
// engine annotations it carries.
type Policy struct {
	ID    cedar.PolicyID
	File  string
	Line  int
	Cedar *cedar.Policy
	// Reason is the @reason annotation: the reason code a deny by this
	// (forbid) policy reports.
	Reason string
	// Obligation is the @obligation annotation: what the caller must do
	// when this policy determines the decision (e.g. step_up_authentication).
	Obligation string
}

// Bundle is one immutable, validated policy version: policies, schema and
// trusted entities. It is safe for concurrent use; a new version is a new
// Bundle.
type Bundle struct {
	dirs      Dirs
	version   Version
	loadedAt  time.Time
	files     []string
	schema    *resolved.Schema
	policies  []*Policy
	byID      map[cedar.PolicyID]*Policy
	set       *cedar.PolicySet
	entities  types.EntityMap
	ancestors map[types.EntityUID][]types.EntityUID
	index     *index
	zed       string
}

// SpiceDBSchema is the text of the bundle's SpiceDB schema (schema/*.zed,
// joined in file order), "" when the bundle has none. It is part of the
// version: a changed relationship model is a new policy version.
func (b *Bundle) SpiceDBSchema() string { return b.zed }

// ObjectType is the SpiceDB object type of a Cedar entity type: its
// @spicedb("…") annotation, else its unqualified name in snake_case
// (User → user, BankAccount → bank_account).
func (b *Bundle) ObjectType(et types.EntityType) string {
	if e, ok := b.schema.Entities[et]; ok {
		if v, ok := e.Annotations["spicedb"]; ok && v != "" {
			return string(v)
		}
	}
	return snake(unqualified(string(et)))
}

func snake(s string) string {
	var out strings.Builder
	for i, r := range s {
		if r >= 'A' && r <= 'Z' {
			if i > 0 {
				out.WriteByte('_')
			}
			r += 'a' - 'A'
		}
		out.WriteRune(r)
	}
	return out.String()
}

// Current makes a Bundle its own source of bundles (a fixed version), for
// tests, `pdp test` and replay.
func (b *Bundle) Current() *Bundle { return b }

// Version is the bundle's content hash and Git commit.
func (b *Bundle) Version() Version { return b.version }

// LoadedAt is when the bundle was loaded.
func (b *Bundle) LoadedAt() time.Time { return b.loadedAt }

// Dirs are the folders the bundle was read from.
func (b *Bundle) Dirs() Dirs { return b.dirs }

// Files lists the files that make up the version, as "policies/<path>" or
// "schema/<path>".
func (b *Bundle) Files() []string { return b.files }

// Schema is the resolved Cedar schema.
func (b *Bundle) Schema() *resolved.Schema { return b.schema }

// Policies lists the policies in file order.
func (b *Bundle) Policies() []*Policy { return b.policies }

// Policy looks a policy up by id.
func (b *Bundle) Policy(id cedar.PolicyID) (*Policy, bool) {
	p, ok := b.byID[id]
	return p, ok
}

// PolicySet is every policy as one set: what an unsliced evaluation uses.
// Callers must not modify it.
func (b *Bundle) PolicySet() *cedar.PolicySet { return b.set }

// Entities are the trusted entities (from the entity files) plus the action
// entities declared by the schema. Callers must not modify them.
func (b *Bundle) Entities() types.EntityMap { return b.entities }

// Ancestors returns the transitive parents of a known entity (nil when it
// has none or is unknown).
func (b *Bundle) Ancestors(uid types.EntityUID) []types.EntityUID { return b.ancestors[uid] }

// EntityType maps an AuthZEN type name to a schema entity type: an exact
// match of the (qualified) name first, else the one type whose unqualified
// name matches case-insensitively ("user" → "User").
func (b *Bundle) EntityType(name string) (types.EntityType, bool) {
	if name == "" {
		return "", false
	}
	if _, ok := b.schema.Entities[types.EntityType(name)]; ok {
		return types.EntityType(name), true
	}
	if _, ok := b.schema.Enums[types.EntityType(name)]; ok {
		return types.EntityType(name), true
	}
	var found types.EntityType
	n := 0
	for et := range b.schema.Entities {
		if strings.EqualFold(unqualified(string(et)), name) {
			found = et
			n++
		}
	}
	for et := range b.schema.Enums {
		if strings.EqualFold(unqualified(string(et)), name) {
			found = et
			n++
		}
	}
	return found, n == 1
}

// Shape returns the declared attributes of an entity type.
func (b *Bundle) Shape(et types.EntityType) resolved.RecordType {
	return b.schema.Entities[et].Shape
}

// Action finds the schema action whose id is name (in any namespace; it must
// be unique) and returns its UID and its declared context type.
func (b *Bundle) Action(name string) (types.EntityUID, resolved.RecordType, bool) {
	var uid types.EntityUID
	var ctx resolved.RecordType
	n := 0
	for u, a := range b.schema.Actions {
		if string(u.ID) == name {
			uid = u
			if a.AppliesTo != nil {
				ctx = a.AppliesTo.Context
			}
			n++
		}
	}
	return uid, ctx, n == 1
}

// ActionNames lists the declared action ids, sorted.
func (b *Bundle) ActionNames() []string {
	out := make([]string, 0, len(b.schema.Actions))
	for u := range b.schema.Actions {
		out = append(out, string(u.ID))
	}
	sort.Strings(out)
	return out
}

func unqualified(s string) string {
	if i := strings.LastIndex(s, "::"); i >= 0 {
		return s[i+2:]
	}
	return s
}
