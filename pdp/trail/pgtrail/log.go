// # PostgreSQL store
//
// A [Log] keeps the trail in PostgreSQL so that many PDP replicas
// share one trail. It behaves like a [FileLog]: group-committed appends that
// are durable when Append returns, signed checkpoints, inclusion proofs, and
// a Verify that names the first record changed, dropped, inserted or
// reordered.
//
// Decision: one shared chain. All replicas append to ONE Merkle tree with one
// sequence of dense sequence numbers, so an auditor verifies a single
// history with a single key, and a proof for any decision works whichever
// replica recorded it. Each replica batches its own concurrent appends into
// one transaction (group commit), and the batches of all replicas are
// serialised by a row lock on the head row (SELECT … FOR UPDATE on
// trail_head): the batch that holds the lock reads the tree size, numbers
// its records from it, writes records (with their stored hashes) and the new
// size, and commits.
//
// Cost of that decision: the trail has the append throughput of one writer.
// Only one batch in the whole deployment is in flight at a time, and it holds
// the lock for about one client-server round trip plus the inserts (the lock
// is taken in the same pipeline as BEGIN, and the inserts, the head update
// and COMMIT go in one more), plus one more round trip when another replica
// committed the previous batch (this one then reads the O(log n) stored
// hashes it needs from the rows of trail_records that hold them). Adding replicas adds decision
// capacity, not trail capacity, and splits the callers into smaller batches:
// what scales trail throughput is batch size, which grows by itself under
// load because a replica's transaction takes every append that queued while
// it waited for the lock. Measured (BenchmarkPostgresAppend, 2 shared cores,
// local server with fsync off, so an upper bound): about 1,700 appends/s
// from one caller, 15,000/s from 32 callers on one replica (batches of ~31),
// 5,000-8,000/s from 32 callers spread over 3 replicas (batches of ~11). A
// replica that stalls while holding the lock stalls every replica: the log
// bounds each transaction by Timeout on the client and sets
// idle_in_transaction_session_timeout on its sessions, so the server
// releases the lock of a replica that vanished mid-transaction. The rejected
// alternative, a chain per replica, has no contention but leaves auditors
// several trees and no order between them.
//
// All replicas must use the same Origin and the same signing key: any of
// them may write a checkpoint, all checkpoints go into one table, and Verify
// checks them all under one verifier key. Checkpoint writers are serialised
// by a table lock on trail_checkpoints, which readers and appenders ignore.
//
// Tables, in Schema (default public): trail_records (seq, kind, id, time,
// body = the record's canonical bytes exactly as hashed, or with dict set
// their compression (compress.go), leaf = its Merkle leaf hash, pruned,
// dict, up = the interior stored hashes the record completes: hashes.go),
// trail_checkpoints (size, signed note, written_at) and trail_head (one
// row: the tree size, the seq of the trail's dictionary record, and the
// tree's root with the size it is of: headroot.go). trail_hashes held the
// stored hashes before layout 1 and is now empty; a constraint refuses
// the rows an older PDP would still write there, and tells the layout
// (migrate.go). kind,
// id and time are copies of what the canonical bytes hold, for the
// indexes; Verify checks that they agree. Retention (Prune) turns records
// into tombstones: body and dict NULL, pruned true, leaf and up kept.
//
// Durability is the server's: Append returns after COMMIT, which is durable
// when the server runs with fsync and synchronous_commit on.
package pgtrail

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/ciampdp/pdp/pdp/internal/pgkit"
	"github.com/ciampdp/pdp/pdp/trail"
)

// Options configures a Log. The zero value is valid apart
// from Signer, without which no checkpoints are written.
type Options struct {
	// Origin is the first line of every checkpoint. Default DefaultOrigin.
	// Every replica sharing the trail must use the same one.
	Origin string
	// Signer signs checkpoints. Every replica must sign with the same key.
	Signer note.Signer
	// VerifierKey, when set, is the key the signed checkpoints verify
	// under: a checkpoint is written only over a latest stored one whose
	// signature checks (a row planted in trail_checkpoints cannot steer
	// what is signed next).
	VerifierKey string
	// CheckpointInterval is how often Run writes a checkpoint while the
	// tree grows: it bounds how long a record stays unanchored. Default
	// DefaultCheckpointInterval.
	CheckpointInterval time.Duration
	// MaxBatch caps the records of one group-commit transaction. Default 4096.
	MaxBatch int
	// Schema is the SQL schema of the tables, created if absent. Default public.
	Schema string
	// Timeout bounds each piece of database work the log starts itself: a
	// group commit, a checkpoint, and the reads of the methods that take no
	// context (Get, one chunk of Scan, Checkpoints, Prove). Default 10s.
	Timeout time.Duration
	// Compression is how new records are stored: trail.CompressionOff
	// (the default, "") or trail.CompressionS2 or trail.CompressionZstd,
	// each record on its own with the trail's one dictionary (see
	// compress.go). Compressed rows are read whatever this says.
	Compression string
	// DictionarySize is how many bytes of records are gathered into the
	// dictionary. Default trail.DefaultDictionarySize.
	DictionarySize int
	// NoMigrate opens the tables without changing them (no DDL runs on a
	// trail that exists; migrate.go), for readers (pdp log, replay, audit)
	// beside replicas of an earlier version: a trail in the layout before
	// "one copy of each hash" is read as it is (its stored hashes from
	// trail_hashes), the layout being read again by each Verify and Prove,
	// and Append refuses.
	NoMigrate bool
	// Logger receives what the log reports beside its errors (the upgrade
	// step that gives the head its root). Default slog.Default().
	Logger *slog.Logger
}

var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// Validate reports options that cannot be used.
func (o Options) Validate() error {
	switch {
	case o.CheckpointInterval < 0:
		return fmt.Errorf("%w: negative checkpoint interval", trail.ErrBadOption)
	case o.MaxBatch < 0:
		return fmt.Errorf("%w: negative max batch", trail.ErrBadOption)
	case o.Timeout < 0 || o.Timeout > 24*time.Hour:
		return fmt.Errorf("%w: timeout %v not in [0, 24h]", trail.ErrBadOption, o.Timeout)
	case o.Schema != "" && !schemaName.MatchString(o.Schema):
		return fmt.Errorf("%w: schema %q is not a lower-case SQL identifier", trail.ErrBadOption, o.Schema)
	case o.Compression != "" && o.Compression != trail.CompressionOff &&
		o.Compression != trail.CompressionS2 && o.Compression != trail.CompressionZstd:
		return fmt.Errorf("%w: compression %q is not s2, zstd or off", trail.ErrBadOption, o.Compression)
	case o.DictionarySize < 0 || o.DictionarySize > 8<<20:
		return fmt.Errorf("%w: dictionary size %d not in [0, 8 MiB]", trail.ErrBadOption, o.DictionarySize)
	}
	return nil
}

func (o Options) withDefaults() Options {
	if o.Origin == "" {
		o.Origin = trail.DefaultOrigin
	}
	if o.CheckpointInterval == 0 {
		o.CheckpointInterval = trail.DefaultCheckpointInterval
	}
	if o.MaxBatch == 0 {
		o.MaxBatch = 4096
	}
	if o.Schema == "" {
		o.Schema = "public"
	}
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Compression == "" {
		o.Compression = trail.CompressionOff
	}
	if o.DictionarySize == 0 {
		o.DictionarySize = trail.DefaultDictionarySize
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Log is a trail stored in PostgreSQL and shared by every PDP
// replica that opens the same database and schema. It is safe for
// concurrent use.
type Log struct {
	opts Options
	pool *pgxpool.Pool
	sql  pgSQL

	size atomic.Uint64 // largest tree size seen; others' appends make it lag

	// front caches the stored hashes of the complete subtrees of a tree of
	// frontN records: all an append at frontN needs from earlier records,
	// and what a tree hash of frontN reads. Stored hashes never change, so
	// the cache is right whenever the tree still has frontN records.
	frontMu sync.Mutex
	frontN  int64
	front   map[int64]tlog.Hash
	// frontRoot is the root of the tree of frontN records, which this
	// replica appended last: every later tree must extend it (extendsOwn).
	frontRoot tlog.Hash

	reqs      chan *pgReq
	closing   chan struct{}
	done      chan struct{}
	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error

	records, batches atomic.Uint64
	cpErr            atomic.Pointer[error]
	cpHook           atomic.Pointer[func(signed []byte)] // OnCheckpoint
	// cpHigh is the size of the largest checkpoint this Log signed or
	// found latest: the latest stored one is never smaller (checkpoints
	// are only added; prune keeps them), so a smaller one means rows of
	// trail_checkpoints were deleted.
	cpHigh    atomic.Int64
	scanChunk int

	dicts    sync.Map               // int64 seq → *trail.Dictionary, every dictionary read so far
	cur      atomic.Pointer[pgDict] // the dictionary the committer compresses with; nil: none
	sample   []byte                 // committer only: record tails gathered for a dictionary
	prepared *preparedDict          // committer only: a dictionary to store at the next batch
}

type pgReq struct {
	recs []pgPending
	done chan appendResult // buffered, 1
}

// pgPending is a record encoded by its caller with seq 0; the committer
// splices in the sequence number (seqPrefix).
type pgPending struct {
	kind, id string
	time     time.Time
	enc      []byte
	// z, when set, is enc's tail compressed with dictionary record dict
	// (by the committer).
	z    []byte
	dict int64
	// key, when set, is stored in trail_sidecar_spools with the record;
	// skip is set by the committer when the key was stored already;
	// foreign with it when the sidecar id belongs to another application.
	key           *SpoolKey
	skip, foreign bool
}

// pgSQL holds the statements, with the schema's table names filled in.
type pgSQL struct {
	ddl, lockHead, insRecords, setHead, readHashes, size,
	lockCheckpoints, lastCheckpoint, insCheckpoint, checkpoints,
	selRecords, bySeq, byID, allRecords, strayHashes, prune, unprunable,
	storedKeys, insKeys, spoolHigh, sidecarOwner, sidecarOwners,
	selPruneZ, pruneSeqs, headDict string
	legacyHashes, legacyAll string // the stored hashes before layout 1
	// layout reads what the tables are (readLayout); present whether the
	// trail exists (a NoMigrate open runs no DDL on one that does).
	layout, present string
	// headRoot reads the head's size and the tree it keeps (root_size,
	// root); headNoRoot is it for tables without those columns
	// (NoMigrate); setRoot, rooted, lockHeadTable and addRooted are the
	// upgrade step that gives the head its root (upgradeRoot).
	headRoot, headNoRoot, setRoot    string
	rooted, lockHeadTable, addRooted string
	// beyond reads the head's size with the last record and the largest
	// checkpoint, in one snapshot (rowsBeyond).
	beyond                     string
	allRecordsNoUp, lockTables string
	// records, hashes and head are the quoted table names.
	records, hashes, head string
}

func newSQL(schema string) pgSQL {
	t := func(name string) string { return pgx.Identifier{schema, name}.Sanitize() }
	rec, hs, cps, head := t("trail_records"), t("trail_hashes"), t("trail_checkpoints"), t("trail_head")
	spools := t("trail_sidecar_spools")
	const cols = "seq, kind, id, time, body, leaf, pruned, dict, up"
	// colsNoUp reads tables in the layout before 1 (NoMigrate), which may
	// lack the up column; Get and Scan do not need it.
	const colsNoUp = "seq, kind, id, time, body, leaf, pruned, dict, NULL::bytea"
	ddl := ""
	if schema != "public" {
		ddl = "CREATE SCHEMA IF NOT EXISTS " + pgx.Identifier{schema}.Sanitize() + ";\n"
	}
	// has is true when table has column; lacks when something the trail
	// needs is absent and must be created or altered.
	has := func(table, column string) string {
		return fmt.Sprintf("EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attname = '%s' AND NOT attisdropped)",
			sqlString(table), column)
	}
	idx := func(name string) string { return sqlString(pgx.Identifier{schema, name}.Sanitize()) }
	retired := fmt.Sprintf("EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = to_regclass(%s) AND conname = '%s')",
		sqlString(hs), retiredConstraint)
	lacks := strings.Join([]string{
		"to_regclass(" + sqlString(rec) + ") IS NULL", "to_regclass(" + sqlString(cps) + ") IS NULL",
		"to_regclass(" + sqlString(spools) + ") IS NULL", "to_regclass(" + idx("trail_records_id") + ") IS NULL",
		"to_regclass(" + idx("trail_records_kind_time") + ") IS NULL", "to_regclass(" + idx("trail_sidecar_spools_owner") + ") IS NULL",
		"NOT " + has(head, "dict"), "NOT " + has(head, "root"), "NOT " + has(head, "root_size"),
		"NOT " + has(rec, "dict"), "NOT " + has(rec, "up"), "NOT " + retired,
	}, "\n\t   OR ")
	ddl += fmt.Sprintf(`
CREATE TABLE IF NOT EXISTS %[4]s (one int PRIMARY KEY CHECK (one = 1), size bigint NOT NULL, dict bigint,
	root_size bigint, root bytea);
DO $head_first$ BEGIN
	-- CREATE INDEX and ALTER TABLE lock trail_records even when what they
	-- create exists, and an append (of any PDP version) holds the head row,
	-- then writes trail_records: an opener that must change anything takes
	-- the head first, so that it waits behind a running append instead of
	-- deadlocking with it. An opener with nothing to change locks nothing.
	IF %[6]s THEN
		LOCK TABLE %[4]s IN ACCESS EXCLUSIVE MODE;
	END IF;
	-- A head row deleted is inserted again as the empty tree, with its
	-- root where the table keeps one, so that trail_head_root_of_size
	-- holds and the opener's rowsBeyond names any rows beyond it.
	IF NOT EXISTS (SELECT 1 FROM %[4]s) THEN
		IF %[15]s THEN
			INSERT INTO %[4]s (one, size, root_size, root) VALUES (1, 0, 0, %[16]s);
		ELSE
			INSERT INTO %[4]s (one, size) VALUES (1, 0);
		END IF;
	END IF;
END $head_first$;
CREATE TABLE IF NOT EXISTS %[1]s (
	seq    bigint PRIMARY KEY,
	kind   text NOT NULL,
	id     text NOT NULL,
	time   timestamptz NOT NULL,
	body   bytea,
	leaf   bytea NOT NULL,
	pruned boolean NOT NULL DEFAULT false,
	dict   bigint,
	up     bytea
);
CREATE TABLE IF NOT EXISTS %[2]s (idx bigint PRIMARY KEY, hash bytea NOT NULL,
	CONSTRAINT trail_hashes_retired_see_trail_records_up CHECK (false)); -- retiredConstraint
CREATE TABLE IF NOT EXISTS %[3]s (
	size       bigint PRIMARY KEY,
	signed     text NOT NULL,
	written_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS %[5]s (
	application text NOT NULL,
	sidecar     text NOT NULL,
	spool_seq   bigint NOT NULL,
	record_seq  bigint NOT NULL,
	PRIMARY KEY (application, sidecar, spool_seq)
);
DO $alter$ BEGIN
	IF to_regclass(%[7]s) IS NULL THEN
		CREATE INDEX IF NOT EXISTS trail_records_id ON %[1]s (id);
	END IF;
	IF to_regclass(%[8]s) IS NULL THEN
		CREATE INDEX IF NOT EXISTS trail_records_kind_time ON %[1]s (kind, time) WHERE NOT pruned;
	END IF;
	IF to_regclass(%[9]s) IS NULL THEN
		CREATE INDEX IF NOT EXISTS trail_sidecar_spools_owner ON %[5]s (sidecar, record_seq);
	END IF;
	IF NOT %[10]s THEN
		ALTER TABLE %[4]s ADD COLUMN IF NOT EXISTS dict bigint;
	END IF;
	IF NOT %[11]s OR NOT %[12]s THEN
		ALTER TABLE %[4]s ADD COLUMN IF NOT EXISTS root_size bigint, ADD COLUMN IF NOT EXISTS root bytea;
	END IF;
	IF NOT %[13]s THEN
		ALTER TABLE %[1]s ADD COLUMN IF NOT EXISTS dict bigint;
	END IF;
	IF NOT %[14]s THEN
		ALTER TABLE %[1]s ADD COLUMN IF NOT EXISTS up bytea;
	END IF;
END $alter$;
`, rec, hs, cps, head, spools, lacks,
		idx("trail_records_id"), idx("trail_records_kind_time"), idx("trail_sidecar_spools_owner"),
		has(head, "dict"), has(head, "root"), has(head, "root_size"), has(rec, "dict"), has(rec, "up"),
		has(head, "root")+" AND "+has(head, "root_size"), emptyRoot)
	rooted := fmt.Sprintf("EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = to_regclass(%s) AND conname = '%s')",
		sqlString(head), rootedConstraint)
	layout := fmt.Sprintf("SELECT %s, %s, %s, %s", retired, has(rec, "up"), has(head, "root"), rooted)
	present := fmt.Sprintf("SELECT to_regclass(%s) IS NOT NULL AND to_regclass(%s) IS NOT NULL", sqlString(head), sqlString(rec))
	return pgSQL{
		ddl:      ddl + migration(rec, hs, head),
		layout:   layout,
		present:  present,
		lockHead: "SELECT size, dict, root_size, root FROM " + head + " FOR UPDATE",
		insRecords: "INSERT INTO " + rec + " (seq, kind, id, time, body, leaf, dict, up) SELECT * FROM " +
			"unnest($1::bigint[], $2::text[], $3::text[], $4::timestamptz[], $5::bytea[], $6::bytea[], $7::bigint[], $8::bytea[])",
		setHead:       "UPDATE " + head + " SET size = $1, dict = coalesce($3, dict), root_size = $1, root = $4 WHERE size = $2",
		headRoot:      "SELECT size, root_size, root FROM " + head,
		headNoRoot:    "SELECT size, NULL::bigint, NULL::bytea FROM " + head,
		setRoot:       "UPDATE " + head + " SET root_size = size, root = $1 WHERE size = $2",
		rooted:        "SELECT " + rooted,
		beyond:        "SELECT size, (SELECT max(seq) FROM " + rec + "), (SELECT max(size) FROM " + cps + ") FROM " + head,
		lockHeadTable: "LOCK TABLE " + head + " IN ACCESS EXCLUSIVE MODE",
		addRooted: "ALTER TABLE " + head + " ADD CONSTRAINT " + rootedConstraint +
			" CHECK (root_size IS NOT NULL AND root IS NOT NULL AND size >= 0 AND root_size = size AND octet_length(root) = 32)",
		readHashes:      "SELECT seq, leaf, up FROM " + rec + " WHERE seq = ANY($1)",
		legacyHashes:    "SELECT idx, hash FROM " + hs + " WHERE idx = ANY($1)",
		legacyAll:       "SELECT idx, hash FROM " + hs + " ORDER BY idx",
		size:            "SELECT size FROM " + head,
		headDict:        "SELECT dict FROM " + head,
		lockCheckpoints: "LOCK TABLE " + cps + " IN EXCLUSIVE MODE",
		lastCheckpoint:  "SELECT size, signed FROM " + cps + " ORDER BY size DESC LIMIT 1",
		insCheckpoint:   "INSERT INTO " + cps + " (size, signed) VALUES ($1, $2)",
		checkpoints:     "SELECT size, signed FROM " + cps + " ORDER BY size",
		selRecords:      "SELECT " + cols + " FROM " + rec + " WHERE seq >= $1 AND seq < $2 ORDER BY seq LIMIT $3",
		bySeq:           "SELECT " + cols + " FROM " + rec + " WHERE seq = $1",
		byID:            "SELECT " + cols + " FROM " + rec + " WHERE id = $1 ORDER BY seq LIMIT 1",
		allRecords:      "SELECT " + cols + " FROM " + rec + " ORDER BY seq",
		allRecordsNoUp:  "SELECT " + colsNoUp + " FROM " + rec + " ORDER BY seq",
		lockTables:      "LOCK TABLE " + head + ", " + rec + ", " + hs + " IN ACCESS SHARE MODE",
		strayHashes:     "SELECT count(*) FROM " + hs,
		storedKeys: "SELECT application, sidecar, spool_seq FROM " + spools +
			" WHERE (application, sidecar, spool_seq) IN (SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[]))",
		insKeys: "INSERT INTO " + spools + " (application, sidecar, spool_seq, record_seq) SELECT * FROM " +
			"unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[])",
		spoolHigh:    "SELECT coalesce(max(spool_seq), 0) FROM " + spools + " WHERE application = $1 AND sidecar = $2",
		sidecarOwner: "SELECT application FROM " + spools + " WHERE sidecar = $1 ORDER BY record_seq LIMIT 1",
		sidecarOwners: "SELECT DISTINCT ON (sidecar) sidecar, application FROM " + spools +
			" WHERE sidecar = ANY($1) ORDER BY sidecar, record_seq",
		// A record is pruned only while its body still hashes to its leaf
		// (RFC 6962: SHA-256 of 0x00 || body): pruning never launders a
		// tampered record into a tombstone that verifies. Compressed rows
		// (dict set) are checked by the log itself (pruneCompressed).
		prune: "UPDATE " + rec + " SET body = NULL, pruned = true WHERE seq IN (SELECT seq FROM " + rec +
			` WHERE kind = $1 AND time < $2 AND NOT pruned AND dict IS NULL AND leaf = sha256('\x00'::bytea || body) ORDER BY seq LIMIT $3)`,
		unprunable: "SELECT count(*) FROM " + rec + " WHERE kind = $1 AND time < $2 AND NOT pruned AND dict IS NULL" +
			` AND (body IS NULL OR leaf <> sha256('\x00'::bytea || body))`,
		selPruneZ: "SELECT seq, body, leaf, dict FROM " + rec + " WHERE kind = $1 AND time < $2 AND NOT pruned" +
			" AND dict IS NOT NULL AND seq > $3 ORDER BY seq LIMIT $4 FOR UPDATE",
		pruneSeqs: "UPDATE " + rec + " SET body = NULL, dict = NULL, pruned = true WHERE seq = ANY($1) AND NOT pruned",
		records:   rec,
		hashes:    hs,
		head:      head,
	}
}

// SchemaLock serialises the table creation of replicas starting together;
// the policy archive in the same schema (pdp/audit) takes it too.
const SchemaLock = 0x7064707472616c // "pdptral"

// Open connects to the database at url (a pgx/libpq URL), creates
// the schema and tables if they are absent, and starts the group committer.
func Open(ctx context.Context, url string, opts Options) (*Log, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	sql := newSQL(opts.Schema)
	schema := pgkit.Schema{LockKey: SchemaLock, DDL: sql.ddl, Params: map[string]string{
		// A replica that vanishes mid-transaction must not hold the head
		// lock for longer than a commit may take.
		"idle_in_transaction_session_timeout": strconv.FormatInt(opts.Timeout.Milliseconds(), 10),
	}}
	if opts.NoMigrate { // readers run no DDL on a trail that exists
		schema.Present = sql.present
		// Get and Scan do not read the up column, which an older trail lacks.
		sql.selRecords, sql.bySeq, sql.byID = noUp(sql.selRecords), noUp(sql.bySeq), noUp(sql.byID)
	}
	pool, err := pgkit.Open(ctx, url, schema)
	if err != nil {
		return nil, fmt.Errorf("trail: %w", damaged(err))
	}
	l := &Log{opts: opts, pool: pool, sql: sql, frontN: -1, scanChunk: 1024}
	if !opts.NoMigrate {
		err := l.upgradeRoot(ctx)
		if err == nil {
			err = l.rowsBeyond(ctx, pool)
		}
		if err != nil {
			pool.Close()
			return nil, fmt.Errorf("trail: postgres: %w", err)
		}
	}
	if _, err := l.SizeContext(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("trail: postgres: create tables: %w", err)
	}
	if err := l.openDictionary(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	// The latest checkpoint now: one found smaller later was deleted.
	var last int64
	var signed string
	switch err := pool.QueryRow(ctx, sql.lastCheckpoint).Scan(&last, &signed); {
	case err == nil:
		l.noteCheckpoint(last)
	case !errors.Is(err, pgx.ErrNoRows):
		pool.Close()
		return nil, fmt.Errorf("trail: postgres: read the latest checkpoint: %w", err)
	}
	l.reqs = make(chan *pgReq)
	l.closing = make(chan struct{})
	l.done = make(chan struct{})
	go l.commitLoop()
	return l, nil
}

// Append writes recs as consecutive records and returns their sequence
// numbers once their transaction has committed. Concurrent calls share one
// transaction; a failed transaction fails every call in it, and writes
// nothing. Seq fields are assigned by the log. ctx bounds only the wait to
// hand the records to the committer: once accepted, Append waits for the
// outcome (at most Timeout). An error after COMMIT was sent (the connection
// broke) leaves the outcome unknown: the records may be in the trail.
func (l *Log) Append(ctx context.Context, recs ...trail.Record) ([]uint64, error) {
	return l.append(ctx, nil, recs)
}

// append is Append, and AppendSpool when keys are given.
func (l *Log) append(ctx context.Context, keys []SpoolKey, recs []trail.Record) ([]uint64, error) {
	if len(recs) == 0 {
		return nil, nil
	}
	if l.opts.NoMigrate {
		return nil, fmt.Errorf("%w: append: the trail was opened without migrating its tables (for reading)", trail.ErrBadOption)
	}
	req := &pgReq{recs: make([]pgPending, len(recs)), done: make(chan appendResult, 1)}
	for i, rec := range recs {
		if rec.Pruned || rec.Leaf != "" {
			return nil, fmt.Errorf("trail: append: record %q is a tombstone", rec.ID)
		}
		rec.Seq = 0
		enc, err := trail.Canonical(rec) // off the committer, in parallel
		if err != nil {
			return nil, err
		}
		// Compressed by the committer (write), not here: one goroutine
		// compresses a batch for less CPU than the callers each (the
		// encoder's table is allocated per goroutine; BENCHMARKS.md).
		req.recs[i] = pgPending{kind: rec.Kind, id: rec.ID, time: rec.Time.UTC(), enc: enc}
		if keys != nil {
			req.recs[i].key = &keys[i]
		}
	}
	if l.closed.Load() {
		return nil, trail.ErrClosed
	}
	select {
	case l.reqs <- req:
	case <-l.closing:
		return nil, trail.ErrClosed
	case <-ctx.Done():
		return nil, fmt.Errorf("trail: append: %w", ctx.Err())
	}
	res := <-req.done
	return res.seqs, res.err
}

// seqPrefix starts the canonical encoding of every record with Seq 0: the
// canonical bytes of the same record with Seq n differ only in the digits.
const seqPrefix = `{"seq":0,`

func withSeq(enc []byte, seq uint64) ([]byte, error) {
	if !bytes.HasPrefix(enc, []byte(seqPrefix)) {
		return nil, fmt.Errorf("trail: canonical record does not start with %s", seqPrefix)
	}
	out := make([]byte, 0, len(enc)+20)
	out = strconv.AppendUint(append(out, `{"seq":`...), seq, 10)
	return append(append(out, ','), enc[len(seqPrefix):]...), nil
}

// commitLoop is this replica's single writer: it takes the first queued
// append, and commits it together with every append that queued before its
// transaction got the head lock.
func (l *Log) commitLoop() {
	defer close(l.done)
	for {
		select {
		case r := <-l.reqs:
			l.commit(r)
		case <-l.closing:
			for { // appends already handed over are still committed
				select {
				case r := <-l.reqs:
					l.commit(r)
				default:
					return
				}
			}
		}
	}
}

// gather adds the appends queued now to batch, up to MaxBatch records.
func (l *Log) gather(batch []*pgReq) []*pgReq {
	n := 0
	for _, r := range batch {
		n += len(r.recs)
	}
	for n < l.opts.MaxBatch {
		select {
		case r := <-l.reqs:
			batch, n = append(batch, r), n+len(r.recs)
		default:
			return batch
		}
	}
	return batch
}

func (l *Log) commit(first *pgReq) {
	ctx, cancel := context.WithTimeout(context.Background(), l.opts.Timeout)
	defer cancel()
	n0, batch, err := l.write(ctx, []*pgReq{first})
	next := uint64(n0)
	for _, r := range batch {
		if err != nil {
			r.done <- appendResult{err: fmt.Errorf("trail: postgres append: %w", err)}
			continue
		}
		seqs := make([]uint64, len(r.recs))
		for i := range seqs {
			if r.recs[i].foreign {
				seqs[i] = Refused // another application's sidecar id
				continue
			}
			if r.recs[i].skip {
				seqs[i] = Skipped // stored already
				continue
			}
			seqs[i] = next
			next++
		}
		r.done <- appendResult{seqs: seqs}
	}
	if err == nil {
		l.records.Add(next - uint64(n0))
		l.batches.Add(1)
		l.gatherSample(batch) // after the callers are answered: enc is the log's own
	}
}

// write takes the head lock, adds to batch the appends that queued while it
// waited (gather), commits them, and returns the batch and the sequence
// number of its first record (after the dictionary record when the batch
// stores one first); on error every append in the batch failed.
// Round trips: BEGIN with the head lock, the frontier hashes (only when
// another replica appended since this one last did), then the inserts, the
// head update and COMMIT in one pipeline. The frontier hashes must hash to
// the head's root (headroot.go): that check costs no round trip.
func (l *Log) write(ctx context.Context, batch []*pgReq) (n0 int64, _ []*pgReq, err error) {
	conn, err := l.pool.Acquire(ctx)
	if err != nil {
		return 0, batch, err
	}
	// A connection left in a transaction is rolled back, or destroyed by
	// Release if that fails.
	defer conn.Release()
	defer rollback(conn)

	var headDict, rootSize pgtype.Int8
	var headRoot []byte
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(l.sql.lockHead).QueryRow(func(row pgx.Row) error { return row.Scan(&n0, &headDict, &rootSize, &headRoot) })
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return 0, batch, fmt.Errorf("lock head: %w", err)
	}
	if err := rootUnusable(n0, rootSize, headRoot); err != nil { // before anything reads the rows
		return 0, batch, err
	}
	// Under the head lock no commit moves the head: every size noted is at
	// most n0.
	if err := cutBelow(n0, l.size.Load()); err != nil { // sequence numbers already answered
		return 0, batch, err
	}
	batch = l.gather(batch)
	bd, fresh, err := l.batchDictionary(ctx, conn, headDict)
	if err != nil {
		return 0, batch, err
	}

	hs := l.hashSource(ctx, conn, tlog.StoredHashCount(n0), n0, false)
	own, ownRoot := l.ownTree()
	tip := frontier(n0)
	if own > 0 && own < n0 { // another replica appended since: in the same read
		tip = append(tip, frontier(own)...)
	}
	if _, err := hs.ReadHashes(tip); err != nil {
		return 0, batch, err
	}
	// The new root is built on the hashes at the tip: they must be the
	// tree the head's root is of, or the append would re-base the root
	// over rows changed since (headroot.go).
	if err := rootMismatch(n0, headRoot, hs); err != nil {
		return 0, batch, err
	}
	if err := extendsOwn(own, ownRoot, n0, hs); err != nil {
		return 0, batch, err
	}
	// Under the head lock: no other transaction stores a key meanwhile.
	if err := l.skipStored(ctx, conn, batch); err != nil {
		return 0, batch, fmt.Errorf("spool keys: %w", err)
	}
	var (
		seqs          []int64
		kinds, ids    []string
		times         []time.Time
		bodies, leafs [][]byte
		ups           [][]byte
		dicts         []pgtype.Int8
		keyApps       []string
		keySidecars   []string
		keySeqs       []int64
		keyRecs       []int64
	)
	add := func(p *pgPending) error {
		seq := n0 + int64(len(seqs))
		if p.key != nil {
			keyApps, keySidecars = append(keyApps, p.key.Application), append(keySidecars, p.key.Sidecar)
			keySeqs, keyRecs = append(keySeqs, int64(p.key.Seq)), append(keyRecs, seq)
		}
		canon, err := withSeq(p.enc, uint64(seq))
		if err != nil {
			return err
		}
		leaf := tlog.RecordHash(canon)
		stored, err := tlog.StoredHashesForRecordHash(seq, leaf, hs)
		if err != nil {
			return fmt.Errorf("stored hashes for record %d: %w", seq, err)
		}
		hs.pending = append(hs.pending, stored...)
		body, dict := canon, pgtype.Int8{}
		if p.z != nil {
			body, dict = p.z, pgtype.Int8{Int64: p.dict, Valid: true}
		}
		seqs, kinds, ids, times = append(seqs, seq), append(kinds, p.kind), append(ids, p.id), append(times, p.time)
		bodies, leafs, dicts = append(bodies, body), append(leafs, leaf[:]), append(dicts, dict)
		ups = append(ups, packUp(stored))
		return nil
	}
	setDict := pgtype.Int8{}
	if fresh != nil { // the trail's dictionary, first in the batch
		if err := add(&pgPending{kind: fresh.rec.Kind, id: fresh.rec.ID, time: fresh.rec.Time.UTC(), enc: fresh.enc}); err != nil {
			return 0, batch, err
		}
		setDict = pgtype.Int8{Int64: n0, Valid: true}
		bd = &pgDict{seq: n0, d: fresh.d}
	}
	first := n0 + int64(len(seqs))
	for _, r := range batch {
		for i := range r.recs {
			p := &r.recs[i]
			if p.skip {
				continue
			}
			switch {
			case bd == nil || p.kind == trail.KindDictionary:
				p.z = nil
			default:
				bd.compress(p)
			}
			if err := add(p); err != nil {
				return 0, batch, err
			}
		}
	}
	n1 := n0 + int64(len(seqs))
	// The head keeps the tree's root: the only copy of the newest records'
	// hashes beside the rows, which Verify checks them against.
	root, err := tlog.TreeHash(n1, hs)
	if err != nil {
		return 0, batch, fmt.Errorf("tree hash: %w", err)
	}

	b = &pgx.Batch{}
	b.Queue(l.sql.insRecords, seqs, kinds, ids, times, bodies, leafs, dicts, ups)
	if len(keyApps) > 0 {
		b.Queue(l.sql.insKeys, keyApps, keySidecars, keySeqs, keyRecs)
	}
	b.Queue(l.sql.setHead, n1, n0, setDict, root[:]).Exec(func(ct pgconn.CommandTag) error {
		if ct.RowsAffected() != 1 { // cannot happen while the row lock holds
			return fmt.Errorf("%w: head row did not move from %d", trail.ErrDamaged, n0)
		}
		return nil
	})
	b.Queue("COMMIT")
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return 0, batch, planted(err, n0)
	}
	if st := conn.Conn().PgConn().TxStatus(); st != 'I' {
		return 0, batch, fmt.Errorf("transaction not committed (status %c)", st)
	}

	// The stored hashes of n1's complete subtrees were all read or written
	// by this batch.
	front := make(map[int64]tlog.Hash)
	for _, idx := range frontier(n1) {
		if h, ok := hs.lookup(idx); ok {
			front[idx] = h
		}
	}
	l.frontMu.Lock()
	l.frontN, l.front, l.frontRoot = n1, front, root
	l.frontMu.Unlock()
	l.noteSize(uint64(n1))
	if fresh != nil {
		l.adopt(n0, fresh.d)
	}
	return first, batch, nil
}

// planted marks as ErrDamaged an insert of records from n0 on that
// collided with a row already there: under the head lock only rows
// written outside the PDP (or a head cut) lie beyond the head.
func planted(err error, n0 int64) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" && pe.ConstraintName == "trail_records_pkey" {
		return fmt.Errorf("%w: a record from %d on exists already beyond the tree head of %d records: "+
			"rows were inserted or the head was cut outside the PDP (run pdp log verify): %w", trail.ErrDamaged, n0, n0, err)
	}
	return err
}

func rollback(c *pgxpool.Conn) {
	if c.Conn().IsClosed() || c.Conn().PgConn().TxStatus() == 'I' {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, _ = c.Exec(ctx, "ROLLBACK")
}

// Close stops the committer after the appends it has accepted, writes a
// final checkpoint when a signer is configured, and closes the pool.
func (l *Log) Close() error {
	l.closeOnce.Do(func() {
		close(l.closing)
		<-l.done
		if l.opts.Signer != nil {
			ctx, cancel := l.opContext()
			_, l.closeErr = l.checkpoint(ctx)
			cancel()
		}
		l.closed.Store(true)
		l.pool.Close()
	})
	return l.closeErr
}

// appendResult is the outcome of one Append call.
type appendResult struct {
	seqs []uint64
	err  error
}

// sqlString is s as an SQL string literal.
func sqlString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
