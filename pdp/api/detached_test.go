package api

import (
	"context"
	"log/slog"
	"testing"
	"time"
)

// TestDetachedOutlivesTheClient: a change's context is not cancelled
// with the request's (a client that hangs up), keeps its values, and
// ends after its bound.
func TestDetachedOutlivesTheClient(t *testing.T) {
	type key struct{}
	req, hangUp := context.WithCancel(context.WithValue(context.Background(), key{}, "v"))
	ctx, cancel := detached(req, 50*time.Millisecond)
	defer cancel()
	hangUp()
	if ctx.Err() != nil {
		t.Fatalf("the change's context ended with the request's: %v", ctx.Err())
	}
	if ctx.Value(key{}) != "v" {
		t.Fatal("the request's values are lost")
	}
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the change's context has no bound")
	}
}

// TestShutdownWaitsForDetachedChanges: what Serve waits for after a
// shutdown that gave up on its requests includes every change still
// carried through, until it is done.
func TestShutdownWaitsForDetachedChanges(t *testing.T) {
	s := &Server{cfg: Config{WriteTimeout: time.Second}, log: slog.New(slog.DiscardHandler)}
	_, done := s.detach(context.Background(), time.Second)
	finished := make(chan struct{})
	go func() {
		time.Sleep(100 * time.Millisecond)
		close(finished)
		done()
		done() // a second call is harmless
	}()
	s.waitDetached()
	select {
	case <-finished:
	default:
		t.Fatal("waitDetached returned before the change was done")
	}
}

// TestShutdownStopsWaitingAtTheBound: a change whose handler never calls
// its cancel (it panicked between changing and done) is waited for only
// until its bound, not until waitDetached's own limit.
func TestShutdownStopsWaitingAtTheBound(t *testing.T) {
	s := &Server{cfg: Config{WriteTimeout: time.Minute}, log: slog.New(slog.DiscardHandler)}
	ctx, _ := s.detach(context.Background(), 100*time.Millisecond) // its cancel is never called
	start := time.Now()
	s.waitDetached()
	if ctx.Err() == nil {
		t.Fatal("waitDetached returned before the change's bound")
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("waitDetached took %v: it waited past the change's bound (100ms)", d)
	}
}
