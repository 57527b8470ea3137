package policy_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/ciampdp/pdp/pdp/policy"
	"github.com/ciampdp/pdp/pdp/signals"
)

// The signals registry is part of a bundle: loaded from the schema folder,
// in the version hash and the sources (so replay finds it), and a broken
// one keeps the version from loading.
func TestBundleSignalsRegistry(t *testing.T) {
	b, err := policy.Load(context.Background(), policy.DirsFor("../../examples/northbank"))
	if err != nil {
		t.Fatal(err)
	}
	if b.Signals() == nil || len(b.Signals().Rules) == 0 {
		t.Fatal("the Northbank bundle has no signals registry")
	}
	src := b.Sources()
	if _, ok := src["schema/"+policy.SignalsFile]; !ok {
		t.Fatal("signals.yaml is not among the bundle's sources")
	}
	again, err := policy.LoadFiles(src)
	if err != nil || again.Version().Hash != b.Version().Hash || again.Signals() == nil {
		t.Fatalf("rebuilt from sources: %v", err)
	}
	changed := map[string][]byte{}
	for k, v := range src {
		changed[k] = v
	}
	changed["schema/"+policy.SignalsFile] = append([]byte("# a comment\n"), src["schema/"+policy.SignalsFile]...)
	c, err := policy.LoadFiles(changed)
	if err != nil || c.Version().Hash == b.Version().Hash {
		t.Fatalf("a changed registry is not a new version: %v", err)
	}
	changed["schema/"+policy.SignalsFile] = []byte("events: {credential-compromise: {reason: x}}")
	_, err = policy.LoadFiles(changed)
	var les policy.LoadErrors
	if !errors.As(err, &les) || !strings.Contains(err.Error(), "schema/signals.yaml") || !errors.Is(les[0].Err, signals.ErrInvalidRegistry) {
		t.Fatalf("a broken registry: %v", err)
	}
}
