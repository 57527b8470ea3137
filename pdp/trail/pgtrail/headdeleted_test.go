package pgtrail

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/ciampdp/pdp/pdp/trail"
)

// TestPostgresHeadRowDeletedConstraintKept: with trail_head_root_of_size
// kept (any upgraded trail), a deleted head row is inserted again as the
// empty tree with its root, so the constraint holds: a start over rows
// beyond it is ErrDamaged naming them (not a raw check-constraint error),
// and a trail emptied whole starts as a new one.
func TestPostgresHeadRowDeletedConstraintKept(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(db pgDB)
		names  string // in the start's error; "" for a new trail
	}{
		{"rows kept", func(db pgDB) { db.exec(`DELETE FROM {head}`) }, "trail_records holds record 12"},
		{"records deleted too", func(db pgDB) {
			db.exec(`DELETE FROM {head}`)
			db.exec(`DELETE FROM {records}`)
		}, "trail_checkpoints holds a checkpoint of 10"},
		{"emptied whole", func(db pgDB) {
			db.exec(`DELETE FROM {head}`)
			db.exec(`DELETE FROM {records}`)
			db.exec(`DELETE FROM {checkpoints}`)
		}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db, signer, vkey := rootTrail(t)
			tc.tamper(db)
			var logs bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			l, err := Open(ctx, db.url, Options{Schema: db.schema, Signer: signer,
				Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
			if n := db.count(`SELECT count(*) FROM pg_constraint WHERE conrelid = '{head}'::regclass AND conname = '` + rootedConstraint + `'`); n != 1 {
				t.Fatalf("the constraint is gone after the start")
			}
			if tc.names != "" {
				if !errors.Is(err, trail.ErrDamaged) || !strings.Contains(err.Error(), tc.names) {
					t.Fatalf("start: %v, want ErrDamaged naming %q", err, tc.names)
				}
				return
			}
			if err != nil {
				t.Fatalf("start on an emptied trail: %v", err)
			}
			defer l.Close()
			if strings.Contains(logs.String(), "level=WARN") {
				t.Fatalf("a new trail warned: %s", logs.String())
			}
			pgAppendN(t, l, 0, 2)
			if _, err := l.Checkpoint(); err != nil {
				t.Fatal(err)
			}
			if rep := pgVerify(t, l, vkey); !rep.OK || rep.To != 2 {
				t.Fatalf("verify: %v", rep)
			}
		})
	}
}

// TestPostgresCheckpointNotGrownChecksStored: when the tree has not grown,
// Checkpoint hands out the stored latest checkpoint only if it is the
// tree the head holds: a row rewritten with another root (signed by the
// trail's key or not, its verifier key known or not) or another size is
// ErrDamaged, never copied to a witness file or printed.
func TestPostgresCheckpointNotGrownChecksStored(t *testing.T) {
	signer, vkey := newKeys(t)
	foreign, _ := newKeys(t)
	other := func(s int64, by bool) []byte {
		h := trail.TreeHead{Origin: "pdp/trail", Size: uint64(s), Root: tlog.Hash{1}}
		sg := signer
		if by {
			sg = foreign
		}
		signed, err := h.Sign(sg)
		if err != nil {
			t.Fatal(err)
		}
		return signed
	}
	tests := []struct {
		name   string
		signed []byte
		vkey   string
	}{
		{"other root, trail's key, verifier known", other(10, false), vkey},
		{"other root, trail's key, verifier unknown", other(10, false), ""},
		{"other root, foreign key, verifier known", other(10, true), vkey},
		{"other size", other(1<<62, false), ""},
		{"malformed", []byte("pdp/trail\n10\nAAAA\n\n\u2014 x\n"), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := newPGDB(t)
			l := db.open(Options{Signer: signer, VerifierKey: tc.vkey, Origin: "pdp/trail"})
			defer l.Close()
			pgAppendN(t, l, 0, 10)
			good, err := l.Checkpoint()
			if err != nil {
				t.Fatal(err)
			}
			if again, err := l.Checkpoint(); err != nil || !bytes.Equal(again, good) {
				t.Fatalf("not grown, untouched: %q %v", again, err)
			}
			db.exec(`UPDATE {checkpoints} SET signed = $1 WHERE size = 10`, string(tc.signed))
			got, err := l.Checkpoint()
			if !errors.Is(err, trail.ErrDamaged) || got != nil {
				t.Fatalf("not grown, stored row rewritten: %q %v, want ErrDamaged", got, err)
			}
			t.Log(err)
		})
	}
}
