package sidecar

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ciampdp/pdp/pdp/trail"
)

// KindAnswer is the kind of a spooled record: an answer the sidecar gave
// itself.
const KindAnswer = "sidecar.answer"

// answerRecord is the body of a spooled record.
type answerRecord struct {
	DecisionID  string    `json:"decision_id"`
	Time        time.Time `json:"time"`
	Sidecar     string    `json:"sidecar"`
	Request     any       `json:"request"`
	Decision    bool      `json:"decision"`
	Reasons     []string  `json:"reasons"`
	Policies    []string  `json:"policies,omitempty"`
	Obligations []string  `json:"obligations,omitempty"`
	// CachedFrom is the central decision the answer repeats; empty for a
	// fail-closed deny.
	CachedFrom    string `json:"cached_from,omitempty"`
	PolicyVersion string `json:"policy_version,omitempty"`
	ChangeSeq     uint64 `json:"change_seq"`
	Epoch         string `json:"epoch,omitempty"`
	Degraded      bool   `json:"degraded,omitempty"`
	Source        string `json:"source"` // cache, degraded, fail_closed
}

// spool is the local, durable queue of locally decided answers: trail
// FileLogs (CRC frames, fsync, torn tail cut) in segments (see
// spool_segments.go), shipped in order; shipped segments are deleted.
type spool struct {
	dir      string
	mode     string
	segBytes int64
	logger   *slog.Logger
	lock     io.Closer // spool_dir/LOCK: one sidecar per spool
	posFile  string
	buf      chan trail.Record
	drained  chan struct{}
	// wmu: appends hold it shared, a segment roll exclusively.
	wmu sync.RWMutex
	// cur is the writer's log, the last segment's.
	cur atomic.Pointer[trail.FileLog]
	// mu guards segs and their logs.
	mu   sync.Mutex
	segs []*segment // by base; never empty
	// openMu serialises opening a sealed segment for reading.
	openMu sync.Mutex
	// failed is the first write error of the async drainer: from then on
	// every locally decided answer is refused (the caller denies), as the
	// decision trail's async mode does.
	failed atomic.Pointer[error]
	// base is the spool's size when opened, accepted the answers accepted
	// since (written, or waiting for the async drainer).
	base     uint64
	accepted atomic.Uint64

	closeOnce sync.Once
	closeErr  error
}

// spooled is how many answers the spool holds or is about to write: the
// log's records plus those still waiting for the drainer.
func (sp *spool) spooled() uint64 {
	return sp.base + sp.accepted.Load()
}

// openSpool opens the spool in dir (creating it), deleting the segments
// the position file says were shipped, and starts a new segment when the
// last one is full (a spool of the one-log layout, say).
func openSpool(dir, mode string, segBytes int64, logger *slog.Logger) (*spool, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("sidecar: spool dir: %w", err)
	}
	lock, err := trail.LockDir(dir)
	if err != nil {
		return nil, fmt.Errorf("sidecar: spool: %w", err)
	}
	sp := &spool{dir: dir, mode: mode, segBytes: segBytes, logger: logger, lock: lock, posFile: filepath.Join(dir, "shipped")}
	if err := sp.openSegments(); err != nil {
		_ = lock.Close()
		return nil, err
	}
	sp.base = sp.size()
	if mode == SpoolAsync {
		sp.buf = make(chan trail.Record, 10000)
		sp.drained = make(chan struct{})
		go sp.drain()
	}
	return sp, nil
}

// openSegments lists the segments, deletes the shipped ones and opens the
// last for writing (creating the first when there is none).
func (sp *spool) openSegments() error {
	segs, err := listSegments(sp.dir)
	if err != nil {
		return err
	}
	shipped := sp.shipped()
	var drop []*segment
	for len(segs) > 1 && segs[1].base <= shipped {
		drop, segs = append(drop, segs[0]), segs[1:]
	}
	if _, err := sp.removeSegments(drop); err != nil {
		return err
	}
	// Seqs are never reused: with every segment gone (deleted by hand, a
	// partial restore) but the position kept, or a last segment ending
	// below it, new answers start at the position — below it they would
	// never be shipped, and the central PDP would take them for retries.
	if len(segs) == 0 {
		seg, err := sp.createSegment(shipped)
		if err != nil {
			return err
		}
		segs = append(segs, seg)
	}
	last := segs[len(segs)-1]
	if last.log == nil {
		if last.log, err = sp.openSegment(last); err != nil {
			return err
		}
	}
	if end := last.base + last.log.Size(); end < shipped {
		seg, err := sp.createSegment(shipped)
		if err != nil {
			_ = last.log.Close()
			return err
		}
		segs, last = append(segs, seg), seg
	}
	sp.segs = segs
	sp.cur.Store(last.log)
	sp.rollIfFull()
	if err := sp.err(); err != nil {
		_ = last.log.Close()
		return err
	}
	return nil
}

// spoolWait bounds how long recording one answer may wait for room in the
// async buffer (or for the sync append): past it the answer is refused.
const spoolWait = 5 * time.Second

// errSpoolFull: the async buffer stayed full for spoolWait.
var errSpoolFull = errors.New("sidecar spool: the buffer stayed full")

// add spools one record: durable on return in sync mode, buffered (waiting
// for room up to spoolWait, never dropped) in async mode.
//
// The record of an answer already decided is written whatever became of
// the request that asked for it: ctx's deadline or cancellation (a caller
// that gave up, a gateway timeout spent waiting for the central PDP) does
// not apply here, only spoolWait. Otherwise a fail-closed deny given at
// the request's deadline would turn into trail_unavailable and leave no
// record.
func (sp *spool) add(ctx context.Context, rec trail.Record) error {
	if p := sp.failed.Load(); p != nil {
		return *p
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), spoolWait)
	defer cancel()
	if sp.mode == SpoolSync {
		if err := sp.append(ctx, rec); err != nil {
			return err
		}
		sp.accepted.Add(1)
		return nil
	}
	select {
	case sp.buf <- rec:
		sp.accepted.Add(1)
		return nil
	default:
	}
	select {
	case sp.buf <- rec:
		sp.accepted.Add(1)
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w for %v", errSpoolFull, spoolWait)
	}
}

// spoolWindow is how long the async drainer gathers answers after the
// first one before it writes them with one write and fsync: at a few
// thousand hits a second a batch then holds tens of answers, not the few
// that queued during the previous fsync. The answers do not wait for it
// (they were answered when buffered); only their records' arrival on disk
// and at the central trail does.
const spoolWindow = 10 * time.Millisecond

// spoolBatch caps the records of one write and fsync of the drainer.
const spoolBatch = 1024

// append writes records to the writer's segment, durably, then starts a
// new segment if that one is full.
func (sp *spool) append(ctx context.Context, recs ...trail.Record) error {
	sp.wmu.RLock()
	_, err := sp.cur.Load().Append(ctx, recs...)
	sp.wmu.RUnlock()
	if err != nil {
		return err
	}
	sp.rollIfFull()
	return nil
}

func (sp *spool) drain() {
	defer close(sp.drained)
	batch := make([]trail.Record, 0, spoolBatch)
	window := time.NewTimer(spoolWindow)
	window.Stop()
	for rec := range sp.buf {
		batch = append(batch[:0], rec)
		window.Reset(spoolWindow)
	gather:
		for len(batch) < cap(batch) {
			select {
			case r, ok := <-sp.buf:
				if !ok {
					break gather // closing: write what was gathered now
				}
				batch = append(batch, r)
			case <-window.C:
				break gather
			}
		}
		window.Stop() // Go 1.23+ timers: no stale tick after Stop
		// An append fails only when the disk does. These records are lost:
		// say so once, and refuse every later answer (readiness reports it).
		if err := sp.append(context.Background(), batch...); err != nil {
			err = fmt.Errorf("sidecar spool write failed, %d answers from %s on are not recorded: %w", len(batch), batch[0].ID, err)
			sp.failed.CompareAndSwap(nil, &err)
		}
		clear(batch) // the records' bodies are not kept until the next batch
	}
}

// err is the spool's failure, if any.
func (sp *spool) err() error {
	if p := sp.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// close flushes the async buffer and closes every open segment and the
// directory lock, once. The shipper must have stopped.
func (sp *spool) close() error {
	sp.closeOnce.Do(func() {
		if sp.buf != nil {
			close(sp.buf)
			<-sp.drained
		}
		sp.mu.Lock()
		defer sp.mu.Unlock()
		var errs []error
		for _, seg := range sp.segs {
			if seg.log != nil {
				errs = append(errs, seg.log.Close())
			}
		}
		sp.closeErr = errors.Join(append(errs, sp.lock.Close())...)
	})
	return sp.closeErr
}

// shipped is the next spool sequence number to ship.
func (sp *spool) shipped() uint64 {
	data, err := os.ReadFile(sp.posFile)
	if err != nil {
		return 0
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64)
	if err != nil {
		return 0
	}
	return n
}

// setShipped records the shipping position durably (write, fsync, rename).
func (sp *spool) setShipped(n uint64) error {
	tmp := sp.posFile + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(f, "%d\n", n)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp, sp.posFile)
}

// errRefused: the central PDP refused the records themselves (422: not an
// answer this sidecar could have given; 403: its id belongs to another
// application).
var errRefused = errors.New("ingest: the central PDP refused the records")

// errTooLarge: the central PDP refused a batch as too large.
var errTooLarge = errors.New("ingest: batch too large")

// ingestRecord is one record of POST /v1/trail/ingest.
type ingestRecord struct {
	Seq  uint64          `json:"seq"`
	ID   string          `json:"id"`
	Time time.Time       `json:"time"`
	Body json.RawMessage `json:"body"`
}

// shipBatchSize is the most records one ingest call carries (the central
// PDP takes up to api.MaxIngestRecords); halved for good when the central
// PDP answers 413.
const shipBatchSize = 1000

// ship sends the spool to the central trail until ctx ends: in order, in
// batches, each acknowledged before the next; the central PDP skips what
// it already holds, so a batch resent after a lost answer lands once.
//
// A full batch goes at once; fewer records wait until ship_interval has
// passed since the previous call, so that under load each ingest call,
// shipping position and central fsync carries many answers rather than
// the few spooled during the previous round trip.
//
// Once a position is recorded, the segments wholly below it are deleted.
func (s *Sidecar) ship(ctx context.Context) {
	// A position older than the first segment (a lost position file):
	// the central PDP skips what it already holds.
	next := max(s.spool.shipped(), s.spool.first())
	backoff := 100 * time.Millisecond
	batchSize := uint64(shipBatchSize)
	var last time.Time // the previous ingest call
	for {
		if err := s.spool.closeIdle(next); err != nil {
			s.log.Error("spool: cannot close a sealed segment", "error", err)
		}
		size := s.spool.size()
		wait := s.cfg.ShipInterval
		if next < size {
			wait = s.cfg.ShipInterval - time.Since(last)
			if size-next >= batchSize {
				wait = 0
			}
		}
		if wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			case <-s.shipNow:
			}
			continue
		}
		if next >= size {
			continue
		}
		last = time.Now()
		acked, err := s.shipBatch(ctx, next, min(size, next+batchSize))
		if errors.Is(err, errTooLarge) && batchSize > 1 {
			batchSize = max(1, batchSize/2) // the central PDP's body limit
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.shipFailures.Add(1)
			if errors.Is(err, errRefused) || errors.Is(err, errSegment) || errors.Is(err, trail.ErrDamaged) {
				// Not a passing outage: the central PDP will refuse these
				// records, or the spool cannot read them, until someone
				// looks (readyz says ship_error).
				s.shipRefused.Store(&err)
				s.log.Error("spool: shipping is stuck", "error", err, "next", next)
			} else {
				s.log.Debug("spool shipping failed; retrying", "error", err, "next", next)
			}
			sleep(ctx, jitter(backoff))
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		s.shipRefused.Store(nil)
		next = acked // shipped numbers are 1-based: acked n covers spool seq n-1
		err = s.spool.setShipped(next)
		s.shippedRecords.Store(next)
		if err != nil {
			s.log.Error("spool: cannot record the shipping position", "error", err)
			continue
		}
		if n, err := s.spool.prune(next); err != nil {
			s.log.Error("spool: cannot delete shipped segments", "error", err)
		} else if n > 0 {
			s.log.Debug("spool: deleted shipped segments", "segments", n, "shipped", next)
		}
	}
}

// shipBatch ships spool seqs [from, to) and returns the new shipping
// position.
func (s *Sidecar) shipBatch(ctx context.Context, from, to uint64) (uint64, error) {
	recs := make([]ingestRecord, 0, to-from)
	err := s.spool.read(from, to, func(seq uint64, r trail.Record) error {
		// Shipped sequence numbers start at 1: 0 never names a record.
		recs = append(recs, ingestRecord{Seq: seq + 1, ID: r.ID, Time: r.Time, Body: json.RawMessage(r.Body)})
		return nil
	})
	if err != nil {
		return 0, err
	}
	if len(recs) < int(to-from) {
		// A sealed segment shorter than its span (its disk lost records
		// it had fsynced): the seqs past its end are never written.
		s.log.Error("spool: a segment lacks records; their seqs are skipped", "from", from, "to", to, "records", len(recs))
		if len(recs) == 0 {
			return to, nil
		}
	}
	body, err := appendIngestBatch(make([]byte, 0, 64+len(recs)*512), recs)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout*2)
	defer cancel()
	central := s.central()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, central+"/v1/trail/ingest", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	s.headers(req)
	req.Header.Set("Content-Type", "application/json")
	res, err := s.hc.Do(req)
	if err != nil {
		// The next attempt goes to the next replica; whichever stores the
		// records, each is stored once (the PDP keys them by spool seq).
		s.failover(central)
		return 0, err
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(res.Body, 1<<16))
	if res.StatusCode == http.StatusRequestEntityTooLarge {
		return 0, errTooLarge
	}
	if res.StatusCode == http.StatusUnprocessableEntity || res.StatusCode == http.StatusForbidden {
		return 0, fmt.Errorf("%w: %s: %s", errRefused, res.Status, data)
	}
	if res.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("ingest: %s: %s", res.Status, data)
	}
	var ans struct {
		Acked uint64 `json:"acked"`
	}
	if err := json.Unmarshal(data, &ans); err != nil {
		return 0, fmt.Errorf("ingest: %w", err)
	}
	if ans.Acked < recs[len(recs)-1].Seq {
		return 0, errors.New("ingest: the central PDP acknowledged less than it was sent")
	}
	return max(ans.Acked, to), nil
}
