package sidecar

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp/trail"
)

// TestSpooledCountsWhatWaitsForTheDrainer: the status's spooled count is
// every answer accepted, written or still in the async buffer, so that
// "shipped >= spooled" means every answer given so far was shipped (it
// used to count only the written ones: a test saw answers missing from the
// central trail after shipping had "caught up").
func TestSpooledCountsWhatWaitsForTheDrainer(t *testing.T) {
	for _, mode := range []string{SpoolAsync, SpoolSync} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			sp, err := openSpool(dir, mode, DefaultSpoolSegmentBytes, nil)
			if err != nil {
				t.Fatal(err)
			}
			const n = 300
			for i := range n {
				rec := trail.Record{Kind: KindAnswer, ID: fmt.Sprintf("d-%d", i), Time: time.Now().UTC(), Body: []byte(`{}`)}
				if err := sp.add(context.Background(), rec); err != nil {
					t.Fatal(err)
				}
				if got := sp.spooled(); got != uint64(i+1) {
					t.Fatalf("after %d answers: spooled %d", i+1, got)
				}
			}
			if err := sp.close(); err != nil {
				t.Fatal(err)
			}
			sp, err = openSpool(dir, mode, DefaultSpoolSegmentBytes, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer sp.close()
			if got := sp.spooled(); got != n || sp.size() != n {
				t.Errorf("reopened: spooled %d, log %d, want %d", got, sp.size(), n)
			}
		})
	}
}
