package trail

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// RetentionRule keeps the records of one class (Record.Kind) for Keep after
// their Time; Keep 0 keeps them forever.
type RetentionRule struct {
	Kind string
	Keep time.Duration
}

// ValidateRetention reports rules that cannot be applied: an empty or
// repeated kind, or a negative Keep.
func ValidateRetention(rules []RetentionRule) error {
	seen := make(map[string]bool, len(rules))
	for _, r := range rules {
		switch {
		case r.Kind == "":
			return fmt.Errorf("%w: retention rule without a kind", ErrBadOption)
		case r.Keep < 0:
			return fmt.Errorf("%w: retention of %q: negative keep %v", ErrBadOption, r.Kind, r.Keep)
		case seen[r.Kind]:
			return fmt.Errorf("%w: retention of %q given twice", ErrBadOption, r.Kind)
		case r.Kind == KindDictionary && r.Keep > 0:
			return fmt.Errorf("%w: %s records are kept while records compressed with them are", ErrBadOption, KindDictionary)
		}
		seen[r.Kind] = true
	}
	return nil
}

// pruneTempFile is where Prune builds the new records file before renaming
// it over records.log. A crash can leave it behind; OpenFile deletes it.
const pruneTempFile = recordsFile + ".prune"

// ApplyRetention prunes, in one rewrite of the records file, every record
// older than now minus its class's Keep, and returns how many it pruned per
// class. Classes without a rule, and rules with Keep 0, are kept forever.
func (l *FileLog) ApplyRetention(ctx context.Context, rules []RetentionRule, now time.Time) (map[string]int, error) {
	if err := ValidateRetention(rules); err != nil {
		return nil, err
	}
	cuts := make(map[string]time.Time, len(rules))
	for _, r := range rules {
		if r.Keep > 0 {
			cuts[r.Kind] = now.Add(-r.Keep)
		}
	}
	return l.prune(ctx, cuts)
}

// Prune turns every record of the given kind whose Time is before `before`
// into a tombstone: the record's Seq, Kind, ID and Time, no body, and the
// Merkle leaf hash of the record as written, so the tree, the checkpoints,
// proofs and Verify hold for every record (tombstones included). Records
// already pruned are left alone, and so are records appended after Prune
// starts. It returns how many records it pruned.
//
// The records file is rewritten into a temporary file beside it, which is
// fsynced, renamed over records.log, and the directory fsynced: a crash
// leaves the old file or the new one, never a mix. The copy runs while
// appends go on; they are held back (they wait, none fails) only while the
// records appended meanwhile are copied and the new file is fsynced, renamed
// and swapped in. Nothing is rewritten when no record qualifies.
func (l *FileLog) Prune(ctx context.Context, kind string, before time.Time) (int, error) {
	if kind == "" {
		return 0, fmt.Errorf("%w: prune without a kind", ErrBadOption)
	}
	n, err := l.prune(ctx, map[string]time.Time{kind: before})
	return n[kind], err
}

func (l *FileLog) prune(ctx context.Context, cuts map[string]time.Time) (map[string]int, error) {
	counts := make(map[string]int, len(cuts))
	if l.damaged != nil {
		return counts, l.damaged
	}
	l.pruneMu.Lock()
	defer l.pruneMu.Unlock()
	select {
	case <-l.closing:
		return counts, ErrClosed
	default:
	}
	if len(cuts) == 0 {
		return counts, nil
	}
	l.mu.RLock()
	src, n, end, failed := l.rec, len(l.offsets), l.end, l.failed
	l.mu.RUnlock()
	if failed != nil {
		return counts, failed
	}

	rw := &rewriter{l: l, src: src, cuts: cuts, counts: counts, offsets: make([]int64, 0, n)}
	defer rw.discard()
	if err := rw.copyFrames(ctx, end, n); err != nil {
		return zero(counts), err
	}
	if rw.tmp == nil { // nothing to prune
		return counts, nil
	}
	// Make the bulk durable now, so that the fsync while appends wait only
	// covers what they added meanwhile.
	if err := rw.flush(); err != nil {
		return zero(counts), err
	}

	if err := l.holdAppends(ctx); err != nil {
		return zero(counts), err
	}
	// l.mu is held for writing: the committer is parked, appends wait.
	if err := rw.finish(end, n); err != nil {
		l.mu.Unlock()
		return zero(counts), err
	}
	old, oldReaders := l.rec, l.recReaders
	l.rec, l.offsets, l.end, l.recReaders = rw.tmp, rw.offsets, rw.off, new(sync.WaitGroup)
	l.alloc = rw.off // the new file holds no preallocated space (the committer is held)
	rw.tmp = nil     // now the log's
	err := SyncDir(l.dir)
	if err != nil {
		// The rename may or may not survive a crash; appends acknowledged
		// from now on might not. Stop, as after a failed fsync.
		l.failed = fmt.Errorf("trail: log failed: prune: %w", err)
		err = l.failed
	}
	l.mu.Unlock()
	go func() { // Scan and Verify calls may still be reading the old file
		oldReaders.Wait()
		_ = old.Close()
	}()
	return counts, err
}

// zero reports that nothing was pruned: the rewrite was abandoned.
func zero(counts map[string]int) map[string]int {
	clear(counts)
	return counts
}

// holdAppends parks the group committer between two batches and returns
// with l.mu held for writing, which keeps it parked: its next batch starts by
// taking l.mu for reading. Appends meanwhile wait to be handed over.
//
// The committer is parked by an empty request whose reply channel is
// unbuffered: once it has written the batch holding it, it blocks replying,
// holding no lock. The reply is taken only with l.mu held, so whatever batch
// comes next waits for the lock. If the committer has not got that far yet
// (it takes l.mu to finish a batch), l.mu is released and taken again after
// a short sleep; this lasts at most one batch's write and fsync.
func (l *FileLog) holdAppends(ctx context.Context) error {
	park := &appendReq{done: make(chan appendResult)}
	select {
	case l.reqs <- park:
	case <-l.closing:
		return ErrClosed
	case <-ctx.Done():
		return fmt.Errorf("trail: prune: %w", ctx.Err())
	}
	// Accepted: the committer will reply, and must be answered.
	wait := 20 * time.Microsecond
	for {
		l.mu.Lock()
		select {
		case <-park.done:
			return nil
		default:
		}
		l.mu.Unlock()
		time.Sleep(wait)
		wait = min(2*wait, time.Millisecond)
	}
}

// holdRecords returns the records file for a read that may outlast a Prune,
// and the func to call when the read is done: a file Prune replaced is closed
// once its readers are done. l.mu must be held, for reading or writing.
func (l *FileLog) holdRecords() (*os.File, func()) {
	wg := l.recReaders
	wg.Add(1)
	return l.rec, wg.Done
}

// removeStalePrune deletes the temporary file of a Prune a crash interrupted.
// The records file is the old one or the new one, whole either way.
func removeStalePrune(dir string) error {
	err := os.Remove(filepath.Join(dir, pruneTempFile))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("trail: remove stale %s: %w", pruneTempFile, err)
	}
	return nil
}

// SyncDir makes the entries of dir durable (an fsync of the directory):
// what a rename, a new file or a deletion in it needs to survive a crash.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("fsync directory: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}

// syncEvery is how many bytes Prune writes between fsyncs of the new file:
// one large fsync at the end would stall the appenders' fsyncs behind it.
const syncEvery = 4 << 20

// rewriter builds the new records file. Until the first record to prune it
// writes nothing: the frames before it are then copied as they are.
type rewriter struct {
	l      *FileLog
	src    *os.File
	cuts   map[string]time.Time // kind → prune records older than this
	counts map[string]int       // kind → records pruned

	tmp     *os.File // nil until a record qualifies
	w       *bufio.Writer
	off     int64   // bytes in the new file
	synced  int64   // bytes of it fsynced
	offsets []int64 // frame offset of each record in the new file
	frame   []byte
	dicts   dictSet // the dictionaries met so far
}

// copyFrames rewrites frames [0, n) of the source, which end at end.
func (rw *rewriter) copyFrames(ctx context.Context, end int64, n int) error {
	kinds := make([][]byte, 0, len(rw.cuts))
	for k := range rw.cuts {
		q, _ := json.Marshal(k) // a string always encodes
		kinds = append(kinds, append(append([]byte(`"kind":`), q...), ','))
	}
	res, err := scanFrames(io.NewSectionReader(rw.src, 0, end), end, func(i int, off int64, payload []byte, bad error) error {
		if i%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("trail: prune: %w", err)
			}
			select {
			case <-rw.l.closing:
				return ErrClosed
			default:
			}
		}
		if bad != nil {
			return fmt.Errorf("trail: prune: record %d: %w", i, bad)
		}
		rw.dicts.see(payload)
		canon, err := expand(payload, &rw.dicts)
		if err != nil {
			return fmt.Errorf("trail: prune: record %d: %w", i, err)
		}
		out, err := rw.tombstone(canon, uint64(i), kinds)
		if err != nil {
			return err
		}
		if out == nil && rw.tmp == nil { // nothing pruned yet: kept in place
			rw.offsets = append(rw.offsets, off)
			return nil
		}
		if rw.tmp == nil {
			if err := rw.start(off); err != nil {
				return err
			}
		}
		if out == nil {
			out = payload
		}
		return rw.write(out)
	})
	if err != nil {
		return err
	}
	if res.frames != n || res.goodEnd != end {
		return fmt.Errorf("trail: prune: records file holds %d frames in %d bytes, want %d in %d", res.frames, res.goodEnd, n, end)
	}
	return nil
}

// tombstone returns the tombstone that replaces the record in payload, or
// nil when the record is kept.
func (rw *rewriter) tombstone(payload []byte, seq uint64, kinds [][]byte) ([]byte, error) {
	s, ok := payloadSeq(payload)
	if !ok || s != seq {
		return nil, fmt.Errorf("trail: prune: frame %d holds record %d", seq, s)
	}
	// Canonical records start {"seq":N,"kind":"…",: skip other kinds
	// without decoding. A record not in that form is decoded anyway.
	rest := payload[bytes.IndexByte(payload, ',')+1:]
	candidate := !bytes.HasPrefix(rest, []byte(`"kind":`))
	for _, k := range kinds {
		candidate = candidate || bytes.HasPrefix(rest, k)
	}
	if !candidate {
		return nil, nil
	}
	var r struct {
		Kind   string    `json:"kind"`
		ID     string    `json:"id"`
		Time   time.Time `json:"time"`
		Pruned bool      `json:"pruned"`
	}
	if err := json.Unmarshal(payload, &r); err != nil {
		return nil, fmt.Errorf("trail: prune: decode record %d: %w", seq, err)
	}
	cut, ok := rw.cuts[r.Kind]
	if !ok || r.Pruned || !r.Time.Before(cut) {
		return nil, nil
	}
	leaf := tlog.RecordHash(payload) // the leaf in the tree: of the bytes as stored
	b, err := Canonical(Record{
		Seq: seq, Kind: r.Kind, ID: r.ID, Time: r.Time,
		Pruned: true, Leaf: base64.StdEncoding.EncodeToString(leaf[:]),
	})
	if err != nil {
		return nil, err
	}
	rw.counts[r.Kind]++
	return b, nil
}

// start creates the temporary file and copies into it the source's first
// prefix bytes, which hold the records kept in place so far.
func (rw *rewriter) start(prefix int64) error {
	path := filepath.Join(rw.l.dir, pruneTempFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("trail: prune: %w", err)
	}
	rw.tmp, rw.w = f, bufio.NewWriterSize(f, 1<<20)
	if _, err := io.Copy(rw.w, io.NewSectionReader(rw.src, 0, prefix)); err != nil {
		return fmt.Errorf("trail: prune: copy records: %w", err)
	}
	rw.off = prefix
	return nil
}

func (rw *rewriter) write(payload []byte) error {
	rw.frame = appendFrame(rw.frame[:0], payload)
	if _, err := rw.w.Write(rw.frame); err != nil {
		return fmt.Errorf("trail: prune: write %s: %w", pruneTempFile, err)
	}
	rw.offsets = append(rw.offsets, rw.off)
	rw.off += int64(len(rw.frame))
	if rw.off-rw.synced >= syncEvery {
		return rw.flush()
	}
	return nil
}

func (rw *rewriter) flush() error {
	if err := rw.w.Flush(); err != nil {
		return fmt.Errorf("trail: prune: write %s: %w", pruneTempFile, err)
	}
	if err := rw.tmp.Sync(); err != nil {
		return fmt.Errorf("trail: prune: fsync %s: %w", pruneTempFile, err)
	}
	rw.synced = rw.off
	return nil
}

// finish copies the records appended after the first n (which ended at
// end), fsyncs the new file and renames it over records.log. The caller holds
// l.mu for writing.
func (rw *rewriter) finish(end int64, n int) error {
	l := rw.l
	if l.failed != nil {
		return l.failed
	}
	if tail := l.end - end; tail > 0 { // frames as the committer wrote them
		if _, err := io.Copy(rw.w, io.NewSectionReader(rw.src, end, tail)); err != nil {
			return fmt.Errorf("trail: prune: copy records: %w", err)
		}
		for _, off := range l.offsets[n:] {
			rw.offsets = append(rw.offsets, rw.off+off-end)
		}
		rw.off += tail
	}
	if err := rw.flush(); err != nil {
		return err
	}
	if err := os.Rename(filepath.Join(l.dir, pruneTempFile), filepath.Join(l.dir, recordsFile)); err != nil {
		return fmt.Errorf("trail: prune: %w", err)
	}
	return nil
}

// discard removes the temporary file of an abandoned rewrite.
func (rw *rewriter) discard() {
	if rw.tmp != nil {
		_ = rw.tmp.Close()
		_ = os.Remove(filepath.Join(rw.l.dir, pruneTempFile))
	}
}

var prunedMark = []byte(`"pruned":true`)

// frameLeaf returns the Merkle leaf of a stored record: the hash of its
// bytes, or for a tombstone the leaf hash it carries. A tombstone whose leaf
// is malformed, or that carries a body, is an error; its leaf is then the
// hash of its bytes, which matches no stored hash.
func frameLeaf(payload []byte) (leaf tlog.Hash, pruned bool, err error) {
	leaf = tlog.RecordHash(payload)
	if !bytes.Contains(payload, prunedMark) {
		return leaf, false, nil
	}
	var t struct {
		Seq    uint64          `json:"seq"`
		Body   json.RawMessage `json:"body"`
		Pruned bool            `json:"pruned"`
		Leaf   string          `json:"leaf"`
	}
	if json.Unmarshal(payload, &t) != nil || !t.Pruned {
		return leaf, false, nil // not a tombstone: the mark is in the body
	}
	if len(t.Body) > 0 && string(t.Body) != "null" {
		return leaf, true, fmt.Errorf("trail: tombstone %d carries a body", t.Seq)
	}
	carried, err := LeafHash(Record{Seq: t.Seq, Pruned: true, Leaf: t.Leaf})
	if err != nil {
		return leaf, true, err
	}
	return carried, true, nil
}
