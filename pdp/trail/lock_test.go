package trail

import (
	"errors"
	"strings"
	"testing"
)

// TestOpenFileLocksDirectory: a FileLog holds its directory; a second
// opener (here in the same process, as another process would be) is refused
// with ErrLocked until the first closes it.
func TestOpenFileLocksDirectory(t *testing.T) {
	dir := t.TempDir()
	first, err := OpenFile(dir, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := first.Append(t.Context(), Record{Kind: "decision", ID: "d1", Body: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	second, err := OpenFile(dir, FileOptions{})
	if !errors.Is(err, ErrLocked) {
		if second != nil {
			_ = second.Close()
		}
		t.Fatalf("second OpenFile: %v, want ErrLocked", err)
	}
	if !strings.Contains(err.Error(), "in use by another process") || !strings.Contains(err.Error(), dir) {
		t.Errorf("error %q does not name the directory and the cause", err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := OpenFile(dir, FileOptions{})
	if err != nil {
		t.Fatalf("OpenFile after Close: %v", err)
	}
	defer again.Close()
	if n := again.Size(); n != 1 {
		t.Errorf("reopened log holds %d records, want 1", n)
	}
}

// dropLock releases l's directory lock as the kernel does when a process
// dies, for the tests that simulate a crash by reopening a log they did not
// close.
func dropLock(t *testing.T, l *FileLog) {
	t.Helper()
	if err := l.lock.Close(); err != nil {
		t.Fatal(err)
	}
	l.lock = nil
}
