package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// ErrShutdownTimeout: a command did not stop within its shutdown timeout;
// what still ran (a request stuck on an unreachable store, say) was
// abandoned and the process exits all the same.
var ErrShutdownTimeout = errors.New("shutdown did not finish within the shutdown timeout")

// closeReserve is the part of a shutdown timeout kept for closing stores
// (the trail's final checkpoint, the spool) after in-flight requests had
// their share: a quarter, at most 2s.
func closeReserve(timeout time.Duration) time.Duration {
	return min(timeout/4, 2*time.Second)
}

// DrainTimeout is how long in-flight requests may run on shutdown: the
// shutdown timeout less closeReserve.
func DrainTimeout(timeout time.Duration) time.Duration {
	return timeout - closeReserve(timeout)
}

// BoundShutdown runs body, which must return once ctx is done. From then
// on it gets timeout to do so: if it has not by then, BoundShutdown logs
// and returns ErrShutdownTimeout without waiting for it (the process
// exits; whatever hangs is abandoned), so SIGINT and SIGTERM always stop
// the process in bounded time.
func BoundShutdown(ctx context.Context, timeout time.Duration, log *slog.Logger, body func() error) error {
	done := make(chan error, 1)
	go func() { done <- body() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		log.Error("shutdown did not finish in time: exiting with work abandoned (records may lack their final checkpoint)",
			"shutdown_timeout", timeout)
		return fmt.Errorf("%w (%v)", ErrShutdownTimeout, timeout)
	}
}
