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

// ImportOptions shape ImportRelationshipsFrom.
type ImportOptions struct {
	// Batch is the number of relationships per stream message;
	// DefaultImportBatch when <= 0.
	Batch int
	// PerTransaction, when > 0, commits every PerTransaction relationships
	// (each transaction is one bulk-import stream), and a transaction that
	// has run for ImportTransactionTime, whatever its size: SpiceDB ends
	// an import stream that runs longer than its streaming API timeout
	// (30s by default). 0 imports everything in one transaction.
	PerTransaction int
	// Progress, when not nil, is called after each batch with the number
	// of relationships sent so far.
	Progress func(sent int)
}

// ImportTransactionTime is how long one transaction of a chunked import
// (ImportOptions.PerTransaction) may run before it commits: under
// SpiceDB's default streaming API timeout of 30s.
const ImportTransactionTime = 20 * time.Second

// ImportError is the failure of an import. Committed relationships, the
// first of the sequence, were stored by transactions that committed
// before the failure (always 0 for a one-transaction import); none after.
type ImportError struct {
	Committed uint64
	Err       error
}

func (e *ImportError) Error() string {
	if e.Committed == 0 {
		return e.Err.Error()
	}
	return fmt.Sprintf("%v (after %d relationships were committed)", e.Err, e.Committed)
}

func (e *ImportError) Unwrap() error { return e.Err }

// ImportRelationshipsFrom is ImportRelationships from a sequence that may
// fail part way, such as ScanRelationships over a file, in one or (with
// PerTransaction) several transactions. The first error the sequence
// yields aborts the transaction in progress (not one of its relationships
// is stored, not even from batches already sent). Every failure is an
// *ImportError, which says how many relationships earlier transactions
// committed and unwraps to the cause (a *LineError still names its line).
func (s *Store) ImportRelationshipsFrom(ctx context.Context, rels iter.Seq2[Relationship, error], opts ImportOptions) (ImportResult, error) {
	if s.closed.Load() {
		return ImportResult{}, ErrClosed
	}
	batch := opts.Batch
	if batch <= 0 {
		batch = DefaultImportBatch
	}
	imp := &importer{perms: s.perms, batch: batch, progress: opts.Progress}
	defer imp.abort()
	started := time.Now()
	if err := imp.run(ctx, rels, opts.PerTransaction); err != nil {
		imp.abort()
		if imp.committed > 0 {
			// Reads must see what did commit: move the floor past it.
			if _, berr := s.importBarrier(context.WithoutCancel(ctx)); berr != nil {
				s.log.Warn("import failed after committing some relationships, and the barrier after them failed too", "err", berr)
			}
		}
		return ImportResult{}, &ImportError{Committed: imp.committed, Err: err}
	}
	res := ImportResult{Loaded: imp.committed, Elapsed: time.Since(started)}
	b, err := s.importBarrier(ctx)
	if err != nil {
		return ImportResult{}, &ImportError{Committed: imp.committed, Err: fmt.Errorf("relations: import done, but: %w", err)}
	}
	res.Revision = b
	s.log.Info("relationships imported", "loaded", res.Loaded, "took", res.Elapsed.Round(time.Millisecond),
		"per_second", int(res.PerSecond()))
	return res, nil
}

// importBarrier moves the floor past an import, which answers no token.
func (s *Store) importBarrier(ctx context.Context) (string, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	b, err := s.barrier(ctx)
	if err != nil {
		return "", err
	}
	s.setFloor(b)
	return b, nil
}

// importer is one import on its way: the open transaction (a bulk-import
// stream) and the batch being filled.
type importer struct {
	perms    v1.PermissionsServiceClient
	batch    int
	progress func(sent int)

	stream    v1.PermissionsService_ImportBulkRelationshipsClient
	cancel    context.CancelFunc // aborts the open transaction
	txStarted time.Time
	inTx      int // relationships in the open transaction
	buf       []*v1.Relationship
	sent      int
	committed uint64
}

// run sends every relationship of rels, committing a transaction every
// perTransaction (if > 0) relationships or ImportTransactionTime, and
// the last one at the end.
func (imp *importer) run(ctx context.Context, rels iter.Seq2[Relationship, error], perTransaction int) error {
	for r, err := range rels {
		if err != nil {
			return err
		}
		pr, err := relationshipToProto(r)
		if err != nil {
			return fmt.Errorf("relations: import relationship %d (%s): %w", imp.sent+len(imp.buf), r, err)
		}
		if err := imp.add(ctx, pr); err != nil {
			return err
		}
		if perTransaction > 0 && (imp.inTx >= perTransaction || time.Since(imp.txStarted) >= ImportTransactionTime) {
			if err := imp.commit(); err != nil {
				return err
			}
		}
	}
	return imp.commit()
}

// add puts a relationship in the batch, opening a transaction if none is
// open, and sends the batch when it is full.
func (imp *importer) add(ctx context.Context, r *v1.Relationship) error {
	if imp.stream == nil {
		// Cancelling the stream, rather than closing it, aborts the
		// transaction: SpiceDB commits only when the stream ends cleanly.
		sctx, cancel := context.WithCancel(ctx)
		stream, err := imp.perms.ImportBulkRelationships(sctx)
		if err != nil {
			cancel()
			return fmt.Errorf("relations: import: %w", err)
		}
		imp.stream, imp.cancel, imp.txStarted, imp.inTx = stream, cancel, time.Now(), 0
		imp.buf = make([]*v1.Relationship, 0, imp.batch)
	}
	imp.buf = append(imp.buf, r)
	imp.inTx++
	if len(imp.buf) == imp.batch {
		return imp.flush()
	}
	return nil
}

func (imp *importer) flush() error {
	if len(imp.buf) == 0 {
		return nil
	}
	if err := imp.stream.Send(&v1.ImportBulkRelationshipsRequest{Relationships: imp.buf}); err != nil {
		return fmt.Errorf("relations: import: %w", importError(imp.stream, err))
	}
	imp.sent += len(imp.buf)
	imp.buf = make([]*v1.Relationship, 0, imp.batch)
	if imp.progress != nil {
		imp.progress(imp.sent)
	}
	return nil
}

// commit sends what is left and ends the open transaction, if any.
func (imp *importer) commit() error {
	if imp.stream == nil {
		return nil
	}
	if err := imp.flush(); err != nil {
		return err
	}
	resp, err := imp.stream.CloseAndRecv()
	imp.cancel()
	imp.stream = nil
	if err != nil {
		return fmt.Errorf("relations: import: %w", err)
	}
	imp.committed += resp.GetNumLoaded()
	return nil
}

// abort cancels the open transaction, if any.
func (imp *importer) abort() {
	if imp.stream != nil {
		imp.cancel()
		imp.stream = nil
	}
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
