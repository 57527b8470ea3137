package pgtrail

import (
	"context"
	"sync"
	"testing"

	"github.com/ciampdp/pdp/pdp/trail"
)

// TestAppendSpoolStoresEachKeyOnce: keys stored by one replica (Log) are
// left out by another, in one call, across calls and when both append the
// same keys at once; the chain verifies.
func TestAppendSpoolStoresEachKeyOnce(t *testing.T) {
	db := newPGDB(t)
	signer, vkey := newKeys(t)
	a, b := db.open(Options{Signer: signer}), db.open(Options{Signer: signer})
	ctx := context.Background()
	key := func(n uint64) SpoolKey { return SpoolKey{Application: "app", Sidecar: "sc", Seq: n} }

	seqs, err := a.AppendSpool(ctx, []SpoolKey{key(1), key(2), key(2)}, mkRec(0), mkRec(1), mkRec(2))
	if err != nil {
		t.Fatal(err)
	}
	if seqs[0] != 0 || seqs[1] != 1 || seqs[2] != Skipped {
		t.Errorf("seqs %v, want [0 1 Skipped]: the repeated key in one call is left out", seqs)
	}
	// The retry reaches replica b: nothing stored twice.
	seqs, err = b.AppendSpool(ctx, []SpoolKey{key(1), key(2), key(3)}, mkRec(3), mkRec(4), mkRec(5))
	if err != nil {
		t.Fatal(err)
	}
	if seqs[0] != Skipped || seqs[1] != Skipped || seqs[2] != 2 {
		t.Errorf("retry through another replica: seqs %v, want [Skipped Skipped 2]", seqs)
	}
	if high, err := a.SpoolHigh(ctx, "app", "sc"); err != nil || high != 3 {
		t.Errorf("SpoolHigh %d %v, want 3", high, err)
	}
	if high, err := a.SpoolHigh(ctx, "other", "sc"); err != nil || high != 0 {
		t.Errorf("SpoolHigh of another application %d %v, want 0", high, err)
	}
	// The same batch at two replicas at once.
	var wg sync.WaitGroup
	stored := make([]int, 2)
	for i, l := range []*Log{a, b} {
		wg.Go(func() {
			seqs, err := l.AppendSpool(ctx, []SpoolKey{key(4), key(5)}, mkRec(6+2*i), mkRec(7+2*i))
			if err != nil {
				t.Error(err)
			}
			for _, s := range seqs {
				if s != Skipped {
					stored[i]++
				}
			}
		})
	}
	wg.Wait()
	if stored[0]+stored[1] != 2 {
		t.Errorf("two replicas appending the same keys stored %v records, want 2 in all", stored)
	}
	if n := db.count("SELECT count(*) FROM {records}"); n != 5 {
		t.Errorf("%d records, want 5", n)
	}
	if n := db.count("SELECT count(*) FROM " + db.schema + ".trail_sidecar_spools"); n != 5 {
		t.Errorf("%d spool keys, want 5", n)
	}
	if _, err := a.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if rep := pgVerify(t, a, vkey); !rep.OK {
		t.Errorf("verify: %+v", rep)
	}
	// A plain Append is unaffected.
	if _, err := a.Append(ctx, trail.Record{Kind: "decision", ID: "plain", Time: epoch, Body: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.AppendSpool(ctx, []SpoolKey{key(9)}); err == nil {
		t.Error("AppendSpool with more keys than records succeeded")
	}
}
