package pgtrail

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ciampdp/pdp/pdp/trail"
)

// Sidecar records exactly once across replicas.
//
// A sidecar numbers the records of its spool (strictly increasing); the
// key (application, sidecar id, spool seq) of every sidecar record stored
// is kept in trail_sidecar_spools (primary key), written in the same
// transaction as the record. AppendSpool checks the keys of its records
// under the head lock, which serialises every append of every replica, and
// leaves out those stored already: a retry that reaches another replica
// than the first attempt, or the same batch arriving at two replicas at
// once, is stored once. Records stored before this table existed are not
// in it (their replicas' in-memory positions cover them).

// SpoolKey names a sidecar record: its application, sidecar id and spool
// seq.
type SpoolKey struct {
	Application, Sidecar string
	Seq                  uint64
}

// Skipped is the seq AppendSpool returns for a record it left out.
const Skipped = ^uint64(0)

// Refused is the seq AppendSpool returns for a record it left out because
// its sidecar id belongs to another application: that of the first
// record stored under the id, by any replica (checked under the head
// lock, so two applications cannot both claim a new id).
const Refused = ^uint64(0) - 1

// AppendSpool is Append for sidecar records, keys[i] naming recs[i]: a
// record whose key is stored already is left out, and its seq is Skipped.
func (l *Log) AppendSpool(ctx context.Context, keys []SpoolKey, recs ...trail.Record) ([]uint64, error) {
	if len(keys) != len(recs) {
		return nil, fmt.Errorf("trail: append: %d spool keys for %d records", len(keys), len(recs))
	}
	return l.append(ctx, keys, recs)
}

// SpoolHigh returns the highest spool seq stored for the sidecar of app
// (0: none).
func (l *Log) SpoolHigh(ctx context.Context, app, sidecar string) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, l.opts.Timeout)
	defer cancel()
	var high int64
	if err := l.pool.QueryRow(ctx, l.sql.spoolHigh, app, sidecar).Scan(&high); err != nil {
		return 0, fmt.Errorf("trail: postgres: sidecar %s/%s: %w", app, sidecar, err)
	}
	return uint64(high), nil
}

// SidecarOwner returns the application that the sidecar id belongs to in
// the trail shared by the replicas: that of its first record stored by any
// replica ("" when none is).
func (l *Log) SidecarOwner(ctx context.Context, sidecar string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, l.opts.Timeout)
	defer cancel()
	var app string
	err := l.pool.QueryRow(ctx, l.sql.sidecarOwner, sidecar).Scan(&app)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("trail: postgres: owner of sidecar %s: %w", sidecar, err)
	}
	return app, nil
}

// skipStored marks the records of batch whose keys are stored (or repeat
// a key earlier in the batch).
func (l *Log) skipStored(ctx context.Context, conn *pgxpool.Conn, batch []*pgReq) error {
	var apps, sidecars []string
	var seqs []int64
	for _, r := range batch {
		for _, p := range r.recs {
			if p.key != nil {
				apps, sidecars, seqs = append(apps, p.key.Application), append(sidecars, p.key.Sidecar), append(seqs, int64(p.key.Seq))
			}
		}
	}
	if len(apps) == 0 {
		return nil
	}
	rows, err := conn.Query(ctx, l.sql.storedKeys, apps, sidecars, seqs)
	if err != nil {
		return err
	}
	stored := make(map[SpoolKey]bool)
	var k SpoolKey
	var seq int64
	if _, err := pgx.ForEachRow(rows, []any{&k.Application, &k.Sidecar, &seq}, func() error {
		k.Seq = uint64(seq)
		stored[k] = true
		return nil
	}); err != nil {
		return err
	}
	owners, err := l.owners(ctx, conn, sidecars)
	if err != nil {
		return err
	}
	for _, r := range batch {
		for i := range r.recs {
			p := &r.recs[i]
			if p.key == nil {
				continue
			}
			if owner, ok := owners[p.key.Sidecar]; ok && owner != p.key.Application {
				p.skip, p.foreign = true, true
				continue
			}
			owners[p.key.Sidecar] = p.key.Application // the first in the batch claims a new id
			p.skip = stored[*p.key]
			stored[*p.key] = true
		}
	}
	return nil
}

// owners maps each of sidecars that has records stored to the application
// of its first.
func (l *Log) owners(ctx context.Context, conn *pgxpool.Conn, sidecars []string) (map[string]string, error) {
	rows, err := conn.Query(ctx, l.sql.sidecarOwners, slices.Compact(slices.Sorted(slices.Values(sidecars))))
	if err != nil {
		return nil, err
	}
	owners := make(map[string]string)
	var sidecar, app string
	if _, err := pgx.ForEachRow(rows, []any{&sidecar, &app}, func() error {
		owners[sidecar] = app
		return nil
	}); err != nil {
		return nil, err
	}
	return owners, nil
}
