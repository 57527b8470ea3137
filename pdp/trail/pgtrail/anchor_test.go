package pgtrail

import "testing"

// TestVerifyCountsUnanchored: the PostgreSQL trail reports the records that
// follow the latest checkpoint, as the file log does.
func TestVerifyCountsUnanchored(t *testing.T) {
	signer, vkey := newKeys(t)
	db := newPGDB(t)
	l := db.open(Options{Signer: signer})
	pgAppendN(t, l, 0, 4)
	if _, err := l.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	pgAppendN(t, l, 4, 3)
	if rep := pgVerify(t, l, vkey); !rep.OK || rep.Anchored != 4 || rep.Unanchored != 3 {
		t.Errorf("verify %+v, want 4 anchored and 3 unanchored", rep)
	}
}
