package pgtrail

import (
	"context"
	"errors"
	"testing"

	"github.com/ciampdp/pdp/pdp/trail"
)

// TestPostgresCheckpointsDeletedOrPlanted: a replica running while the
// checkpoints are deleted (to get a tree forged under them signed again)
// refuses to sign; and a planted latest checkpoint whose signature does
// not check cannot steer what is signed. A replica started after the
// deletion cannot tell (the README says to keep checkpoints outside the
// database too).
func TestPostgresCheckpointsDeletedOrPlanted(t *testing.T) {
	t.Run("deleted under a running replica", func(t *testing.T) {
		db, signer, vkey := rootTrail(t)
		l := db.open(Options{Signer: signer, VerifierKey: vkey})
		forge(t, db, 13, 5) // record 5, under the checkpoint of 10
		db.exec(`DELETE FROM {checkpoints}`)
		if _, err := l.Append(context.Background(), mkRec(13)); err != nil {
			t.Fatalf("append: %v", err)
		}
		if _, err := l.Checkpoint(); !errors.Is(err, trail.ErrDamaged) {
			t.Fatalf("checkpoint after the checkpoints were deleted: %v, want ErrDamaged", err)
		}
	})
	t.Run("an unsigned latest checkpoint planted", func(t *testing.T) {
		db, signer, vkey := rootTrail(t)
		other, _ := newKeys(t)
		_, root12 := forgedTree(t, 12, 5) // the forged tree as of 12 records
		forge(t, db, 13, 5)
		planted, err := trail.TreeHead{Origin: trail.DefaultOrigin, Size: 12, Root: root12}.Sign(other)
		if err != nil {
			t.Fatal(err)
		}
		db.exec(`INSERT INTO {checkpoints} (size, signed) VALUES (12, $1)`, string(planted))
		l := db.open(Options{Signer: signer, VerifierKey: vkey})
		if _, err := l.Append(context.Background(), mkRec(13)); err != nil {
			t.Fatalf("append: %v", err)
		}
		if _, err := l.Checkpoint(); !errors.Is(err, trail.ErrDamaged) {
			t.Fatalf("checkpoint over a planted latest checkpoint: %v, want ErrDamaged", err)
		}
	})
}
