package trail

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// ErrLocked: another process (or another open FileLog in this one) has the
// trail directory open.
var ErrLocked = errors.New("the trail directory is in use by another process")

// lockFile is the file in a FileLog's directory that carries its lock.
const lockFile = "LOCK"

// lockDir takes an exclusive, non-blocking lock on dir/LOCK, so that one
// directory has one writer. The lock goes with the descriptor: closing the
// returned file (or the process dying) releases it.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("trail: lock %s: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: %w", dir, ErrLocked)
		}
		return nil, fmt.Errorf("trail: lock %s: %w", dir, err)
	}
	return f, nil
}

// LockDir takes the same exclusive lock on dir (dir/LOCK) that an open
// FileLog holds on its own, for an owner of a directory of several logs
// (the sidecar's segmented spool): ErrLocked while another holds it.
// Closing the returned file releases it.
func LockDir(dir string) (io.Closer, error) {
	return lockDir(dir)
}
