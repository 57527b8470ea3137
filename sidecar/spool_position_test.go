package sidecar

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestSpoolNeverNumbersBelowThePosition: with its segments gone (deleted
// by hand, a partial restore) or ending below the shipping position, the
// spool numbers new answers from the position: below it they would never
// be shipped, and the central PDP would take them for retries.
func TestSpoolNeverNumbersBelowThePosition(t *testing.T) {
	for _, tc := range []struct {
		name string
		keep bool // keep the segments, only move the position past them
	}{
		{"every segment deleted", false},
		{"the last segment ends below the position", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			sp := reopen(t, nil, dir, SpoolSync)
			addAnswers(t, sp, 0, 30)
			if err := sp.close(); err != nil {
				t.Fatal(err)
			}
			if !tc.keep {
				for _, base := range segmentBases(t, dir) {
					if err := os.RemoveAll(filepath.Join(dir, segmentName(base))); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := os.WriteFile(filepath.Join(dir, "shipped"), fmt.Appendf(nil, "%d\n", 5000), 0o640); err != nil {
				t.Fatal(err)
			}
			sp = reopen(t, nil, dir, SpoolSync)
			if got := sp.size(); got != 5000 {
				t.Fatalf("after reopening, the next answer is spool seq %d, want 5000 (the shipping position)", got)
			}
			addAnswers(t, sp, 5000, 5010)
			checkSpool(t, sp, 5000)
		})
	}
}
