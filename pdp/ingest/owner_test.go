package ingest

import (
	"context"
	"errors"
	"testing"
)

// TestSidecarOwnerAcrossReplicas: a sidecar id whose records were stored
// through replica A for one application is refused (ErrSidecarBound, a
// 403) through replica B for another, though B never stored it and both
// started before it was; its own application goes on through B.
func TestSidecarOwnerAcrossReplicas(t *testing.T) {
	logs := sharedTrail(t, 2)
	ctx := context.Background()
	a, err := New(ctx, logs[0], logs[0], Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(ctx, logs[1], logs[1], Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Ingest(ctx, "app", "sc", []Record{record(t, "sc", 1, false)}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		app  string
		seq  uint64
		want error
	}{
		{"other", 1, ErrSidecarBound},
		{"other", 2, ErrSidecarBound},
		{"app", 2, nil},
		{"other", 3, ErrSidecarBound},
	} {
		_, err := b.Ingest(ctx, tc.app, "sc", []Record{record(t, "sc", tc.seq, false)})
		if !errors.Is(err, tc.want) {
			t.Errorf("%s seq %d through B: %v, want %v", tc.app, tc.seq, err, tc.want)
		}
	}
	owner, err := logs[1].SidecarOwner(ctx, "sc")
	if err != nil || owner != "app" {
		t.Errorf("SidecarOwner = %q %v, want app", owner, err)
	}
	if owner, err := logs[1].SidecarOwner(ctx, "never"); err != nil || owner != "" {
		t.Errorf("SidecarOwner of an unknown id = %q %v, want none", owner, err)
	}
}
