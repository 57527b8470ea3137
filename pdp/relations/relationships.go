package relations

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Relationship is one fact: Subject (or the subject set
// Subject#SubjectRelation) stands in Relation to Resource. It may carry a
// caveat (by name, with the parameter values fixed at write time) and an
// expiration time (the schema must `use expiration` and allow it).
type Relationship struct {
	Resource        Object
	Relation        string
	Subject         Object
	SubjectRelation string
	Caveat          string
	CaveatContext   map[string]any
	Expires         *time.Time
}

// String renders the relationship as resource#relation@subject, with the
// caveat name in brackets.
func (r Relationship) String() string {
	s := r.Resource.String() + "#" + r.Relation + "@" + r.Subject.String()
	if r.SubjectRelation != "" {
		s += "#" + r.SubjectRelation
	}
	if r.Caveat != "" {
		s += "[" + r.Caveat + "]"
	}
	return s
}

// Op is what an Update does.
type Op int

const (
	// OpTouch writes the relationship, replacing it if it exists.
	OpTouch Op = iota + 1
	// OpCreate writes the relationship and fails the whole write if it exists.
	OpCreate
	// OpDelete removes the relationship (nothing if it does not exist).
	OpDelete
)

func (o Op) String() string {
	switch o {
	case OpTouch:
		return "touch"
	case OpCreate:
		return "create"
	case OpDelete:
		return "delete"
	}
	return fmt.Sprintf("Op(%d)", int(o))
}

// Update is one change of a write.
type Update struct {
	Op  Op
	Rel Relationship
}

// Filter selects relationships; empty fields match anything. SpiceDB wants
// at least one of ResourceType, ResourceID, Relation or SubjectType, and a
// SubjectID or SubjectRelation only with a SubjectType.
type Filter struct {
	ResourceType, ResourceID, Relation      string
	SubjectType, SubjectID, SubjectRelation string
}

// ErrOp is returned for an Update without a known Op.
var ErrOp = errors.New("relations: unknown update operation")

// WriteRelationships applies all updates in one transaction and returns its
// token, which becomes the floor: every later read sees the write.
func (s *Store) WriteRelationships(ctx context.Context, updates []Update) (string, error) {
	if s.closed.Load() {
		return "", ErrClosed
	}
	if len(updates) == 0 {
		return s.Floor(), nil
	}
	req := &v1.WriteRelationshipsRequest{Updates: make([]*v1.RelationshipUpdate, len(updates))}
	for i, u := range updates {
		op, ok := opToProto[u.Op]
		if !ok {
			return "", fmt.Errorf("%w: update %d (%s): %v", ErrOp, i, u.Rel, u.Op)
		}
		rel, err := relationshipToProto(u.Rel)
		if err != nil {
			return "", fmt.Errorf("relations: update %d (%s): %w", i, u.Rel, err)
		}
		req.Updates[i] = &v1.RelationshipUpdate{Operation: op, Relationship: rel}
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	ctx, cancel := withTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	resp, err := s.perms.WriteRelationships(ctx, req)
	if err != nil {
		return "", fmt.Errorf("relations: write relationships: %w", err)
	}
	token := resp.GetWrittenAt().GetToken()
	s.setFloor(token)
	return token, nil
}

// DeleteRelationships deletes every relationship the filter matches, in one
// transaction, and returns its token, which becomes the floor.
func (s *Store) DeleteRelationships(ctx context.Context, f Filter) (string, error) {
	if s.closed.Load() {
		return "", ErrClosed
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	ctx, cancel := withTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	resp, err := s.perms.DeleteRelationships(ctx, &v1.DeleteRelationshipsRequest{RelationshipFilter: filterToProto(f)})
	if err != nil {
		return "", fmt.Errorf("relations: delete relationships: %w", err)
	}
	token := resp.GetDeletedAt().GetToken()
	s.setFloor(token)
	return token, nil
}

// ReadRelationships returns every relationship the filter matches, as of a
// snapshot at least as fresh as the floor. Meant for administration and
// tests: it holds the whole answer in memory.
func (s *Store) ReadRelationships(ctx context.Context, f Filter) ([]Relationship, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	ctx, cancel := withTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	stream, err := s.perms.ReadRelationships(ctx, &v1.ReadRelationshipsRequest{
		Consistency:        consistencyToProto(Consistency{AtLeast: s.Floor()}),
		RelationshipFilter: filterToProto(f),
	})
	if err != nil {
		return nil, fmt.Errorf("relations: read relationships: %w", err)
	}
	var out []Relationship
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("relations: read relationships: %w", err)
		}
		out = append(out, relationshipFromProto(msg.GetRelationship()))
	}
}

// ImportResult reports a bulk import.
type ImportResult struct {
	Loaded   uint64        // relationships SpiceDB stored
	Elapsed  time.Duration // from the first batch to SpiceDB's answer
	Revision string        // the floor after the import
}

// PerSecond is the import rate.
func (r ImportResult) PerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Loaded) / r.Elapsed.Seconds()
}

// ImportRelationships loads relationships through SpiceDB's streaming bulk
// import, batch at a time (DefaultImportBatch when batch <= 0), calling
// progress (if not nil) with the number sent so far after each batch. The
// import is one transaction: it fails as a whole, in particular if a
// relationship already exists (use WriteRelationships with OpTouch to
// overwrite). It is not bounded by CallTimeout, only by ctx, but SpiceDB
// ends an import stream that runs longer than its streaming API timeout
// (30s unless configured): import more with ImportRelationshipsFrom and
// ImportOptions.PerTransaction.
func (s *Store) ImportRelationships(ctx context.Context, rels iter.Seq[Relationship], batch int, progress func(sent int)) (ImportResult, error) {
	return s.ImportRelationshipsFrom(ctx, func(yield func(Relationship, error) bool) {
		for r := range rels {
			if !yield(r, nil) {
				return
			}
		}
	}, ImportOptions{Batch: batch, Progress: progress})
}

// importError returns the server's reason when Send fails with io.EOF (the
// server ended the stream).
func importError(stream interface {
	CloseAndRecv() (*v1.ImportBulkRelationshipsResponse, error)
}, sendErr error) error {
	if errors.Is(sendErr, io.EOF) {
		if _, err := stream.CloseAndRecv(); err != nil {
			return err
		}
	}
	return sendErr
}

var opToProto = map[Op]v1.RelationshipUpdate_Operation{
	OpTouch:  v1.RelationshipUpdate_OPERATION_TOUCH,
	OpCreate: v1.RelationshipUpdate_OPERATION_CREATE,
	OpDelete: v1.RelationshipUpdate_OPERATION_DELETE,
}

func relationshipToProto(r Relationship) (*v1.Relationship, error) {
	rel := &v1.Relationship{
		Resource: &v1.ObjectReference{ObjectType: r.Resource.Type, ObjectId: r.Resource.ID},
		Relation: r.Relation,
		Subject: &v1.SubjectReference{
			Object:           &v1.ObjectReference{ObjectType: r.Subject.Type, ObjectId: r.Subject.ID},
			OptionalRelation: r.SubjectRelation,
		},
	}
	if r.Caveat != "" {
		rel.OptionalCaveat = &v1.ContextualizedCaveat{CaveatName: r.Caveat}
		if len(r.CaveatContext) > 0 {
			ctx, err := toStruct(r.CaveatContext)
			if err != nil {
				return nil, err
			}
			rel.OptionalCaveat.Context = ctx
		}
	} else if len(r.CaveatContext) > 0 {
		return nil, errors.New("caveat context without a caveat name")
	}
	if r.Expires != nil {
		rel.OptionalExpiresAt = timestamppb.New(*r.Expires)
	}
	return rel, nil
}

func relationshipFromProto(p *v1.Relationship) Relationship {
	r := Relationship{
		Resource:        Object{Type: p.GetResource().GetObjectType(), ID: p.GetResource().GetObjectId()},
		Relation:        p.GetRelation(),
		Subject:         Object{Type: p.GetSubject().GetObject().GetObjectType(), ID: p.GetSubject().GetObject().GetObjectId()},
		SubjectRelation: p.GetSubject().GetOptionalRelation(),
		Caveat:          p.GetOptionalCaveat().GetCaveatName(),
	}
	if c := p.GetOptionalCaveat().GetContext(); c != nil && len(c.GetFields()) > 0 {
		r.CaveatContext = c.AsMap()
	}
	if p.GetOptionalExpiresAt() != nil {
		t := p.GetOptionalExpiresAt().AsTime()
		r.Expires = &t
	}
	return r
}

func filterToProto(f Filter) *v1.RelationshipFilter {
	rf := &v1.RelationshipFilter{
		ResourceType:       f.ResourceType,
		OptionalResourceId: f.ResourceID,
		OptionalRelation:   f.Relation,
	}
	if f.SubjectType != "" || f.SubjectID != "" || f.SubjectRelation != "" {
		rf.OptionalSubjectFilter = &v1.SubjectFilter{SubjectType: f.SubjectType, OptionalSubjectId: f.SubjectID}
		if f.SubjectRelation != "" {
			rf.OptionalSubjectFilter.OptionalRelation = &v1.SubjectFilter_RelationFilter{Relation: f.SubjectRelation}
		}
	}
	return rf
}
