package relations

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	lru "github.com/hashicorp/golang-lru/v2"
	"google.golang.org/grpc"
)

// ErrClosed is returned by every method of a closed Store.
var ErrClosed = errors.New("relations: store is closed")

// Store reads and writes relationship facts in SpiceDB. Its consistency
// rules (the floor every read is at least as fresh as) are in floor.go.
type Store struct {
	cfg     Config
	log     *slog.Logger
	conn    *grpc.ClientConn
	emb     *embeddedServer // nil for EngineRemote
	perms   v1.PermissionsServiceClient
	schema  v1.SchemaServiceClient
	watches v1.WatchServiceClient
	raw     *spiceChecker
	checker Checker    // raw, or the cache in front of it
	cache   *FactCache // nil without a cache

	writeMu sync.Mutex // serialises floor moves (writes, barriers)
	floorMu sync.RWMutex
	floor   string
	known   *lru.Cache[string, struct{}] // tokens no fresher than the floor
	behind  atomic.Bool                  // the change feed saw a change newer than the floor

	stopFeed  context.CancelFunc
	feedDone  chan struct{}
	closed    atomic.Bool
	closeOnce sync.Once
}

// Open connects to (or, for an embedded engine, starts) SpiceDB and checks
// that it answers. logger may be nil.
func Open(ctx context.Context, cfg Config, logger *slog.Logger) (*Store, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("relations: config: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	started := time.Now()
	s := &Store{cfg: cfg, log: logger}
	var err error
	if cfg.embedded() {
		if cfg.PresharedKey == "" {
			cfg.PresharedKey = randomKey()
		}
		s.emb, s.conn, err = startEmbedded(ctx, cfg, logger)
	} else {
		s.conn, err = dialRemote(cfg)
	}
	if err != nil {
		return nil, err
	}
	s.perms = v1.NewPermissionsServiceClient(s.conn)
	s.schema = v1.NewSchemaServiceClient(s.conn)
	s.watches = v1.NewWatchServiceClient(s.conn)
	s.raw = &spiceChecker{perms: s.perms, timeout: cfg.CallTimeout}
	s.checker = s.raw
	s.known, _ = lru.New[string, struct{}](4096)

	head, err := s.raw.head(ctx)
	if err != nil {
		s.shutdown()
		return nil, err
	}
	s.floor = head
	s.known.Add(head, struct{}{})

	if cfg.CacheSize > 0 {
		s.cache, err = NewFactCache(s.raw, cfg.CacheSize, cfg.CacheMaxAge)
		if err != nil {
			s.shutdown()
			return nil, err
		}
		s.cache.Advance(head)
		s.checker = s.cache
		feedCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
		s.stopFeed, s.feedDone = stop, make(chan struct{})
		go s.followChanges(feedCtx, head)
	}
	logger.Info("relations store open", "engine", cfg.Engine, "cache", cfg.CacheSize > 0,
		"took", time.Since(started).Round(time.Millisecond))
	return s, nil
}

// Close stops the change feed, closes the connection and, for an embedded
// engine, stops SpiceDB and closes its datastore.
func (s *Store) Close() error {
	s.closed.Store(true)
	s.shutdown()
	return nil
}

func (s *Store) shutdown() {
	s.closeOnce.Do(func() {
		if s.stopFeed != nil {
			s.stopFeed()
			<-s.feedDone
		}
		if s.conn != nil {
			_ = s.conn.Close()
		}
		if s.emb != nil {
			s.emb.stop()
		}
	})
}

// Cache returns the fact cache, or nil when it is off. It is a
// prometheus.Collector.
func (s *Store) Cache() *FactCache { return s.cache }

// CheckBulk answers all checks in one round trip (or none, from the cache),
// from facts at least as fresh as the floor. Any failure is an error, never
// a partial or guessed answer.
func (s *Store) CheckBulk(ctx context.Context, checks []Check) (Results, error) {
	if s.closed.Load() {
		return Results{}, ErrClosed
	}
	if len(checks) == 0 {
		return Results{Revision: s.Floor()}, nil
	}
	s.catchUp(ctx)
	return s.checker.CheckBulkAt(ctx, checks, Consistency{AtLeast: s.Floor()})
}

// CheckBulkAtLeast is CheckBulk with facts at least as fresh as token too
// (see Observe). An empty token adds nothing.
func (s *Store) CheckBulkAtLeast(ctx context.Context, checks []Check, token string) (Results, error) {
	if err := s.Observe(ctx, token); err != nil {
		return Results{}, err
	}
	return s.CheckBulk(ctx, checks)
}

// CheckPermission is a single check through SpiceDB's CheckPermission call,
// bypassing the cache; for comparison and diagnostics.
func (s *Store) CheckPermission(ctx context.Context, c Check) (Result, string, error) {
	if s.closed.Load() {
		return Result{}, "", ErrClosed
	}
	item, err := checkToProto(c)
	if err != nil {
		return Result{}, "", fmt.Errorf("relations: check (%s): %w", c, err)
	}
	ctx, cancel := withTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	resp, err := s.perms.CheckPermission(ctx, &v1.CheckPermissionRequest{
		Consistency: consistencyToProto(Consistency{AtLeast: s.Floor()}),
		Resource:    item.Resource, Permission: item.Permission, Subject: item.Subject, Context: item.Context,
	})
	if err != nil {
		return Result{}, "", fmt.Errorf("relations: check: %w", err)
	}
	r := Result{Check: c}
	switch resp.GetPermissionship() {
	case v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION:
		r.Has = true
	case v1.CheckPermissionResponse_PERMISSIONSHIP_NO_PERMISSION:
	case v1.CheckPermissionResponse_PERMISSIONSHIP_CONDITIONAL_PERMISSION:
		r.Conditional = true
		r.MissingContext = missingContext(resp.GetPartialCaveatInfo())
	default:
		return Result{}, "", fmt.Errorf("%w: (%s): no answer (%v)", ErrCheckItem, c, resp.GetPermissionship())
	}
	return r, resp.GetCheckedAt().GetToken(), nil
}
