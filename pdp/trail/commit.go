package trail

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"strconv"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

type appendReq struct {
	recs  []Record
	tails [][]byte          // each record's canonical bytes after its seq (see appendCanonicalTail)
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
	// callers encode in parallel; the single committer only assembles,
	// hashes and writes.
	req := &appendReq{recs: recs, tails: make([][]byte, len(recs)), done: make(chan appendResult, 1)}
	for i, rec := range recs {
		tail, err := appendCanonicalTail(make([]byte, 0, 96+len(rec.Body)), rec)
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
		offsets []int64
		leaves  []tlog.Hash
		results = make([]appendResult, len(batch))
		next    = n0
	)
	for i, r := range batch {
		mark, seqs := len(buf), make([]uint64, 0, len(r.recs))
		var err error
		for k, rec := range r.recs {
			rec.Seq = uint64(next) + uint64(len(seqs))
			// The frame is built in place: header room, payload, then the
			// header filled in from the payload's length and checksum.
			at := len(buf)
			buf = append(buf, make([]byte, frameHeader)...)
			if r.tails != nil {
				buf = append(buf, canonicalSeqPrefix...)
				buf = strconv.AppendUint(buf, rec.Seq, 10)
				buf = append(buf, ',')
				buf = append(buf, r.tails[k]...)
			} else {
				var b []byte
				if b, err = appendCanonical(buf, rec); err != nil {
					break
				}
				buf = b
			}
			payload := buf[at+frameHeader:]
			putFrameHeader(buf[at:], len(payload), crc32.Checksum(payload, castagnoli))
			offsets = append(offsets, end+int64(at))
			leaves = append(leaves, tlog.RecordHash(payload))
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
	for i, r := range batch {
		r.done <- results[i]
	}
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
	if err := l.rec.Sync(); err != nil {
		return fmt.Errorf("fsync records: %w", err)
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
