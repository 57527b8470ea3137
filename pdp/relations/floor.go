package relations

import (
	"context"
	"fmt"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
)

// The floor is the ZedToken every read of the Store is at least as fresh as
// (SpiceDB's at_least_as_fresh; never minimize_latency, which may be seconds
// stale). ZedTokens are opaque: this package never decodes or compares them.
// The rules that keep the floor at least as fresh as everything it must be:
//
//   - It starts at the newest revision when the Store opens.
//   - Every write through the Store (relationships, deletes, schema) moves it
//     to the write's token. Writes through one Store are serialised, so each
//     token is newer than the one before: the floor is the last one.
//   - A token from elsewhere (another replica's revoke, a client's "at least
//     as fresh as"), given to Observe or CheckBulkAtLeast, cannot be ordered
//     against the floor without decoding it. So the Store writes a barrier:
//     an empty transaction, whose revision is newer than every transaction
//     committed before it began, so newer than both; its token becomes the
//     floor. A token already covered costs nothing.
//   - A bulk import answers no token; a barrier after it does.
//   - With the fact cache on, the Store follows SpiceDB's Watch stream. A
//     change that is not the Store's own marks the floor behind; the next
//     check first writes a barrier, so that changes by other replicas are
//     seen as soon as the stream delivers them (and not only once SpiceDB's
//     quantized revisions or the cache's maximum age catch up).
//
// SpiceDB's fully_consistent mode is no substitute for a barrier: its head
// revision reads are single-flighted, so a read may share a head revision
// that was taken just before a write the caller has already seen committed
// (measured on PostgreSQL under concurrent writes).

// Floor returns the token every read is at least as fresh as.
func (s *Store) Floor() string {
	s.floorMu.RLock()
	defer s.floorMu.RUnlock()
	return s.floor
}

// setFloor makes token the floor and remembers the tokens in also as no
// fresher. The caller holds writeMu and token is at least as fresh as the
// floor and every token in also.
func (s *Store) setFloor(token string, also ...string) {
	s.floorMu.Lock()
	defer s.floorMu.Unlock()
	s.floor = token
	s.known.Add(token, struct{}{})
	for _, t := range also {
		s.known.Add(t, struct{}{})
	}
	if s.cache != nil {
		s.cache.Advance(token) // under floorMu: the cache follows in order
	}
}

// isKnown reports whether token is known to be no fresher than the floor.
func (s *Store) isKnown(token string) bool {
	return s.known.Contains(token)
}

// barrier writes an empty transaction and returns its token, which is at
// least as fresh as every write committed before the call.
func (s *Store) barrier(ctx context.Context) (string, error) {
	ctx, cancel := withTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	resp, err := s.perms.WriteRelationships(ctx, &v1.WriteRelationshipsRequest{})
	if err != nil {
		return "", fmt.Errorf("relations: revision barrier: %w", err)
	}
	return resp.GetWrittenAt().GetToken(), nil
}

// Observe makes every later read at least as fresh as token, a ZedToken
// from elsewhere: a write on another replica, or a client's "at least as
// fresh as". A token already covered costs nothing; a new one costs one
// barrier (an empty write) and starts a new cache snapshot.
func (s *Store) Observe(ctx context.Context, token string) error {
	if token == "" || s.isKnown(token) {
		return nil
	}
	if s.closed.Load() {
		return ErrClosed
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if s.isKnown(token) {
		return nil
	}
	b, err := s.barrier(ctx)
	if err != nil {
		return fmt.Errorf("relations: observe token: %w", err)
	}
	s.setFloor(b, token)
	return nil
}

// catchUp writes a barrier when the change feed has seen changes newer than
// the floor. It is best effort: if the barrier fails, the check goes on at
// the current floor (which still satisfies every token the Store was given)
// and the next check tries again.
func (s *Store) catchUp(ctx context.Context) {
	if !s.behind.Load() {
		return
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if !s.behind.Swap(false) { // cleared before the barrier: a change seen during it sets it again
		return
	}
	b, err := s.barrier(ctx)
	if err != nil {
		s.behind.Store(true)
		s.log.Warn("could not catch up with changes seen on the Watch stream", "err", err)
		return
	}
	s.setFloor(b)
}
