package server

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/policy"
	"github.com/ciampdp/pdp/pdp/relations"
)

// openRelations opens the configured relationship store. The embedded
// memory store (the default) starts only when the bundle has a SpiceDB
// schema: a bundle without relationship facts needs no SpiceDB.
// onChange is told of the changes of others (relations.Config.OnChange).
func openRelations(ctx context.Context, cfg RelationsConfig, b *policy.Bundle, onChange func(), log *slog.Logger) (*relations.Store, error) {
	if cfg.Engine == EngineNone {
		log.Info("relationship store off (relations.engine: none)")
		return nil, nil
	}
	if cfg.Engine == relations.EngineMemory && strings.TrimSpace(b.SpiceDBSchema()) == "" {
		log.Info("relationship store not started: the bundle has no SpiceDB schema (schema/*.zed)")
		return nil, nil
	}
	rc := cfg.Store()
	rc.OnChange = onChange
	store, err := relations.Open(ctx, rc, log)
	if err != nil {
		return nil, fmt.Errorf("open the relationship store (%s): %w", cfg.Engine, err)
	}
	log.Info("relationship store open", "engine", cfg.Engine)
	return store, nil
}

// zedWriter writes the active bundle's SpiceDB schema to the store at
// start and whenever a new policy version brings a changed one.
type zedWriter struct {
	mu      sync.Mutex
	store   *relations.Store
	bundles pdp.BundleSource
	log     *slog.Logger
	written string
}

func (w *zedWriter) set(s *relations.Store, b pdp.BundleSource, log *slog.Logger) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.store, w.bundles, w.log = s, b, log
}

func (w *zedWriter) sync(ctx context.Context) {
	w.mu.Lock()
	store, bundles := w.store, w.bundles
	w.mu.Unlock()
	if store == nil || bundles == nil {
		return
	}
	if b := bundles.Current(); b != nil {
		if err := w.write(ctx, b); err != nil {
			// Checks against a schema SpiceDB does not have fail, and fail
			// closed; the error says why.
			w.log.Error("writing the SpiceDB schema failed; relationship facts of this version may be unavailable", "err", err)
		}
	}
}

// write writes b's SpiceDB schema unless it is the one written last. It is
// also the reloader's Prepare step, so a version whose SpiceDB schema
// SpiceDB refuses (it would orphan stored relationships, say) is rejected
// before it serves. Before the store is open it does nothing.
func (w *zedWriter) write(ctx context.Context, b *policy.Bundle) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.store == nil {
		return nil
	}
	zed := b.SpiceDBSchema()
	if strings.TrimSpace(zed) == "" || zed == w.written {
		return nil
	}
	if _, err := w.store.WriteSchema(ctx, zed); err != nil {
		return fmt.Errorf("SpiceDB refused the schema of schema/*.zed: %w", err)
	}
	w.written = zed
	w.log.Info("SpiceDB schema written", "policy_version", b.Version().Hash)
	return nil
}

// bootstrapRelations writes the relationships of a seed file (see
// relations.ReadRelationshipsText), in batches.
func bootstrapRelations(ctx context.Context, store *relations.Store, path string, log *slog.Logger) error {
	if path == "" {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("relations.bootstrap: %w", err)
	}
	defer f.Close()
	rels, err := relations.ReadRelationshipsText(f)
	if err != nil {
		return fmt.Errorf("relations.bootstrap %s: %w", path, err)
	}
	const batch = 500
	for i := 0; i < len(rels); i += batch {
		ups := make([]relations.Update, 0, batch)
		for _, r := range rels[i:min(i+batch, len(rels))] {
			ups = append(ups, relations.Update{Op: relations.OpTouch, Rel: r})
		}
		if _, err := store.WriteRelationships(ctx, ups); err != nil {
			return fmt.Errorf("relations.bootstrap %s: %w", path, err)
		}
	}
	log.Info("relationships bootstrapped", "file", path, "relationships", len(rels))
	return nil
}
