package api

import (
	"context"
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
