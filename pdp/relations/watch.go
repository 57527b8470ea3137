package relations

import (
	"context"
	"fmt"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// WatchEvent is one message of SpiceDB's change stream: the relationship
// changes of one revision (OpTouch for a write, OpDelete for a removal), a
// schema change, or a checkpoint (no changes up to Revision). Revision is
// the cursor to resume from.
type WatchEvent struct {
	Changes       []Update
	Revision      string
	Checkpoint    bool
	SchemaChanged bool
}

// Watch follows SpiceDB's change stream from the revision of token (from
// the current revision if empty), calling fn for each event, in revision
// order. It returns nil when ctx ends, fn's error if fn fails, and the
// stream's error otherwise; resume with the Revision of the last event.
// Tokens older than the GC window are refused. EnginePostgres needs
// track_commit_timestamp=on, or SpiceDB turns Watch off (codes.Unimplemented).
func (s *Store) Watch(ctx context.Context, from string, fn func(WatchEvent) error) error {
	return s.watch(ctx, from, nil, fn)
}

// watch is Watch with a callback for when the stream is open.
func (s *Store) watch(ctx context.Context, from string, opened func(), fn func(WatchEvent) error) error {
	if s.closed.Load() {
		return ErrClosed
	}
	req := &v1.WatchRequest{OptionalUpdateKinds: []v1.WatchKind{
		v1.WatchKind_WATCH_KIND_INCLUDE_RELATIONSHIP_UPDATES,
		v1.WatchKind_WATCH_KIND_INCLUDE_SCHEMA_UPDATES,
		v1.WatchKind_WATCH_KIND_INCLUDE_CHECKPOINTS,
	}}
	if from != "" {
		req.OptionalStartCursor = &v1.ZedToken{Token: from}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := s.watches.Watch(ctx, req)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("relations: watch: %w", err)
	}
	if opened != nil {
		opened()
	}
	for {
		msg, err := stream.Recv()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("relations: watch: %w", err)
		}
		ev := WatchEvent{
			Revision:      msg.GetChangesThrough().GetToken(),
			Checkpoint:    msg.GetIsCheckpoint(),
			SchemaChanged: msg.GetSchemaUpdated(),
		}
		for _, u := range msg.GetUpdates() {
			op := OpTouch
			if u.GetOperation() == v1.RelationshipUpdate_OPERATION_DELETE {
				op = OpDelete
			}
			ev.Changes = append(ev.Changes, Update{Op: op, Rel: relationshipFromProto(u.GetRelationship())})
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
}

// followChanges keeps the fact cache in step with SpiceDB: a change that is
// not the Store's own (those moved the floor already) starts a new cache
// snapshot and marks the floor behind (see floor.go). While the stream is down the cache
// is not live (every check goes to SpiceDB); the stream resumes from the
// last revision it delivered, so nothing is missed in between.
func (s *Store) followChanges(ctx context.Context, from string) {
	defer close(s.feedDone)
	cursor := from
	backoff := 50 * time.Millisecond
	for {
		opened := func() { s.cache.SetLive(true) }
		err := s.watch(ctx, cursor, opened, func(ev WatchEvent) error {
			if ev.Revision != "" {
				cursor = ev.Revision
			}
			if ev.Checkpoint && len(ev.Changes) == 0 && !ev.SchemaChanged {
				return nil
			}
			if !s.isKnown(ev.Revision) {
				s.behind.Store(true) // the next check writes a barrier
				s.cache.Invalidate()
				if s.cfg.OnChange != nil {
					s.cfg.OnChange()
				}
			}
			backoff = 50 * time.Millisecond
			return nil
		})
		s.cache.SetLive(false)
		if ctx.Err() != nil || s.closed.Load() {
			return
		}
		switch status.Code(err) {
		case codes.Unimplemented:
			s.log.Warn("fact cache off: SpiceDB has no Watch (PostgreSQL needs track_commit_timestamp=on)", "err", err)
			return
		case codes.InvalidArgument, codes.OutOfRange, codes.FailedPrecondition:
			// The cursor is unusable (too old, another datastore): start
			// from now; SetLive(false) already dropped every snapshot.
			s.log.Warn("change stream restarts from the current revision", "err", err)
			cursor = ""
		default:
			s.log.Warn("change stream interrupted; the fact cache passes checks through until it resumes", "err", err, "retry_in", backoff)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}
