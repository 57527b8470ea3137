package sidecar

import (
	"errors"
	"testing"

	"github.com/ciampdp/pdp/pdp/trail"
)

// TestSpoolDirLocked: two sidecars never append to one spool: the second
// opener of a spool directory is refused until the first closes it.
func TestSpoolDirLocked(t *testing.T) {
	for _, mode := range []string{SpoolAsync, SpoolSync} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			first, err := openSpool(dir, mode, DefaultSpoolSegmentBytes, nil)
			if err != nil {
				t.Fatal(err)
			}
			if second, err := openSpool(dir, mode, DefaultSpoolSegmentBytes, nil); !errors.Is(err, trail.ErrLocked) {
				if second != nil {
					_ = second.close()
				}
				t.Fatalf("second openSpool: %v, want trail.ErrLocked", err)
			}
			if err := first.close(); err != nil {
				t.Fatal(err)
			}
			again, err := openSpool(dir, mode, DefaultSpoolSegmentBytes, nil)
			if err != nil {
				t.Fatalf("openSpool after close: %v", err)
			}
			_ = again.close()
		})
	}
}
