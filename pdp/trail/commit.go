package trail

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"strconv"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

type appendReq struct {
	recs  []Record
	tails [][]byte          // each record's canonical bytes after its seq (see appendCanonicalTail)
	zlen  []int             // set by the committer: each record's compressed size, 0 if stored as is
	dict  uint64            // the dictionary record the committer compressed with
	done  chan appendResult // buffered, 1
}

type appendResult struct {
	seqs []uint64
	err  error
}

// Append writes recs as consecutive records and returns their sequence
// numbers once they are fsynced. Concurrent calls share one write and fsync.
// Seq fields are assigned by the log; the caller's values are ignored. ctx
// bounds only the wait to hand the records to the committer: once accepted,
// Append waits for the outcome, so a record is never written without its
// caller learning the result.
func (l *FileLog) Append(ctx context.Context, recs ...Record) ([]uint64, error) {
	if len(recs) == 0 {
		return nil, nil
	}
	if l.damaged != nil {
		return nil, l.damaged
	}
	// Encoding happens here, on the caller's goroutine, so that many
	// callers encode in parallel; the single committer compresses,
	// assembles, hashes and writes. Compression is the committer's
	// (measured, issue 15): S2's block encoder keeps a 64 KiB table on the
	// stack, and on the callers' goroutines it cost 4-5 µs a record (every
	// connection's goroutine grows its stack for it, and 32 of them keep
	// evicting each other's tables from the cache) against ~1.4 µs on the
	// one goroutine that always has it warm.
	req := &appendReq{recs: recs, tails: make([][]byte, len(recs)), done: make(chan appendResult, 1)}
	for i, rec := range recs {
		tail, err := appendCanonicalTail(getTail(96+len(rec.Body)), rec)
		if err != nil {
			return nil, err
		}
		req.tails[i] = tail
	}
	select {
	case l.reqs <- req:
	case <-l.closing:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, fmt.Errorf("trail: append: %w", ctx.Err())
	}
	res := <-req.done
	return res.seqs, res.err
}

// commitLoop is the single writer: it collects queued appends into a batch,
// writes it, fsyncs once, and wakes every waiter.
func (l *FileLog) commitLoop() {
	defer close(l.done)
	var timer *time.Timer
	for {
		var first *appendReq
		select {
		case first = <-l.reqs:
		case <-l.closing:
			for { // appends already handed over are still committed
				select {
				case r := <-l.reqs:
					l.commit([]*appendReq{r})
				default:
					return
				}
			}
		}
		batch, n := []*appendReq{first}, len(first.recs)
		var deadline <-chan time.Time
		if l.opts.BatchWindow > 0 {
			if timer == nil {
				timer = time.NewTimer(l.opts.BatchWindow)
			} else {
				timer.Reset(l.opts.BatchWindow)
			}
			deadline = timer.C
		}
	collect:
		for n < l.opts.MaxBatch {
			if deadline == nil {
				select {
				case r := <-l.reqs:
					batch, n = append(batch, r), n+len(r.recs)
				default:
					break collect
				}
				continue
			}
			select {
			case r := <-l.reqs:
				batch, n = append(batch, r), n+len(r.recs)
			case <-deadline:
				deadline = nil
				break collect
			case <-l.closing:
				break collect
			}
		}
		if deadline != nil {
			timer.Stop() // Go 1.23+ timers: no stale tick is delivered after Stop
		}
		l.commit(batch)
	}
}

// commit writes one batch. A failed write or fsync fails the batch, and the
// files are cut back to the last acknowledged record (records file
// truncated and fsynced, side file truncated): what the failed write left,
// torn or whole, is gone, so its pages' state after a failed fsync does not
// matter. The next batch is written only once that repair succeeded, so the
// log takes appends again when the disk does (space freed, say), and the
// tree always matches what is on disk.
func (l *FileLog) commit(batch []*appendReq) {
	err := l.failure()
	if err == nil && l.dirty {
		err = l.repair()
	}
	if err != nil {
		for _, r := range batch {
			r.done <- appendResult{err: err}
		}
		return
	}
	l.mu.RLock()
	n0, end := int64(len(l.offsets)), l.end
	l.mu.RUnlock()

	var (
		buf     = l.wbuf[:0]
		cur     = l.cur.Load()
		offsets []int64
		leaves  []tlog.Hash
		results = make([]appendResult, len(batch))
		next    = n0
	)
	for i, r := range batch {
		mark, seqs := len(buf), make([]uint64, 0, len(r.recs))
		var err error
		if cur != nil && r.tails != nil {
			r.zlen, r.dict = make([]int, len(r.recs)), cur.seq
		}
		for k, rec := range r.recs {
			rec.Seq = uint64(next) + uint64(len(seqs))
			// The frame is built in place: header room, payload, then the
			// header filled in from the payload's length and checksum.
			at := len(buf)
			buf = append(buf, make([]byte, frameHeader)...)
			var leaf tlog.Hash
			switch {
			case r.zlen != nil && rec.Kind != KindDictionary && !rec.Pruned:
				z := len(buf)
				buf = appendZPayload(buf, rec.Seq, r.dict, nil)
				z = len(buf) - z
				buf = cur.codec.appendCompressed(buf, r.tails[k])
				r.zlen[k] = len(buf) - at - frameHeader - z
				leaf = tailLeaf(rec.Seq, r.tails[k])
			case r.tails != nil:
				buf = append(buf, canonicalSeqPrefix...)
				buf = strconv.AppendUint(buf, rec.Seq, 10)
				buf = append(buf, ',')
				buf = append(buf, r.tails[k]...)
			default:
				var b []byte
				if b, err = appendCanonical(buf, rec); err != nil {
					break
				}
				buf = b
			}
			payload := buf[at+frameHeader:]
			putFrameHeader(buf[at:], len(payload), crc32.Checksum(payload, castagnoli))
			offsets = append(offsets, end+int64(at))
			if payload[0] != zMark {
				leaf = tlog.RecordHash(payload)
			}
			leaves = append(leaves, leaf)
			buf = append(buf, '\n')
			seqs = append(seqs, rec.Seq)
		}
		if err != nil { // reject this request alone; roll back its frames
			buf = buf[:mark]
			offsets = offsets[:len(offsets)-len(seqs)]
			leaves = leaves[:len(leaves)-len(seqs)]
			results[i].err = err
			continue
		}
		results[i].seqs = seqs
		next += int64(len(seqs))
	}
	if cap(buf) <= maxWriteBuffer {
		l.wbuf = buf[:0]
	}
	if len(leaves) > 0 {
		if err := l.write(buf, end, n0, leaves); err != nil {
			err = fmt.Errorf("trail: write failed, records not stored: %w", err)
			l.dirty = true
			if rerr := l.repair(); rerr != nil {
				err = errors.Join(err, rerr)
			}
			for i := range results {
				results[i] = appendResult{err: err}
			}
		} else {
			l.mu.Lock()
			l.offsets = append(l.offsets, offsets...)
			l.end = end + int64(len(buf))
			l.mu.Unlock()
			l.records.Add(uint64(len(leaves)))
			l.batches.Add(1)
		}
	}
	// Before the callers are answered: once they are, they own their
	// records again (the recorder reuses its batch) and the sample must not
	// read them.
	if l.opts.Compression != CompressionOff {
		if l.cur.Load() == nil || l.rot.gathering {
			l.gatherDictionary(batch, results)
		} else {
			l.watchRatio(batch, results)
		}
	}
	for i, r := range batch {
		r.done <- results[i]
		for _, t := range r.tails { // written, hashed, sampled: done with
			putTail(t)
		}
	}
}

// tailPool holds the buffers Append encodes records into; the committer
// puts them back once a batch is written.
var tailPool sync.Pool

// getTail returns an empty buffer of at least n bytes' capacity.
func getTail(n int) []byte {
	if p, ok := tailPool.Get().(*[]byte); ok && cap(*p) >= n {
		return (*p)[:0]
	}
	return make([]byte, 0, max(n, 2048))
}

// putTail gives a buffer back to the pool, unless it is rare in size.
func putTail(b []byte) {
	if cap(b) <= 64<<10 {
		tailPool.Put(&b)
	}
}

// gatherDictionary adds the records a batch stored to the dictionary's
// sample and, once it holds DictionarySize bytes, appends the dictionary
// record: the records after it are compressed with it.
func (l *FileLog) gatherDictionary(batch []*appendReq, results []appendResult) {
	for i, r := range batch {
		if results[i].err != nil || r.tails == nil {
			continue
		}
		for k, rec := range r.recs {
			if rec.Kind != KindDictionary && !rec.Pruned && len(l.sample) < l.opts.DictionarySize {
				l.sample = append(l.sample, r.tails[k]...)
			}
		}
	}
	if len(l.sample) < l.opts.DictionarySize {
		return
	}
	code := dictCodeOf(l.opts.Compression)
	content := dictionaryContent(code, l.sample, l.opts.DictionarySize)
	l.sample = nil
	if content == nil {
		return
	}
	rec, err := dictionaryRecord(code, content, Record{Time: time.Now()})
	if err != nil {
		return
	}
	tail, err := appendCanonicalTail(nil, rec)
	if err != nil {
		return
	}
	w, err := newDictCodec(code, content, true)
	if err != nil {
		return
	}
	req := &appendReq{recs: []Record{rec}, tails: [][]byte{tail}, done: make(chan appendResult, 1)}
	l.commit([]*appendReq{req}) // the sample is empty again: no recursion
	if res := <-req.done; res.err == nil {
		l.dicts.m.Store(res.seqs[0], w)
		l.cur.Store(&writerDict{seq: res.seqs[0], codec: w})
		l.rot = rotation{}
	}
}

// Dictionary rotation: records change shape over the years (a new policy
// version, new facts, a new application), and a dictionary made from the
// first records then compresses later ones worse. The committer measures
// the compression ratio over windows of rotateWindow records; the first
// window after a dictionary is its baseline, and once a later window is
// rotateFactor times worse (and rotateMinWindows windows have passed) it
// gathers a new sample of the records being written and appends a new
// dictionary record; the records after it are compressed with it. Older
// records keep naming the dictionary they were compressed with.
const (
	rotateWindow     = 4096
	rotateFactor     = 1.5
	rotateMinWindows = 8
)

// rotation is the committer's measure of the current dictionary.
type rotation struct {
	dict      uint64  // the dictionary measured
	base      float64 // compressed/uncompressed bytes of the first window; 0 until measured
	windows   int     // windows measured since the dictionary
	in, out   int64   // bytes in the current window
	n         int     // records in the current window
	gathering bool    // a new dictionary's sample is being gathered
}

// watchRatio adds a batch's compressed records to the ratio's window and
// starts gathering a new dictionary when the ratio got rotateFactor worse
// than the dictionary's baseline.
func (l *FileLog) watchRatio(batch []*appendReq, results []appendResult) {
	cur := l.cur.Load()
	window := l.opts.rotateWindow
	if window <= 0 {
		window = rotateWindow
	}
	if l.rot.dict != cur.seq {
		l.rot = rotation{dict: cur.seq}
	}
	for i, r := range batch {
		if results[i].err != nil || r.zlen == nil || r.dict != cur.seq {
			continue
		}
		for k, z := range r.zlen {
			if z == 0 {
				continue
			}
			l.rot.in += int64(len(r.tails[k]))
			l.rot.out += int64(z)
			if l.rot.n++; l.rot.n < window {
				continue
			}
			ratio := float64(l.rot.out) / float64(l.rot.in)
			l.rot.windows++
			l.rot.in, l.rot.out, l.rot.n = 0, 0, 0
			switch {
			case l.rot.base == 0:
				l.rot.base = ratio
			case l.rot.windows >= rotateMinWindows && ratio > l.rot.base*rotateFactor:
				l.rot.gathering = true
				l.sample = nil
				return
			}
		}
	}
}

// tailLeaf is the leaf hash of the canonical record {"seq":seq, + tail,
// computed without assembling it (tlog.RecordHash of those bytes).
func tailLeaf(seq uint64, tail []byte) tlog.Hash {
	h := sha256.New()
	var pre [32]byte
	b := append(append(pre[:0], 0), canonicalSeqPrefix...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, ',')
	h.Write(b)
	h.Write(tail)
	var leaf tlog.Hash
	h.Sum(leaf[:0])
	return leaf
}

// repair cuts the files back to the acknowledged records after a failed
// write: the records file to the end of the last one (fsynced), the side
// file to their stored hashes. Only the committer calls it.
func (l *FileLog) repair() error {
	l.mu.RLock()
	n, end := int64(len(l.offsets)), l.end
	l.mu.RUnlock()
	if err := l.rec.Truncate(end); err != nil {
		return fmt.Errorf("trail: cut the records file back to %d bytes: %w", end, err)
	}
	if err := l.rec.Sync(); err != nil {
		return fmt.Errorf("trail: fsync the records file: %w", err)
	}
	l.alloc = end
	if err := l.hashes.truncate(n); err != nil {
		return err
	}
	l.dirty = false
	return nil
}

func (l *FileLog) write(buf []byte, end, n0 int64, leaves []tlog.Hash) error {
	if _, err := l.rec.WriteAt(buf, end); err != nil {
		return fmt.Errorf("write records: %w", err)
	}
	next := end + int64(len(buf))
	switch {
	case l.opts.Preallocate > 0 && next <= l.alloc:
		// Written in place over zeros: the file's size and blocks are on
		// disk already, so the data alone needs syncing.
		if err := datasync(l.rec); err != nil {
			return fmt.Errorf("fdatasync records: %w", err)
		}
	case l.opts.Preallocate > 0 && next >= l.retryPrealloc:
		// Past the zeros: extend them first, then one fsync covers the
		// records, the zeros and the new size. A disk too full for the
		// zeros still takes the records: they are cut off again, and the
		// next try is a preallocation later.
		alloc := (next + l.opts.Preallocate) / l.opts.Preallocate * l.opts.Preallocate
		if err := writeZeros(l.rec, next, alloc); err != nil {
			if err := l.rec.Truncate(next); err != nil {
				return fmt.Errorf("preallocate records: %w", err)
			}
			alloc, l.retryPrealloc = next, next+l.opts.Preallocate
		}
		if err := l.rec.Sync(); err != nil {
			return fmt.Errorf("fsync records: %w", err)
		}
		l.alloc = alloc
	default:
		if err := l.rec.Sync(); err != nil {
			return fmt.Errorf("fsync records: %w", err)
		}
	}
	// The side file is fsynced before each checkpoint; what a crash loses of
	// it is recomputed from the records on open.
	return l.hashes.appendHashes(n0, leaves)
}

// canonicalSeqPrefix starts every canonical record: Canonical encodes Seq first.
const canonicalSeqPrefix = `{"seq":`

// maxWriteBuffer is the largest batch buffer the committer keeps for the
// next batch.
const maxWriteBuffer = 4 << 20

// zeroChunk is what writeZeros writes from.
var zeroChunk = make([]byte, 1<<20)

// writeZeros fills [from, to) of f with zeros.
func writeZeros(f *os.File, from, to int64) error {
	for from < to {
		n := min(to-from, int64(len(zeroChunk)))
		if _, err := f.WriteAt(zeroChunk[:n], from); err != nil {
			return err
		}
		from += n
	}
	return nil
}

// releasePrealloc cuts the records file's preallocated zeros off, so a
// closed trail's records file ends with its last record. Close calls it,
// once the committer has stopped.
func (l *FileLog) releasePrealloc() error {
	if l.damaged != nil || l.alloc <= l.end {
		return nil
	}
	if err := l.rec.Truncate(l.end); err != nil {
		return fmt.Errorf("trail: release preallocated space: %w", err)
	}
	l.alloc = l.end
	return l.rec.Sync()
}
