package pdp_test

import (
	"context"
	"testing"

	"github.com/ciampdp/pdp/pdp"
)

func TestConsistencyTokenInContext(t *testing.T) {
	ctx := context.Background()
	if got := pdp.ConsistencyToken(ctx); got != "" {
		t.Errorf("a bare context carries %q", got)
	}
	if got := pdp.WithConsistencyToken(ctx, ""); got != ctx {
		t.Error("an empty token made a new context")
	}
	ctx = pdp.WithConsistencyToken(ctx, "tok-1")
	if got := pdp.ConsistencyToken(ctx); got != "tok-1" {
		t.Errorf("token %q, want tok-1", got)
	}
	if got := pdp.ConsistencyToken(pdp.WithConsistencyToken(ctx, "tok-2")); got != "tok-2" {
		t.Errorf("token %q, want the innermost tok-2", got)
	}
}
