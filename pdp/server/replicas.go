package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"os"
	"strconv"

	"github.com/ciampdp/pdp/pdp/changefeed"
	"github.com/ciampdp/pdp/pdp/changefeed/pgfeed"
	"github.com/ciampdp/pdp/pdp/relations"
)

// publisher is where the changes of this replica go: the local change
// feed (one process), or the feed shared by the replicas on PostgreSQL.
type publisher interface {
	Publish(ctx context.Context, reason string) (uint64, error)
}

var (
	_ publisher = (*changefeed.Changes)(nil)
	_ publisher = (*pgfeed.Feed)(nil)
)

// SharedFeedURL is the database of the change feed shared by replicas:
// that of the first store on PostgreSQL among delegations, consent, the
// trail and the relationship store; "" when none is (one process: the
// change feed is the process's own).
func SharedFeedURL(cfg Config) string {
	switch {
	case cfg.Delegations.Engine == DelegationsPostgres:
		return cfg.Delegations.PostgresURL
	case cfg.Consent.Engine == ConsentPostgres:
		return cfg.Consent.PostgresURL
	case cfg.Trail.Store == TrailPostgres:
		return cfg.Trail.PostgresURL
	case cfg.Relations.Engine == relations.EnginePostgres:
		return cfg.Relations.PostgresURL
	}
	return ""
}

// openPublisher returns the local feed when no store is on PostgreSQL,
// else joins the shared feed: this replica registers, follows every
// replica's changes into changes, and grants its sidecars leases only
// within its own.
func (s *Server) openPublisher(ctx context.Context, changes *changefeed.Changes, log *slog.Logger) (publisher, error) {
	url := SharedFeedURL(s.cfg)
	if url == "" {
		return changes, nil
	}
	feed, err := pgfeed.Open(ctx, url, changes, pgfeed.Options{Replica: replicaID(), Logger: log})
	if err != nil {
		return nil, err
	}
	s.push(feed.Close)
	log.Info("change feed shared with the other replicas on PostgreSQL", "replica", feed.ID(),
		"replica_lease", pgfeed.ReplicaLease(changes.Lease()))
	return feed, nil
}

// replicaID names this process among the replicas: host, pid and a random
// part (a restarted replica is a new one).
func replicaID() string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return host + "-" + strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(b)
}
