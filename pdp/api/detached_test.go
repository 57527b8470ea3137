package api

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestDetachedOutlivesTheClient: a change's context is not cancelled
// with the request's (a client that hangs up), keeps its values, and
// ends after its bound.
func TestDetachedOutlivesTheClient(t *testing.T) {
	type key struct{}
	req, hangUp := context.WithCancel(context.WithValue(context.Background(), key{}, "v"))
	ctx, cancel := detached(req, time.Minute)
	defer cancel()
	hangUp()
	if ctx.Err() != nil {
		t.Fatalf("the change's context ended with the request's: %v", ctx.Err())
	}
	if ctx.Value(key{}) != "v" {
		t.Fatal("the request's values are lost")
	}
	bounded, cancelBounded := detached(req, 50*time.Millisecond)
	defer cancelBounded()
	select {
	case <-bounded.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the change's context has no bound")
	}
}

// TestShutdownWaitsForDetachedChanges: what Serve waits for after a
// shutdown that gave up on its requests includes every change still
// carried through, until it is done.
func TestShutdownWaitsForDetachedChanges(t *testing.T) {
	s := &Server{cfg: Config{WriteTimeout: time.Second}, log: slog.New(slog.DiscardHandler)}
	_, done, ok := s.detach(context.Background(), time.Minute)
	if !ok {
		t.Fatal("no change may begin before shutdown")
	}
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

// TestShutdownWaitsPastTheBoundOnlyByTheGrace: a change still unwinding at
// its deadline (writing its "not applied" record) is waited for; one whose
// handler never calls its cancel (it panicked between changing and done)
// only until its bound and the grace, not until waitDetached's own limit.
func TestShutdownWaitsPastTheBoundOnlyByTheGrace(t *testing.T) {
	old := detachGrace
	detachGrace = 300 * time.Millisecond
	t.Cleanup(func() { detachGrace = old })
	s := &Server{cfg: Config{WriteTimeout: time.Minute}, log: slog.New(slog.DiscardHandler)}
	ctx, _, _ := s.detach(context.Background(), 100*time.Millisecond) // its cancel is never called
	start := time.Now()
	s.waitDetached()
	if ctx.Err() == nil {
		t.Fatal("waitDetached returned before the change's bound")
	}
	if d := time.Since(start); d < 400*time.Millisecond {
		t.Fatalf("waitDetached returned after %v, before the bound (100ms) and the grace (300ms)", d)
	} else if d > 30*time.Second {
		t.Fatalf("waitDetached took %v: it waited past the change's bound and grace", d)
	}
}

// TestNoChangeBeginsOnceShutdownWaits: a change that reaches changing
// after Serve began waiting for the carried-through ones is refused
// (the handler answers 503 without calling the service) and not counted.
func TestNoChangeBeginsOnceShutdownWaits(t *testing.T) {
	s := &Server{cfg: Config{WriteTimeout: time.Second}, log: slog.New(slog.DiscardHandler)}
	s.waitDetached()
	if _, _, ok := s.detach(context.Background(), time.Minute); ok {
		t.Fatal("a change began after shutdown began waiting")
	}
	start := time.Now()
	s.waitDetached()
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the late change was counted: waitDetached took %v", d)
	}
	if code, msg := classify(errShuttingDown); code != http.StatusServiceUnavailable || !strings.Contains(msg, "nothing was changed") {
		t.Fatalf("a refused late change answers %d %q, want 503 saying nothing was changed", code, msg)
	}
}
