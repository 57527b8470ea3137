package ingest

import (
	"context"
	"errors"
	"fmt"
	"sync"
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

// TestSidecarClaimedAtOnceThroughTwoReplicas: two applications claim one
// new sidecar id through two replicas at the same moment, many times:
// exactly one is stored each time, the other refused (ErrSidecarBound).
func TestSidecarClaimedAtOnceThroughTwoReplicas(t *testing.T) {
	logs := sharedTrail(t, 2)
	ctx := context.Background()
	ins := make([]*Ingest, 2)
	for i := range ins {
		var err error
		if ins[i], err = New(ctx, logs[i], logs[i], Options{}); err != nil {
			t.Fatal(err)
		}
	}
	for n := range 20 {
		id := fmt.Sprintf("sc-%d", n)
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for i, app := range []string{"app-x", "app-y"} {
			wg.Go(func() { _, errs[i] = ins[i].Ingest(ctx, app, id, []Record{record(t, id, 1, false)}) })
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			switch {
			case err == nil:
				ok++
			case !errors.Is(err, ErrSidecarBound):
				t.Fatalf("%s: %v", id, err)
			}
		}
		if ok != 1 {
			t.Errorf("%s claimed at once by two applications: %v, want exactly one stored", id, errs)
		}
	}
}
