package pgtrail

import (
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/ciampdp/pdp/pdp/trail"
)

// The trail's layout migration, run by every Open (not NoMigrate) after
// the DDL, in the same transaction. Whether it is needed is read from the
// tables themselves, not from a record of migrations kept beside them: a
// trail_hashes without the constraint that retires it is in the layout
// before "one copy of each hash", whether an older PDP created it or the
// schema was restored from a backup taken before the upgrade.
//
// The migration, one copy of each stored hash (hashes.go): the interior
// stored hashes move from trail_hashes into the up column of the record
// that completed them, and the level-0 hashes, copies of the leaf column,
// are dropped after checking that they are copies. A trail whose
// trail_hashes does not hold exactly its tree's stored hashes, or whose
// leaf column differs from them, is not migrated (Open fails with
// ErrDamaged): that evidence of tampering is what the previous PDP's pdp
// log verify reports, and the migration does not erase it. It runs under
// the head lock, taken before anything else of the trail is locked (log.go),
// so that it waits for a running append of an older replica and the next
// one waits for it (and then fails on the constraint that retires
// trail_hashes). A trail created in this layout has nothing to move.
func migration(records, hashes, head string) string {
	r := strings.NewReplacer("{records}", records, "{hashes}", hashes, "{head}", head, "{retired}", retiredConstraint,
		"{hashes_str}", sqlString(hashes),
		"{idx0}", `(2 * {s} - length(replace({s}::bit(64)::text, '0', '')))`, // tlog.StoredHashIndex(0, s)
		"{ones}", `(64 - length(rtrim({s}::bit(64)::text, '1')))`) // upLevels(s)
	sub := func(s, x string) string { return strings.ReplaceAll(r.Replace(s), "{s}", x) }
	const hint = `(run pdp log verify of the previous PDP version on this trail)`
	return sub(`DO $one_copy$
DECLARE
	n    bigint;
	rows bigint;
	want bigint;
	bad  bigint;
BEGIN
	IF EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = to_regclass({hashes_str}) AND conname = '{retired}') THEN
		RETURN; -- in the layout already
	END IF;
	SELECT size INTO n FROM {head} FOR UPDATE;
	SELECT count(*) INTO rows FROM {hashes};
	IF rows > 0 OR EXISTS (SELECT 1 FROM {records} WHERE seq < n AND seq % 2 = 1 AND up IS NULL) THEN
		want := `+sub(`{idx0}`, "n")+`;
		IF rows <> want THEN
			RAISE EXCEPTION USING ERRCODE = 'data_corrupted', MESSAGE = format(
				'trail_hashes holds %s rows, a tree of %s records has %s stored hashes: not migrated `+hint+`', rows, n, want);
		END IF;
		SELECT min(s) INTO bad FROM generate_series(0, n - 1) AS s
			LEFT JOIN {records} r ON r.seq = s
			LEFT JOIN {hashes} h ON h.idx = `+sub(`{idx0}`, "s")+`
			WHERE r.seq IS NULL OR h.hash IS NULL OR h.hash <> r.leaf;
		IF bad IS NOT NULL THEN
			RAISE EXCEPTION USING ERRCODE = 'data_corrupted', MESSAGE = format(
				'record %s is missing or its leaf column differs from its stored hash in trail_hashes: not migrated `+hint+`', bad);
		END IF;
		UPDATE {records} r SET up = (SELECT string_agg(h.hash, ''::bytea ORDER BY h.idx) FROM {hashes} h
			WHERE h.idx > `+sub(`{idx0}`, "r.seq")+` AND h.idx <= `+sub(`{idx0}`, "r.seq")+` + `+sub(`{ones}`, "r.seq")+`)
		WHERE r.seq < n AND r.seq % 2 = 1;
	END IF;
	TRUNCATE {hashes};
	ALTER TABLE {hashes} DROP CONSTRAINT IF EXISTS {retired}, ADD CONSTRAINT {retired} CHECK (false);
END $one_copy$;`, "")
}

// retiredConstraint refuses the rows a PDP from before layout 1 would
// still write into trail_hashes: its appends fail (and write nothing)
// instead of leaving records without their up column.
const retiredConstraint = "trail_hashes_retired_see_trail_records_up"

// damaged marks a migration's refusal of a damaged trail with ErrDamaged.
func damaged(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "XX001" { // data_corrupted
		return fmt.Errorf("%w: %w", trail.ErrDamaged, err)
	}
	return err
}
