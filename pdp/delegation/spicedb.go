package delegation

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ciampdp/pdp/pdp/relations"
)

// SpiceDB names of the convention (see the package documentation).
const (
	DelegationType       = "delegation"
	RelationPrincipal    = "principal"
	RelationAgent        = "agent"
	RelationParent       = "parent"
	DelegatePrefix       = "delegate_"
	DelegateAny          = "any"
	CaveatWindow         = "delegation_window"
	CaveatAmountLimit    = "amount_limit"
	CaveatValidFromKey   = "valid_from"
	CaveatValidUntilKey  = "valid_until"
	CaveatMaxAmountKey   = "max_amount"
	CaveatCheckNowKey    = "now"
	CaveatCheckAmountKey = "amount"
)

// RelationshipWriter is what the projector needs of a relationship store
// (*relations.Store has it).
type RelationshipWriter interface {
	WriteRelationships(ctx context.Context, updates []relations.Update) (string, error)
	DeleteRelationships(ctx context.Context, f relations.Filter) (string, error)
}

var _ RelationshipWriter = (*relations.Store)(nil)

// SchemaReader is implemented by a RelationshipWriter that can tell its
// schema (*relations.Store can). The projector then attaches the
// amount_limit caveat only to relations whose schema takes it.
type SchemaReader interface {
	ReadSchema(ctx context.Context) (string, error)
}

var _ SchemaReader = (*relations.Store)(nil)

// SpiceDBProjector writes delegations into SpiceDB following the package's
// convention.
type SpiceDBProjector struct {
	w     RelationshipWriter
	known func() map[string]map[string]bool
	now   func() time.Time

	mu         sync.Mutex
	schemaText string
	caveats    map[string]map[string]map[string]bool
}

var _ Projector = (*SpiceDBProjector)(nil)

// NewSpiceDBProjector returns a projector writing through w. known returns,
// per SpiceDB definition, the relation names the current schema declares
// (relationships on others are skipped); nil means all. now is the clock
// (nil: time.Now).
func NewSpiceDBProjector(w RelationshipWriter, known func() map[string]map[string]bool, now func() time.Time) *SpiceDBProjector {
	if now == nil {
		now = time.Now
	}
	return &SpiceDBProjector{w: w, known: known, now: now}
}

// KnownFromSchema adapts relations.ParseSchemaPermissions to the known
// argument of NewSpiceDBProjector: relations only, not permissions.
func KnownFromSchema(names map[string]map[string]relations.NameKind) map[string]map[string]bool {
	out := make(map[string]map[string]bool, len(names))
	for def, rels := range names {
		m := make(map[string]bool, len(rels))
		for name, kind := range rels {
			if kind == relations.KindRelation {
				m[name] = true
			}
		}
		out[def] = m
	}
	return out
}

// inForce says whether d's relationships belong in SpiceDB: stored active
// and its window not over. A delegation whose window has not begun is
// written too: the delegation_window caveat holds it back until valid_from,
// and nothing would write it when the window opens.
func inForce(d Delegation, now time.Time) bool {
	st := d.Effective(now)
	return st == StatusActive || st == StatusNotYetValid
}

// Project writes d's relationships (OpTouch, one transaction) when it is in
// force, and deletes every relationship of the delegation otherwise. It
// returns the token of the last write, "" when there was nothing to do.
func (p *SpiceDBProjector) Project(ctx context.Context, d Delegation) (string, error) {
	known := p.knownNames()
	if known != nil && known[DelegationType] == nil {
		return "", nil // the schema has no delegations
	}
	if !inForce(d, p.now()) {
		return p.remove(ctx, d.ID)
	}
	var caveats map[string]map[string]map[string]bool
	if d.Constraints.MaxAmount != nil {
		var err error
		if caveats, err = p.relationCaveats(ctx); err != nil {
			return "", err
		}
	}
	rels := relationships(d, known, caveats)
	updates := make([]relations.Update, len(rels))
	for i, r := range rels {
		updates[i] = relations.Update{Op: relations.OpTouch, Rel: r}
	}
	token, err := p.w.WriteRelationships(ctx, updates)
	if err != nil {
		return "", fmt.Errorf("write relationships: %w", err)
	}
	return token, nil
}

// remove deletes the relationships on delegation:<id> and those whose
// subject is delegation:<id>#agent.
func (p *SpiceDBProjector) remove(ctx context.Context, id string) (string, error) {
	if _, err := p.w.DeleteRelationships(ctx, relations.Filter{ResourceType: DelegationType, ResourceID: id}); err != nil {
		return "", fmt.Errorf("delete relationships: %w", err)
	}
	token, err := p.w.DeleteRelationships(ctx, relations.Filter{
		SubjectType: DelegationType, SubjectID: id, SubjectRelation: RelationAgent,
	})
	if err != nil {
		return "", fmt.Errorf("delete delegate relationships: %w", err)
	}
	return token, nil
}

func (p *SpiceDBProjector) knownNames() map[string]map[string]bool {
	if p.known == nil {
		return nil
	}
	k := p.known()
	if k == nil {
		return map[string]map[string]bool{}
	}
	return k
}

// relationCaveats reads the schema, when the writer can, and returns per
// definition and relation the caveats its subject types may carry (nil when
// the schema cannot be read: the convention applies unchanged). The
// compiled form is kept until the schema text changes.
func (p *SpiceDBProjector) relationCaveats(ctx context.Context) (map[string]map[string]map[string]bool, error) {
	sr, ok := p.w.(SchemaReader)
	if !ok {
		return nil, nil
	}
	text, err := sr.ReadSchema(ctx)
	if errors.Is(err, relations.ErrNoSchema) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read schema: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if text == p.schemaText && p.caveats != nil {
		return p.caveats, nil
	}
	c, err := relations.RelationCaveats(text)
	if err != nil {
		return nil, err
	}
	p.schemaText, p.caveats = text, c
	return c, nil
}

// Relationships returns the relationships of d by the package's convention,
// whatever its status, leaving out those on relations known does not
// declare (known nil: keep all).
func Relationships(d Delegation, known map[string]map[string]bool) []relations.Relationship {
	return relationships(d, known, nil)
}

// relationships is Relationships knowing, from caveats (nil: unknown), which
// relations take the amount_limit caveat: a delegate_<action> relation whose
// schema allows only the plain subject delegation#agent gets it without the
// caveat (the amount limit of such an action is Resolve's to enforce).
func relationships(d Delegation, known map[string]map[string]bool, caveats map[string]map[string]map[string]bool) []relations.Relationship {
	has := func(typ, rel string) bool { return known == nil || known[typ][rel] }
	limited := func(typ, rel string) bool {
		if caveats == nil {
			return true
		}
		allowed := caveats[typ][rel]
		return allowed[CaveatAmountLimit] || !allowed[""]
	}
	self := relations.Object{Type: DelegationType, ID: d.ID}
	var out []relations.Relationship
	if has(DelegationType, RelationPrincipal) {
		out = append(out, relations.Relationship{Resource: self, Relation: RelationPrincipal, Subject: obj(d.Principal)})
	}
	if has(DelegationType, RelationAgent) {
		out = append(out, relations.Relationship{
			Resource: self, Relation: RelationAgent, Subject: obj(d.Agent), Caveat: CaveatWindow,
			CaveatContext: map[string]any{
				// The PDP passes the caveat's now cut to the second (so
				// that checks within a second share cached answers): the
				// window opens at the start of valid_from's second, else a
				// delegation accepted at 12:00:00.4 would be refused until
				// 12:00:01. The records hold the exact time, and every
				// decision checks them too.
				CaveatValidFromKey:  d.ValidFrom.UTC().Truncate(time.Second).Format(time.RFC3339Nano),
				CaveatValidUntilKey: d.ValidUntil.UTC().Format(time.RFC3339Nano),
			},
		})
	}
	if d.Parent != "" && has(DelegationType, RelationParent) {
		out = append(out, relations.Relationship{Resource: self, Relation: RelationParent,
			Subject: relations.Object{Type: DelegationType, ID: d.Parent}})
	}
	targets := d.Resources
	if len(targets) == 0 {
		targets = []Ref{d.Principal}
	}
	for _, a := range d.Scope {
		rel := DelegatePrefix + a
		if a == AnyAction {
			rel = DelegatePrefix + DelegateAny
		}
		for _, t := range targets {
			if !has(t.Type, rel) {
				continue
			}
			r := relations.Relationship{Resource: obj(t), Relation: rel, Subject: self, SubjectRelation: RelationAgent}
			if m := d.Constraints.MaxAmount; m != nil && limited(t.Type, rel) {
				r.Caveat, r.CaveatContext = CaveatAmountLimit, map[string]any{CaveatMaxAmountKey: *m}
			}
			out = append(out, r)
		}
	}
	return out
}

func obj(r Ref) relations.Object { return relations.Object{Type: r.Type, ID: r.ID} }
