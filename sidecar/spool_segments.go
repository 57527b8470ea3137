package sidecar

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/ciampdp/pdp/pdp/trail"
)

// The spool is a series of segments, each a trail FileLog in its own
// directory of spool_dir named for the spool seq of its first record
// (spool.<base>, 20 digits). Spool seqs are global: a segment's record with
// local seq i is spool seq base+i, and the next segment's base is where the
// previous one ended, so the shipping position, the ingest keys and the
// shipping code mean what they meant with one log. Only the last segment is
// written; a new one starts between appends once it holds
// spool_segment_bytes of records. A segment whose every record is below the
// durable shipping position is deleted; the last one never is, so seqs go
// on where they were across restarts.
//
// Crash states and what opening does with them:
//   - a new segment created, still empty: it is the last one, written on;
//   - the position fsynced, shipped segments not (all) deleted: they are
//     deleted now, by their span (the next segment's base), without being
//     read, so a half-deleted directory is finished off too;
//   - a position file lost or older than the first segment: shipping starts
//     at the first segment; the central PDP skips the seqs it holds.

const (
	// legacySpool is the spool of sidecars before segments: one FileLog,
	// read as the segment with base 0.
	legacySpool = "spool"
	// segmentPrefix starts a segment directory's name; its base follows.
	segmentPrefix = "spool."
)

// errSegment: a spool segment does not fit the others (it holds more
// records than its span, or two directories claim one base).
var errSegment = errors.New("sidecar spool: inconsistent segments")

// segment is one FileLog of the spool, holding spool seqs from base on.
type segment struct {
	base uint64
	dir  string
	// log is open for the last segment (the writer's), for a sealed one
	// the shipper reads or the writer just sealed, nil otherwise. Guarded
	// by spool.mu; a sealed segment's log is opened and closed only by the
	// shipper (and close).
	log *trail.FileLog
}

func segmentName(base uint64) string { return fmt.Sprintf("%s%020d", segmentPrefix, base) }

// parseSegmentName reads a segment's base from its directory name: ok
// false for a name that is not a segment's, an error for a segment name
// whose base is out of range.
func parseSegmentName(name string) (base uint64, ok bool, err error) {
	if name == legacySpool {
		return 0, true, nil
	}
	digits, ok := strings.CutPrefix(name, segmentPrefix)
	if !ok || digits == "" || strings.Trim(digits, "0123456789") != "" {
		return 0, false, nil
	}
	if base, err = strconv.ParseUint(digits, 10, 64); err != nil {
		return 0, false, fmt.Errorf("%w: %s: %w", errSegment, name, err)
	}
	return base, true, nil
}

// listSegments finds the segments in dir, by base.
func listSegments(dir string) ([]*segment, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("sidecar: spool: %w", err)
	}
	var segs []*segment
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		name := e.Name()
		base, ok, err := parseSegmentName(name)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		segs = append(segs, &segment{base: base, dir: filepath.Join(dir, name)})
	}
	slices.SortFunc(segs, func(a, b *segment) int { return cmp.Compare(a.base, b.base) })
	for i := 1; i < len(segs); i++ {
		if segs[i].base == segs[i-1].base {
			return nil, fmt.Errorf("%w: %s and %s both start at spool seq %d", errSegment, segs[i-1].dir, segs[i].dir, segs[i].base)
		}
	}
	return segs, nil
}

// segmentOptions are the FileLog options of a segment: preallocated space
// (zeros ahead of the records, cut at close) is an eighth of a segment at
// most, so that open segments take little more than their records.
func segmentOptions(segBytes int64) trail.FileOptions {
	return trail.FileOptions{Preallocate: max(4<<10, min(trail.DefaultPreallocate, segBytes/8))}
}

// openSegment opens the segment's FileLog, refusing a damaged one.
func (sp *spool) openSegment(seg *segment) (*trail.FileLog, error) {
	l, err := trail.OpenFile(seg.dir, segmentOptions(sp.segBytes))
	if err != nil {
		return nil, fmt.Errorf("sidecar: spool: %w", err)
	}
	if err := l.Damaged(); err != nil {
		_ = l.Close()
		return nil, fmt.Errorf("sidecar: spool segment %s: %w", seg.dir, err)
	}
	return l, nil
}

// createSegment makes the segment starting at base, durable in spool_dir.
// On failure its directory is removed: left behind, it would claim seqs the
// previous segment goes on to write.
func (sp *spool) createSegment(base uint64) (*segment, error) {
	seg := &segment{base: base, dir: filepath.Join(sp.dir, segmentName(base))}
	l, err := sp.openSegment(seg)
	if err == nil {
		err = trail.SyncDir(seg.dir)
		if err == nil {
			err = trail.SyncDir(sp.dir)
		}
		if err != nil {
			_ = l.Close()
		}
	}
	if err != nil {
		rerr := os.RemoveAll(seg.dir)
		if rerr == nil {
			// Durably gone: an empty directory back after a crash would
			// be taken for the last segment, at a base below records.
			rerr = trail.SyncDir(sp.dir)
		}
		if rerr != nil {
			// Nothing more may be written (see above).
			return nil, errors.Join(err, fmt.Errorf("%w: cannot remove the failed new segment %s: %w", errSegment, seg.dir, rerr))
		}
		return nil, fmt.Errorf("sidecar: spool: new segment at %d: %w", base, err)
	}
	seg.log = l
	return seg, nil
}

// rollIfFull starts a new segment when the writer's holds segBytes of
// records. It runs between appends (it waits for those in flight).
func (sp *spool) rollIfFull() {
	if sp.cur.Load().Stats().RecordBytes < sp.segBytes {
		return
	}
	sp.wmu.Lock()
	defer sp.wmu.Unlock()
	cur := sp.cur.Load()
	if cur.Stats().RecordBytes < sp.segBytes || sp.err() != nil {
		return // another appender rolled it
	}
	sp.mu.Lock()
	last := sp.segs[len(sp.segs)-1]
	sp.mu.Unlock()
	seg, err := sp.createSegment(last.base + cur.Size())
	if errors.Is(err, errSegment) {
		sp.failed.CompareAndSwap(nil, &err)
	}
	if err != nil {
		// The writer goes on in the full segment and tries again after
		// the next append.
		sp.logger.Error("spool: cannot start a new segment", "error", err)
		return
	}
	sp.mu.Lock()
	sp.segs = append(sp.segs, seg) // the sealed one keeps its log open for the shipper
	sp.mu.Unlock()
	sp.cur.Store(seg.log)
}

// size is the number of records written: the spool seq of the next one.
func (sp *spool) size() uint64 {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	last := sp.segs[len(sp.segs)-1]
	return last.base + last.log.Size()
}

// first is the spool seq of the oldest record kept.
func (sp *spool) first() uint64 {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return sp.segs[0].base
}

// reader returns the open log of the segment holding spool seq `seq`, its
// base and the end of its span. Called by the shipper only.
func (sp *spool) reader(seq uint64) (l *trail.FileLog, base, end uint64, err error) {
	sp.mu.Lock()
	i := len(sp.segs) - 1
	for i > 0 && sp.segs[i].base > seq {
		i--
	}
	seg := sp.segs[i]
	if i == len(sp.segs)-1 {
		l, base, end = seg.log, seg.base, seg.base+seg.log.Size()
		sp.mu.Unlock()
		return l, base, end, nil
	}
	l, base, end = seg.log, seg.base, sp.segs[i+1].base
	sp.mu.Unlock()
	if l != nil {
		return l, base, end, nil
	}
	// A sealed segment of an earlier run: opened (and its span checked)
	// when shipping reaches it.
	sp.openMu.Lock()
	defer sp.openMu.Unlock()
	sp.mu.Lock()
	l = seg.log
	sp.mu.Unlock()
	if l != nil {
		return l, base, end, nil
	}
	if l, err = sp.openSegment(seg); err != nil {
		return nil, 0, 0, err
	}
	if n := l.Size(); base+n > end {
		_ = l.Close()
		return nil, 0, 0, fmt.Errorf("%w: %s holds %d records, the next segment starts at spool seq %d", errSegment, seg.dir, n, end)
	}
	sp.mu.Lock()
	seg.log = l
	sp.mu.Unlock()
	return l, base, end, nil
}

// read calls fn with each record of spool seqs [from, to) and its seq, in
// order, across segments; a sealed segment shorter than its span leaves a
// gap. Called by the shipper only.
func (sp *spool) read(from, to uint64, fn func(seq uint64, r trail.Record) error) error {
	for from < to {
		l, base, end, err := sp.reader(from)
		if err != nil {
			return err
		}
		if end <= from {
			return nil // past the last record
		}
		stop := min(to, end)
		if err := l.Scan(from-base, stop-base, func(r trail.Record) error { return fn(base+r.Seq, r) }); err != nil {
			return err
		}
		from = stop
	}
	return nil
}

// prune deletes the segments whose every record is below shipped, a
// position already written to the position file. The last segment is kept
// whatever shipped says. A segment leaves the list (and the metrics) once
// deleted. Called by the shipper only.
func (sp *spool) prune(shipped uint64) (int, error) {
	sp.mu.Lock()
	n := 0
	for n+1 < len(sp.segs) && sp.segs[n+1].base <= shipped {
		n++
	}
	drop := slices.Clone(sp.segs[:n])
	var logs []*trail.FileLog
	for _, seg := range drop {
		if seg.log != nil {
			logs = append(logs, seg.log)
			seg.log = nil
		}
	}
	sp.mu.Unlock()
	var errs []error
	for _, l := range logs {
		errs = append(errs, l.Close())
	}
	deleted, err := sp.removeSegments(drop)
	if deleted {
		sp.mu.Lock()
		sp.segs = sp.segs[n:] // the writer only appends: the front is as it was
		sp.mu.Unlock()
	}
	return len(drop), errors.Join(append(errs, err)...)
}

// closeIdle closes the logs of the sealed segments the shipper is not
// reading (the one holding spool seq next): a segment the writer sealed
// keeps its log open for the shipper, with its preallocated space; while
// shipping lags (the central PDP down) they would pile up. They reopen
// when shipping gets there. Called by the shipper only.
func (sp *spool) closeIdle(next uint64) error {
	sp.mu.Lock()
	var idle []*trail.FileLog
	for i, seg := range sp.segs[:len(sp.segs)-1] {
		reading := seg.base <= next && next < sp.segs[i+1].base
		if seg.log != nil && !reading {
			idle = append(idle, seg.log)
			seg.log = nil
		}
	}
	sp.mu.Unlock()
	var errs []error
	for _, l := range idle {
		errs = append(errs, l.Close())
	}
	return errors.Join(errs...)
}

// removeSegments deletes shipped segments: the position file's rename is
// made durable first (an fsync of spool_dir), the deletions after. deleted
// is false when nothing was deleted (the next prune tries again); a
// segment left half deleted is finished off at the next open.
func (sp *spool) removeSegments(drop []*segment) (deleted bool, err error) {
	if len(drop) == 0 {
		return false, nil
	}
	if err := trail.SyncDir(sp.dir); err != nil {
		return false, err
	}
	var errs []error
	for _, seg := range drop { // their logs are closed
		if err := os.RemoveAll(seg.dir); err != nil {
			errs = append(errs, fmt.Errorf("sidecar: spool: delete shipped segment: %w", err))
		}
	}
	errs = append(errs, trail.SyncDir(sp.dir))
	return true, errors.Join(errs...)
}

// segments is the number of segments on disk.
func (sp *spool) segments() int {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return len(sp.segs)
}

// diskUsage is the spool's segments' bytes on disk: their files' sizes,
// preallocated space included.
func (sp *spool) diskUsage() (bytes int64) {
	sp.mu.Lock()
	dirs := make([]string, len(sp.segs))
	for i, seg := range sp.segs {
		dirs[i] = seg.dir
	}
	sp.mu.Unlock()
	for _, dir := range dirs {
		_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return nil // a segment deleted meanwhile
			}
			if info, err := d.Info(); err == nil {
				bytes += info.Size()
			}
			return nil
		})
	}
	return bytes
}
