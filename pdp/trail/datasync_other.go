//go:build !linux

package trail

import "os"

// datasync makes f's written data durable: an fsync where the system
// offers no fdatasync.
func datasync(f *os.File) error { return f.Sync() }
