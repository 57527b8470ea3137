package pgtrail

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/ciampdp/pdp/pdp/trail"
)

// Compressed rows (Options.Compression s2 or zstd).
//
// A trail has at most one dictionary, a record of kind trail.dictionary in
// the tree like any other (never compressed, never pruned), and
// trail_head.dict holds its seq. A replica with compression on and no
// dictionary gathers the tails (the canonical bytes after {"seq":N,) of
// the records it stores until it has DictionarySize bytes, makes a
// trail.Dictionary of them, and stores its record first in its next
// batch, under the head lock and only while trail_head.dict is still
// NULL, setting it in the same transaction: when replicas race, the first
// to take the lock makes the trail's dictionary and the others drop
// theirs. Every batch reads trail_head.dict with the head lock, so a
// replica that finds a dictionary it does not know opens it there, and
// compresses with it from then on. The committer compresses every record
// of a batch, under the head lock, once the dictionary is decided: one
// warm goroutine compresses for less CPU than the callers' goroutines each
// would (BENCHMARKS.md, "PostgreSQL trail: one copy of each hash").
//
// A compressed row holds in body its tail compressed with the dictionary
// and in dict the dictionary record's seq; its canonical bytes are
// {"seq":<seq column>, followed by the expansion. Leaf hashes, stored
// hashes, checkpoints and proofs are of the canonical bytes, as for the
// plain rows (dict NULL) written before or with compression off, which
// stay as they are. The dictionary's codec is the one of the replica that
// made it: a replica configured for the other codec compresses with it
// all the same (both read every row).

// pgDict is a dictionary record and the dictionary it holds.
type pgDict struct {
	seq int64
	d   *trail.Dictionary
}

// preparedDict is a dictionary made from a sample, its record not stored
// yet: enc is the record's canonical bytes with seq 0.
type preparedDict struct {
	d   *trail.Dictionary
	rec trail.Record
	enc []byte
}

func (l *Log) compressing() bool { return l.opts.Compression != trail.CompressionOff }

// compress stores p compressed with d when that is smaller than its tail.
func (d *pgDict) compress(p *pgPending) {
	tail := p.enc[len(seqPrefix):]
	if z := d.d.Compress(tail); len(z) < len(tail) {
		p.z, p.dict = z, d.seq
		return
	}
	p.z = nil
}

// batchDictionary decides, under the head lock, the dictionary a batch
// is compressed with (nil: none) and the one to store first in it (nil:
// none). head is trail_head.dict as the lock read it.
func (l *Log) batchDictionary(ctx context.Context, q querier, head pgtype.Int8) (*pgDict, *preparedDict, error) {
	if !l.compressing() {
		return nil, nil, nil
	}
	cur := l.cur.Load()
	if !head.Valid {
		if cur != nil { // the trail was replaced under this replica: gather anew
			l.cur.Store(nil)
		}
		return nil, l.prepared, nil
	}
	if cur != nil && cur.seq == head.Int64 {
		return cur, nil, nil
	}
	d, err := l.loadDictionary(ctx, q, head.Int64, true)
	if err != nil {
		return nil, nil, err
	}
	nd := &pgDict{seq: head.Int64, d: d}
	l.dicts.Store(head.Int64, d)
	l.cur.Store(nd)
	l.sample, l.prepared = nil, nil
	return nd, nil, nil
}

// openDictionary reads the trail's dictionary at Open, when compressing,
// so that the first batch is compressed.
func (l *Log) openDictionary(ctx context.Context) error {
	if !l.compressing() {
		return nil
	}
	var head pgtype.Int8
	if err := l.pool.QueryRow(ctx, l.sql.headDict).Scan(&head); err != nil {
		return fmt.Errorf("trail: postgres: read the head: %w", err)
	}
	if !head.Valid {
		return nil
	}
	d, err := l.loadDictionary(ctx, l.pool, head.Int64, true)
	if err != nil {
		return fmt.Errorf("%w (the trail's dictionary, trail_head.dict; check the trail with pdp log verify; "+
			"trail.compression off starts without it)", err)
	}
	l.dicts.Store(head.Int64, d)
	l.cur.Store(&pgDict{seq: head.Int64, d: d})
	return nil
}

// adopt makes a dictionary this replica stored at seq the one its
// committer compresses with.
func (l *Log) adopt(seq int64, d *trail.Dictionary) {
	l.dicts.Store(seq, d)
	l.cur.Store(&pgDict{seq: seq, d: d})
	l.prepared = nil
}

// gatherSample adds the tails of the records a committed batch stored to
// the sample, and once it holds DictionarySize bytes prepares the
// dictionary for the next batch. Committer only.
func (l *Log) gatherSample(batch []*pgReq) {
	if !l.compressing() || l.cur.Load() != nil || l.prepared != nil {
		return
	}
	size := l.opts.DictionarySize
	for _, r := range batch {
		for _, p := range r.recs {
			if len(l.sample) >= size {
				break
			}
			if !p.skip && p.kind != trail.KindDictionary {
				l.sample = append(l.sample, p.enc[len(seqPrefix):]...)
			}
		}
	}
	if len(l.sample) < size {
		return
	}
	d, rec, err := trail.NewDictionary(l.opts.Compression, l.sample, size, time.Now())
	l.sample = nil
	if err != nil {
		return // a sample too small for a dictionary: gather another
	}
	enc, err := trail.Canonical(rec)
	if err != nil {
		return
	}
	l.prepared = &preparedDict{d: d, rec: rec, enc: enc}
}

// dictionary returns the dictionary in record seq, read once per Log
// (within Timeout).
func (l *Log) dictionary(ctx context.Context, seq int64) (*trail.Dictionary, error) {
	if v, ok := l.dicts.Load(seq); ok {
		return v.(*trail.Dictionary), nil
	}
	ctx, cancel := context.WithTimeout(ctx, l.opts.Timeout)
	defer cancel()
	d, err := l.loadDictionary(ctx, l.pool, seq, false)
	if err != nil {
		return nil, err
	}
	v, _ := l.dicts.LoadOrStore(seq, d)
	return v.(*trail.Dictionary), nil
}

// loadDictionary reads and opens the dictionary record seq.
func (l *Log) loadDictionary(ctx context.Context, q querier, seq int64, forWriting bool) (*trail.Dictionary, error) {
	rows, err := q.Query(ctx, l.sql.bySeq, seq)
	if err != nil {
		return nil, fmt.Errorf("trail: read dictionary record %d: %w", seq, err)
	}
	r, err := pgx.CollectExactlyOneRow(rows, func(row pgx.CollectableRow) (pgRow, error) {
		var r pgRow
		return r, row.Scan(r.dest()...)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%w: dictionary record %d is missing", trail.ErrDictionary, seq)
	}
	if err != nil {
		return nil, fmt.Errorf("trail: read dictionary record %d: %w", seq, err)
	}
	return openDictionaryRow(&r, forWriting)
}

// openDictionaryRow opens the dictionary a row holds: a plain row of kind
// trail.dictionary whose body is its canonical record.
func openDictionaryRow(r *pgRow, forWriting bool) (*trail.Dictionary, error) {
	if r.pruned || r.dict.Valid || r.kind != trail.KindDictionary || r.body == nil {
		return nil, fmt.Errorf("%w: record %d is not a dictionary", trail.ErrDictionary, r.seq)
	}
	var rec trail.Record
	if err := json.Unmarshal(r.body, &rec); err != nil || rec.Seq != uint64(r.seq) {
		return nil, fmt.Errorf("%w: record %d: malformed", trail.ErrDictionary, r.seq)
	}
	return trail.OpenDictionary(rec, forWriting)
}

// canonical returns a row's canonical bytes: its body, or for a
// compressed row the expansion of its body with the dictionary that dict
// returns for the row's dict column.
func (r *pgRow) canonical(dict func(seq int64) (*trail.Dictionary, error)) ([]byte, error) {
	if !r.dict.Valid {
		return r.body, nil
	}
	if r.dict.Int64 < 0 || r.dict.Int64 >= r.seq {
		return nil, fmt.Errorf("%w: record %d names dictionary record %d, which does not precede it",
			trail.ErrDictionary, r.seq, r.dict.Int64)
	}
	d, err := dict(r.dict.Int64)
	if err != nil {
		return nil, err
	}
	return expandRow(d, r.seq, r.body)
}

// expandRow is the canonical record seq whose tail z compresses.
func expandRow(d *trail.Dictionary, seq int64, z []byte) ([]byte, error) {
	dst := make([]byte, 0, 4*len(z)+32)
	dst = strconv.AppendInt(append(dst, `{"seq":`...), seq, 10)
	out, err := d.Expand(append(dst, ','), z)
	if err != nil {
		return nil, fmt.Errorf("record %d: %w", seq, err)
	}
	return out, nil
}

// pruneCompressed turns the compressed rows of kind older than before
// into tombstones, each only after its expansion was checked against its
// leaf (so a tampered row stays for Verify to report). It returns how
// many it pruned and how many it left for that reason.
func (l *Log) pruneCompressed(ctx context.Context, kind string, before time.Time) (pruned, bad int, err error) {
	after := int64(-1)
	for {
		var n int
		err := pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
			rows, err := tx.Query(ctx, l.sql.selPruneZ, kind, before, after, pruneChunk)
			if err != nil {
				return err
			}
			var chunk []pgRow
			var r pgRow
			if _, err := pgx.ForEachRow(rows, []any{&r.seq, &r.body, &r.leaf, &r.dict}, func() error {
				chunk = append(chunk, r)
				return nil
			}); err != nil {
				return err
			}
			n = len(chunk)
			var good []int64
			for i := range chunk {
				after = chunk[i].seq
				canon, err := chunk[i].canonical(func(seq int64) (*trail.Dictionary, error) { return l.dictionary(ctx, seq) })
				if h := tlog.RecordHash(canon); err != nil || string(h[:]) != string(chunk[i].leaf) {
					bad++
					continue
				}
				good = append(good, chunk[i].seq)
			}
			if len(good) == 0 {
				return nil
			}
			tag, err := tx.Exec(ctx, l.sql.pruneSeqs, good)
			pruned += int(tag.RowsAffected())
			return err
		})
		if err != nil {
			return pruned, bad, err
		}
		if n < pruneChunk {
			return pruned, bad, nil
		}
	}
}
