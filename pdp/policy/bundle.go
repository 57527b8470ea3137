package policy

import (
	"sort"
	"strings"
	"time"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
	"github.com/cedar-policy/cedar-go/x/exp/schema/resolved"

	"github.com/ciampdp/pdp/pdp/dormancy"
	"github.com/ciampdp/pdp/pdp/purposes"
	"github.com/ciampdp/pdp/pdp/signals"
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
	purposes  *purposes.Registry
	dormancy  *dormancy.Rules
	signals   *signals.Registry
	names     names
	sources   map[string][]byte // "policies/…" and "schema/…" → content
}

// Sources returns the bundle's files keyed by their path relative to the
// bundle root ("policies/x.cedar", "schema/x.cedarschema"): exactly what
// LoadFiles takes to build the same version again. The map is shared: do
// not modify it.
func (b *Bundle) Sources() map[string][]byte { return b.sources }

// WithCommit returns a copy of b whose version names commit: for a bundle
// rebuilt from an archive, which has no Git checkout to read it from.
func (b *Bundle) WithCommit(commit string) *Bundle {
	c := *b
	c.version.Commit = commit
	return &c
}

// DataSubjectSelf is the @data_subject annotation of an entity type whose
// entities are themselves the data subject (a customer).
const DataSubjectSelf = "self"

// Purposes is the bundle's purposes registry (schema/purposes.yaml), nil
// when it has none (then the engine enforces no purpose or consent).
func (b *Bundle) Purposes() *purposes.Registry { return b.purposes }

// Dormancy is the bundle's dormancy rules (schema/dormancy.yaml), nil when
// it has none (then the engine's dormancy guard does nothing).
func (b *Bundle) Dormancy() *dormancy.Rules { return b.dormancy }

// Signals is the bundle's signals registry (schema/signals.yaml), nil
// when it has none (then the engine applies no risk signal).
func (b *Bundle) Signals() *signals.Registry { return b.signals }

// DataSubject is the @data_subject annotation of an entity type: "self",
// or the relation whose holders (users) are the data subjects of its
// entities ("owner" for an account).
func (b *Bundle) DataSubject(et types.EntityType) (string, bool) {
	v, ok := b.names.subjects[et]
	return v, ok
}

// names are the lookups every decision makes, resolved once at load.
type names struct {
	// types maps an AuthZEN type name to its schema entity type: qualified
	// names as they are, and unqualified lower-case names when they are
	// unique ("user" → "User"); an ambiguous lower-case name maps to "".
	types map[string]types.EntityType
	// actions maps an action id to its UID and context type; an id
	// declared in several namespaces maps to a zero action (ok false).
	actions map[string]actionName
	// objects maps entity types to SpiceDB object types.
	objects map[types.EntityType]string
	// subjects maps entity types to their @data_subject annotation.
	subjects map[types.EntityType]string
}

type actionName struct {
	uid types.EntityUID
	ctx resolved.RecordType
	ok  bool
}

func buildNames(rs *resolved.Schema) names {
	n := names{types: map[string]types.EntityType{}, actions: map[string]actionName{}, objects: map[types.EntityType]string{}, subjects: map[types.EntityType]string{}}
	lower := map[string][]types.EntityType{}
	add := func(et types.EntityType, ann resolved.Annotations) {
		n.types[string(et)] = et
		l := strings.ToLower(unqualified(string(et)))
		lower[l] = append(lower[l], et)
		obj := snake(unqualified(string(et)))
		if v, ok := ann["spicedb"]; ok && v != "" {
			obj = string(v)
		}
		n.objects[et] = obj
		if v, ok := ann["data_subject"]; ok && v != "" {
			n.subjects[et] = string(v)
		}
	}
	for et, e := range rs.Entities {
		add(et, e.Annotations)
	}
	for et, e := range rs.Enums {
		add(et, e.Annotations)
	}
	for l, ets := range lower {
		if _, exact := n.types[l]; exact {
			continue
		}
		if len(ets) == 1 {
			n.types[l] = ets[0]
		} else {
			n.types[l] = ""
		}
	}
	for uid, a := range rs.Actions {
		id := string(uid.ID)
		if _, dup := n.actions[id]; dup {
			n.actions[id] = actionName{}
			continue
		}
		an := actionName{uid: uid, ok: true}
		if a.AppliesTo != nil {
			an.ctx = a.AppliesTo.Context
		}
		n.actions[id] = an
	}
	return n
}

// SpiceDBSchema is the text of the bundle's SpiceDB schema (schema/*.zed,
// joined in file order), "" when the bundle has none. It is part of the
// version: a changed relationship model is a new policy version.
func (b *Bundle) SpiceDBSchema() string { return b.zed }

// ObjectType is the SpiceDB object type of a Cedar entity type: its
// @spicedb("…") annotation, else its unqualified name in snake_case
// (User → user, BankAccount → bank_account).
func (b *Bundle) ObjectType(et types.EntityType) string {
	if obj, ok := b.names.objects[et]; ok {
		return obj
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
	if et, ok := b.names.types[name]; ok {
		return et, et != ""
	}
	et, ok := b.names.types[strings.ToLower(name)]
	return et, ok && et != ""
}

// Shape returns the declared attributes of an entity type.
func (b *Bundle) Shape(et types.EntityType) resolved.RecordType {
	return b.schema.Entities[et].Shape
}

// Action finds the schema action whose id is name (in any namespace; it must
// be unique) and returns its UID and its declared context type.
func (b *Bundle) Action(name string) (types.EntityUID, resolved.RecordType, bool) {
	a := b.names.actions[name]
	return a.uid, a.ctx, a.ok
}

// AppliesTo returns the principal and resource types the schema lets
// action apply to (its appliesTo). An action declared without appliesTo
// applies to none, as in Cedar's request validation. Callers must not
// modify the lists.
func (b *Bundle) AppliesTo(action types.EntityUID) (principals, resources []types.EntityType) {
	if a, ok := b.schema.Actions[action]; ok && a.AppliesTo != nil {
		return a.AppliesTo.Principals, a.AppliesTo.Resources
	}
	return nil, nil
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
