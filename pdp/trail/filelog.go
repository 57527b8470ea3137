package trail

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// File names inside a trail directory.
const (
	recordsFile     = "records.log"
	hashesFile      = "hashes.bin"
	checkpointsFile = "checkpoints.log"
)

// DefaultCheckpointInterval is how often a checkpoint is written while the
// trail grows, unless configured: a record stays unanchored about a second.
// A tick on which the tree did not grow writes nothing.
const DefaultCheckpointInterval = time.Second

// DefaultPreallocate is how far ahead of its records the records file is
// zero-filled (FileOptions.Preallocate).
const DefaultPreallocate = 8 << 20

// DefaultOrigin is the first line of checkpoints when FileOptions.Origin is empty.
const DefaultOrigin = "northbank-pdp/trail"

var (
	// ErrClosed is returned by calls on a closed log.
	ErrClosed = errors.New("trail: log closed")
	// ErrDamaged is returned by writes to a log whose files failed the checks
	// on open; Verify says what is wrong.
	ErrDamaged = errors.New("trail: log damaged")
	// ErrNoSigner is returned by Checkpoint when no signer is configured.
	ErrNoSigner = errors.New("trail: no checkpoint signer configured")
	// ErrNotFound is returned for a sequence number the log does not hold.
	ErrNotFound = errors.New("trail: record not found")
	// ErrBadOption is returned by FileOptions.Validate.
	ErrBadOption = errors.New("trail: bad option")
)

// FileOptions configures a FileLog. The zero value is valid apart from
// Signer, without which no checkpoints are written.
type FileOptions struct {
	// Origin is the first line of every checkpoint. Default DefaultOrigin.
	Origin string
	// Signer signs checkpoints (note.NewSigner on a key from note.GenerateKey).
	Signer note.Signer
	// CheckpointInterval is how often Run writes a checkpoint while the
	// tree grows: it bounds how long a record stays unanchored (no
	// signature covers it, so it could be altered undetected). Default
	// DefaultCheckpointInterval.
	CheckpointInterval time.Duration
	// MaxBatch caps the records written by one write+fsync. Default 4096.
	MaxBatch int
	// BatchWindow is how long the committer waits for more appends after the
	// first one. Default 0: it batches whatever queued up while the previous
	// fsync ran, which adds no latency to a lone caller.
	BatchWindow time.Duration
	// Compression is how new records are stored: CompressionOff (the
	// default, "") or CompressionS2 or CompressionZstd: once
	// DictionarySize bytes of records were written, they become a
	// dictionary record, and every later record is stored compressed with
	// it (a trail whose last dictionary is of another codec gathers a new
	// one). The tree is of the uncompressed records either way;
	// compressed records are read whatever this says.
	Compression string
	// DictionarySize is how many bytes of records are gathered into the
	// dictionary. Default DefaultDictionarySize.
	DictionarySize int
	// Preallocate is how far the records file is extended with zeros
	// ahead of its records, so that a batch is written in place and made
	// durable with fdatasync, which then has no file size or block
	// allocation to journal (about half the CPU and a third of the time of
	// an appending fsync on ext4). Default DefaultPreallocate; negative:
	// append and fsync. The zeros are cut off at Close and at open.
	Preallocate int64

	// rotateWindow is how many compressed records one measure of the
	// compression ratio spans (tests set it small; 0: rotateWindow).
	rotateWindow int
}

// Validate reports options that cannot be used.
func (o FileOptions) Validate() error {
	switch {
	case o.CheckpointInterval < 0:
		return fmt.Errorf("%w: negative checkpoint interval", ErrBadOption)
	case o.MaxBatch < 0:
		return fmt.Errorf("%w: negative max batch", ErrBadOption)
	case o.BatchWindow < 0 || o.BatchWindow > time.Second:
		return fmt.Errorf("%w: batch window %v not in [0, 1s]", ErrBadOption, o.BatchWindow)
	case o.Compression != "" && o.Compression != CompressionOff && dictCodeOf(o.Compression) == "":
		return fmt.Errorf("%w: compression %q is not s2, zstd or off", ErrBadOption, o.Compression)
	case o.DictionarySize < 0 || o.DictionarySize > 8<<20:
		return fmt.Errorf("%w: dictionary size %d not in [0, 8 MiB]", ErrBadOption, o.DictionarySize)
	}
	return nil
}

func (o FileOptions) withDefaults() FileOptions {
	if o.Origin == "" {
		o.Origin = DefaultOrigin
	}
	if o.CheckpointInterval == 0 {
		o.CheckpointInterval = DefaultCheckpointInterval
	}
	if o.MaxBatch == 0 {
		o.MaxBatch = 4096
	}
	if o.Compression == "" {
		o.Compression = CompressionOff
	}
	if o.DictionarySize == 0 {
		o.DictionarySize = DefaultDictionarySize
	}
	if o.Preallocate == 0 {
		o.Preallocate = DefaultPreallocate
	}
	return o
}

// Recovery says what OpenFile repaired.
type Recovery struct {
	TruncatedBytes int64 // torn tail cut from the records file
	RebuiltHashes  int64 // records whose stored hashes were recomputed
}

// Stats counts group-commit work since open.
type Stats struct {
	Records uint64 // records appended
	Batches uint64 // write+fsync rounds
	// RecordBytes is the records file's bytes of records (its size on
	// disk may be larger while open: preallocated zeros).
	RecordBytes int64
}

// FileLog is a trail stored as files in one directory. It is safe for
// concurrent use.
type FileLog struct {
	dir  string
	opts FileOptions

	lock   *os.File // holds the directory's exclusive lock until Close
	rec    *os.File
	hashes hashFile // written only by the committer (or Open)
	cpf    *os.File

	recReaders *sync.WaitGroup // reads of rec that may outlast a Prune
	pruneMu    sync.Mutex      // serialises Prune; Close takes it to close the files

	mu      sync.RWMutex
	offsets []int64  // frame offset of each record
	end     int64    // end of the records file
	failed  error    // a prune failed half way; the log takes no more appends
	damaged error    // set on open; never cleared
	dirty   bool     // committer only: a failed write may have left bytes past end
	wbuf    []byte   // committer only: the batch buffer, reused
	sample  []byte   // committer only: records gathered for a dictionary
	rot     rotation // committer only: when to gather a new dictionary
	alloc   int64    // committer only: the records file's size; [end, alloc) is zeros
	// retryPrealloc (committer only): after a preallocation failed, the
	// records file is appended to until it reaches this size.
	retryPrealloc int64

	dicts dictSet                    // every dictionary record of the trail
	cur   atomic.Pointer[writerDict] // the one new records are compressed with

	cpMu     sync.Mutex // serialises checkpoint writes
	cps      []signedHead
	cpEnd    int64
	cpClosed bool
	cpErr    atomic.Pointer[error]               // Run's latest checkpoint outcome
	cpHook   atomic.Pointer[func(signed []byte)] // OnCheckpoint

	reqs      chan *appendReq
	closing   chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error

	records, batches atomic.Uint64
	recovery         Recovery
}

type signedHead struct {
	signed []byte
	head   TreeHead
}

// OpenFile opens (creating if needed) the trail in dir, cuts off a torn final
// record, rebuilds stored hashes the side file lacks, and starts the group
// committer. A log that fails its consistency checks is still opened, for
// reading and Verify, but refuses appends with ErrDamaged. The log holds an
// exclusive lock on its directory until Close: while another process (or
// another FileLog in this one) has it open, OpenFile fails with ErrLocked.
func OpenFile(dir string, opts FileOptions) (*FileLog, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("trail: create dir: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	if err := removeStalePrune(dir); err != nil {
		_ = lock.Close()
		return nil, err
	}
	l := &FileLog{dir: dir, lock: lock, opts: opts.withDefaults(), recReaders: new(sync.WaitGroup)}
	open := func(name string) *os.File {
		if err != nil {
			return nil
		}
		var f *os.File
		f, err = os.OpenFile(filepath.Join(dir, name), os.O_RDWR|os.O_CREATE, 0o640)
		return f
	}
	l.rec, l.cpf = open(recordsFile), open(checkpointsFile)
	l.hashes.f = open(hashesFile)
	if err == nil {
		err = l.recover()
	}
	if err != nil {
		l.closeFiles()
		return nil, fmt.Errorf("trail: open %s: %w", dir, err)
	}
	l.reqs = make(chan *appendReq)
	l.closing = make(chan struct{})
	l.done = make(chan struct{})
	go l.commitLoop()
	return l, nil
}

func (l *FileLog) damage(format string, args ...any) {
	if l.damaged == nil {
		l.damaged = fmt.Errorf("%w: "+format, append([]any{ErrDamaged}, args...)...)
	}
}

// recover loads checkpoints and the record index and repairs what a crash
// can leave behind.
func (l *FileLog) recover() error {
	if err := l.loadCheckpoints(); err != nil {
		return err
	}
	var anchor int64
	if len(l.cps) > 0 {
		anchor = int64(l.cps[len(l.cps)-1].head.Size)
	}
	st, err := l.hashes.f.Stat()
	if err != nil {
		return err
	}
	l.hashes.n = st.Size() / tlog.HashSize
	covered := recordsCovered(l.hashes.n)
	keep := min(anchor, covered) // records whose stored hashes are trusted as is

	// Leaf hashes are needed from keep-1 (to cross-check the side file) on.
	base := max(keep-1, 0)
	var leaves []tlog.Hash
	var firstBad error
	badFrames, lastBadIdx := 0, -1
	// The first frame that fails its check, and whether every frame
	// before it passed.
	firstTornIdx, firstTornOff, cleanBeforeTorn := -1, int64(0), false
	var lastDict *dictBody
	var lastDictSeq uint64
	res, err := scanFrames(io.NewSectionReader(l.rec, 0, math.MaxInt64), -1, func(i int, off int64, payload []byte, bad error) error {
		l.offsets = append(l.offsets, off)
		if bad != nil {
			if firstBad == nil {
				firstBad = fmt.Errorf("record frame %d at offset %d: %w", i, off, bad)
			}
			if firstTornIdx < 0 {
				firstTornIdx, firstTornOff, cleanBeforeTorn = i, off, badFrames == 0
			}
			badFrames++
			lastBadIdx = i
			return nil
		}
		if seq, ok := payloadSeq(payload); !ok || seq != uint64(i) {
			if firstBad == nil {
				firstBad = fmt.Errorf("record frame %d at offset %d holds seq %d", i, off, seq)
			}
			badFrames += 2 // not a torn write
		}
		if body, seq, ok := l.dicts.see(payload); ok {
			lastDict, lastDictSeq = &body, seq
		}
		if int64(i) >= base {
			canon, err := expand(payload, &l.dicts)
			var leaf tlog.Hash
			if err == nil {
				leaf, _, err = frameLeaf(canon) // a tombstone carries its leaf
			}
			if err != nil {
				if firstBad == nil {
					firstBad = fmt.Errorf("record frame %d at offset %d: %w", i, off, err)
				}
				badFrames += 2
			}
			leaves = append(leaves, leaf)
		}
		return nil
	})
	if err != nil {
		return err
	}
	l.end = res.size

	// A torn final write leaves a partial last line, or a last line that
	// fails its check. It is cut off unless a checkpoint covers it.
	cut := int64(-1)
	switch {
	case res.zeroTail && firstTornIdx >= 0 && cleanBeforeTorn && int64(firstTornIdx) >= anchor &&
		res.frames-firstTornIdx <= 2*l.opts.MaxBatch: // a batch may pass MaxBatch by its last request
		// Preallocated space (see write) is written in place, so a crash
		// may have kept some pages of the last batch and lost others: a
		// frame that fails its check, and after it whatever the lost pages
		// joined or shifted. Only the last batch can be torn (every
		// earlier one was synced before it was written), so the records
		// are cut from its first torn frame.
		l.offsets = l.offsets[:firstTornIdx]
		if keepLeaves := int64(firstTornIdx) - base; keepLeaves >= 0 && keepLeaves < int64(len(leaves)) {
			leaves = leaves[:keepLeaves]
		}
		l.dicts.m.Range(func(k, _ any) bool {
			if k.(uint64) >= uint64(firstTornIdx) {
				l.dicts.m.Delete(k)
			}
			return true
		})
		if lastDict != nil && lastDictSeq >= uint64(firstTornIdx) {
			lastDict = nil // made in the torn batch: a new one is gathered
		}
		cut, firstBad = firstTornOff, nil
	case res.size > res.goodEnd:
		if int64(res.frames) < anchor {
			l.damage("records file ends in a partial record covered by a checkpoint")
		}
		cut = res.goodEnd
	case badFrames == 1 && lastBadIdx == res.frames-1 && int64(lastBadIdx) >= anchor:
		l.offsets = l.offsets[:lastBadIdx]
		cut, firstBad = res.lastOff, nil
	}
	if firstBad != nil {
		l.damage("%v", firstBad)
	}
	n := int64(len(l.offsets))
	if n < anchor {
		l.damage("records file holds %d records, checkpoint covers %d", n, anchor)
	}
	if l.damaged == nil && keep > 0 { // then leaves holds frames [base, n)
		stored, err := l.hashes.ReadHashes([]int64{tlog.StoredHashIndex(0, keep-1)})
		if err != nil || stored[0] != leaves[keep-1-base] {
			l.damage("record %d does not match its stored hash", keep-1)
		}
	}
	if l.damaged != nil {
		return nil // leave every file as found, for Verify
	}
	if cut >= 0 {
		if err := l.rec.Truncate(cut); err != nil {
			return fmt.Errorf("truncate torn tail: %w", err)
		}
		if err := l.rec.Sync(); err != nil {
			return err
		}
		torn := res.size - cut // what was read past the last good frame
		if res.zeroTail {
			torn = res.goodEnd - cut // preallocated space is no torn record
		}
		l.recovery.TruncatedBytes, l.end = torn, cut
	}
	l.alloc = l.end
	if err := l.hashes.truncate(keep); err != nil {
		return err
	}
	if n > keep {
		if err := l.hashes.appendHashes(keep, leaves[keep-base:]); err != nil {
			return err
		}
		l.recovery.RebuiltHashes = n - keep
	}
	// New records go on with the last dictionary when it is of the
	// configured codec; otherwise a new one is gathered.
	if lastDict != nil && lastDict.Codec == dictCodeOf(l.opts.Compression) {
		w, err := newDictCodec(lastDict.Codec, lastDict.Content, true)
		if err != nil {
			return fmt.Errorf("dictionary record %d: %w", lastDictSeq, err)
		}
		l.cur.Store(&writerDict{seq: lastDictSeq, codec: w})
	}
	return l.hashes.f.Sync()
}

// recordsCovered is the number of records whose stored hashes fit in n hashes.
func recordsCovered(n int64) int64 {
	lo, hi := int64(0), n
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if tlog.StoredHashCount(mid) <= n {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return lo
}

// Recovery says what OpenFile repaired.
func (l *FileLog) Recovery() Recovery { return l.recovery }

// Damaged returns why the log refuses appends, or nil.
func (l *FileLog) Damaged() error { return l.damaged }

// Stats returns group-commit counters.
func (l *FileLog) Stats() Stats {
	l.mu.RLock()
	end := l.end
	l.mu.RUnlock()
	return Stats{Records: l.records.Load(), Batches: l.batches.Load(), RecordBytes: end}
}

// Size is the number of records in the log.
func (l *FileLog) Size() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return uint64(len(l.offsets))
}

// Get returns the record with sequence number seq.
func (l *FileLog) Get(seq uint64) (Record, error) {
	if seq >= l.Size() {
		return Record{}, fmt.Errorf("%w: %d", ErrNotFound, seq)
	}
	var rec Record
	err := l.Scan(seq, seq+1, func(r Record) error { rec = r; return nil })
	return rec, err
}

// Scan calls fn for each record with from <= seq < to, in order, stopping at
// the first error. A range beyond Size is clipped.
func (l *FileLog) Scan(from, to uint64, fn func(Record) error) error {
	l.mu.RLock()
	size := uint64(len(l.offsets))
	to = min(to, size)
	if from >= to {
		l.mu.RUnlock()
		return nil
	}
	start, end := l.offsets[from], l.end
	if to < size {
		end = l.offsets[to]
	}
	f, done := l.holdRecords()
	l.mu.RUnlock()
	defer done()

	seq := from
	_, err := scanFrames(io.NewSectionReader(f, start, end-start), end-start, func(_ int, _ int64, payload []byte, bad error) error {
		if bad != nil {
			return fmt.Errorf("trail: record %d: %w", seq, bad)
		}
		canon, err := expand(payload, &l.dicts)
		if err != nil {
			return fmt.Errorf("trail: record %d: %w", seq, err)
		}
		rec, err := decodeRecord(canon)
		if err != nil {
			return fmt.Errorf("trail: decode record %d: %w", seq, err)
		}
		seq++
		return fn(rec)
	})
	return err
}

// Close stops the committer after the appends it has accepted, writes a
// final checkpoint when a signer is configured, and closes the files.
func (l *FileLog) Close() error {
	l.closeOnce.Do(func() {
		close(l.closing)
		<-l.done
		var errs []error
		if l.opts.Signer != nil && l.damaged == nil && l.failure() == nil {
			if _, err := l.Checkpoint(); err != nil {
				errs = append(errs, err)
			}
		}
		l.cpMu.Lock()
		l.cpClosed = true
		l.cpMu.Unlock()
		l.pruneMu.Lock() // a running Prune owns the records file until it returns
		errs = append(errs, l.releasePrealloc())
		errs = append(errs, l.closeFiles())
		l.pruneMu.Unlock()
		l.closeErr = errors.Join(errs...)
	})
	return l.closeErr
}

func (l *FileLog) closeFiles() error {
	var errs []error
	for _, f := range []*os.File{l.rec, l.hashes.f, l.cpf, l.lock} { // the lock last
		if f != nil {
			errs = append(errs, f.Close())
		}
	}
	return errors.Join(errs...)
}

func (l *FileLog) failure() error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.failed
}

// payloadSeq reads the sequence number a stored record starts with
// (canonical, or compressed).
func payloadSeq(payload []byte) (uint64, bool) {
	const prefix = `{"seq":`
	var rest []byte
	switch {
	case bytes.HasPrefix(payload, []byte(prefix)):
		rest = payload[len(prefix):]
	case len(payload) > 0 && payload[0] == zMark:
		rest = payload[1:]
	default:
		return 0, false
	}
	end := bytes.IndexByte(rest, ',')
	if end < 0 {
		return 0, false
	}
	seq, err := strconv.ParseUint(string(rest[:end]), 10, 64)
	return seq, err == nil
}
