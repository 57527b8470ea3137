package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/ciampdp/pdp/pdp/trail"
)

// The witness file (trail.witness_file): a copy of the trail's signed
// checkpoints kept outside the trail, for 'pdp log verify --witness'. The
// running PDP appends to it the latest checkpoint whenever the trail's
// tree has grown since the one it appended last (checked every
// trail.checkpoint_interval, and on a clean stop), as
// 'pdp log checkpoint >> FILE' would. The file is opened for each append
// (O_APPEND, then fsync), so it may be rotated or shipped away between
// them. A failed append is logged at Error and shows in
// pdp_trail_checkpoint_failing until an append succeeds; it never holds
// up a decision.

// checkpointer signs a checkpoint of the trail's current size, or returns
// the latest if the tree has not grown: *trail.FileLog and *pgtrail.Log.
type checkpointer interface {
	Checkpoint() ([]byte, error)
}

// witnessedStore is a TrailStore that also appends its checkpoints to a
// witness file.
type witnessedStore struct {
	TrailStore
	cp       checkpointer
	path     string
	interval time.Duration
	log      *slog.Logger

	mu    sync.Mutex
	wrote bool   // a checkpoint was appended
	last  uint64 // the size of the latest appended
	err   error  // the latest append's failure, nil after a success
}

// witnessStore wraps l so that it appends to cfg.WitnessFile; l as it is
// when no witness file is configured.
func witnessStore(l TrailStore, cfg TrailConfig, log *slog.Logger) (TrailStore, error) {
	if cfg.WitnessFile == "" {
		return l, nil
	}
	cp, ok := l.(checkpointer)
	if !ok {
		return nil, fmt.Errorf("trail.witness_file: the %T trail cannot sign a checkpoint on demand", l)
	}
	return &witnessedStore{TrailStore: l, cp: cp, path: cfg.WitnessFile, interval: cfg.CheckpointInterval, log: log}, nil
}

// Run runs the store's own checkpoints and, beside them, the appends to
// the witness file.
func (s *witnessedStore) Run(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { done <- s.TrailStore.Run(ctx) }()
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case err := <-done:
			return err
		case <-t.C:
			s.witness()
		}
	}
}

// Close appends the final checkpoint (the recorder is drained by now),
// then closes the store.
func (s *witnessedStore) Close() error {
	s.witness()
	return s.TrailStore.Close()
}

// LastCheckpointError is the store's, else the latest append's failure.
func (s *witnessedStore) LastCheckpointError() error {
	if err := s.TrailStore.LastCheckpointError(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// witness appends the latest checkpoint if it is larger than the one
// appended last. A checkpoint that cannot be had is the store's failure,
// which its Run reports.
func (s *witnessedStore) witness() {
	signed, err := s.cp.Checkpoint()
	if err != nil {
		return
	}
	h, err := trail.UnverifiedHead(signed)
	if err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.wrote && h.Size <= s.last {
		return
	}
	if err := appendWitness(s.path, signed); err != nil {
		if s.err == nil {
			s.log.Error("decision trail: cannot append the checkpoint to the witness file; retrying at the next checkpoint",
				"witness_file", s.path, "size", h.Size, "error", err)
		}
		s.err = err
		return
	}
	if s.err != nil {
		s.log.Info("decision trail: the witness file takes checkpoints again", "witness_file", s.path, "size", h.Size)
	}
	s.wrote, s.last, s.err = true, h.Size, nil
}

// appendWitness appends signed to the file at path (made 0640 if absent)
// and fsyncs it.
func appendWitness(path string, signed []byte) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("witness file: %w", err)
	}
	defer func() { err = errors.Join(err, f.Close()) }()
	if _, err := f.Write(signed); err != nil {
		return fmt.Errorf("witness file: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("witness file: fsync: %w", err)
	}
	return nil
}
