package pgtrail

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/ciampdp/pdp/pdp/trail"
)

// TestPostgresCheckWitnessed: a checkpoint kept outside the database
// catches what Verify cannot once the stored checkpoints are gone: rows,
// stored hashes and root forged consistently, or the newest records cut
// with the head to match.
func TestPostgresCheckWitnessed(t *testing.T) {
	tests := []struct {
		name    string
		tamper  func(t *testing.T, db pgDB)
		want    error
		message string
		// verifyOK: Verify finds nothing wrong (the limit the witness is
		// for); the cut is left open for Verify's own checks of the head.
		verifyOK bool
	}{
		{name: "untouched", tamper: func(*testing.T, pgDB) {}, verifyOK: true},
		{
			name: "record 5 forged with every hash above it and the root, checkpoints deleted",
			tamper: func(t *testing.T, db pgDB) {
				forge(t, db, 13, 5)
				db.exec(`DELETE FROM {checkpoints}`)
			},
			want:     trail.ErrWitnessChanged,
			message:  "the first 10 records no longer hash to the witnessed root: records before 10 were changed",
			verifyOK: true,
		},
		{
			name: "records 8 and after cut with the head, checkpoints deleted",
			tamper: func(t *testing.T, db pgDB) {
				_, root := forgedTree(t, 8, -1)
				db.exec(`DELETE FROM {records} WHERE seq >= 8`)
				db.exec(`UPDATE {head} SET size = 8, root_size = 8, root = $1`, root[:])
				db.exec(`DELETE FROM {checkpoints}`)
			},
			want:    trail.ErrWitnessCut,
			message: "the trail has 8 records; the witness saw 10: records were cut",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db, _, vkey := rootTrail(t)
			ctx := context.Background()
			witnessed := db.open(Options{NoMigrate: true}).Checkpoints()
			if len(witnessed) != 1 || sizeOf(witnessed[0]) != 10 {
				t.Fatalf("checkpoints: %q", witnessed)
			}
			tc.tamper(t, db)
			l := db.open(Options{NoMigrate: true})
			rep, err := l.Verify(ctx, vkey, 0, ^uint64(0))
			if err != nil || tc.verifyOK && !rep.OK {
				t.Fatalf("Verify: %v %v, want ok", rep, err)
			}
			errs, err := l.CheckWitnessed(ctx, vkey, witnessed)
			if err != nil || len(errs) != 1 {
				t.Fatalf("CheckWitnessed: %v %v", errs, err)
			}
			switch got := errs[0]; {
			case tc.want == nil && got != nil:
				t.Fatalf("got %v, want ok", got)
			case tc.want != nil && (!errors.Is(got, tc.want) || !strings.Contains(got.Error(), tc.message)):
				t.Fatalf("got %v, want %v with %q", got, tc.want, tc.message)
			}
		})
	}
}
