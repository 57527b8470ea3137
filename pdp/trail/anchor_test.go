package trail

import (
	"context"
	"testing"
)

// TestVerifyCountsUnanchored: the file log reports (package pgtrail tests
// the same of PostgreSQL) the records that follow
// the latest checkpoint (no signature covers them yet).
func TestVerifyCountsUnanchored(t *testing.T) {
	signer, vkey := newKeys(t)
	ctx := context.Background()
	t.Run("file", func(t *testing.T) {
		l := openLog(t, t.TempDir(), FileOptions{Signer: signer})
		appendN(t, l, 0, 4)
		if _, err := l.Checkpoint(); err != nil {
			t.Fatal(err)
		}
		appendN(t, l, 4, 3)
		rep, err := l.Verify(ctx, vkey, 0, l.Size())
		if err != nil || !rep.OK || rep.Anchored != 4 || rep.Unanchored != 3 {
			t.Errorf("verify %+v %v, want 4 anchored and 3 unanchored", rep, err)
		}
	})
}
