package relations

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
)

// MaxLineLength bounds one line of a relationships text stream.
const MaxLineLength = 1 << 20

// LineError is a problem with one line of a relationships text stream: a
// line that does not parse, or that is too long.
type LineError struct {
	Line int // 1-based
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }

func (e *LineError) Unwrap() error { return e.Err }

// ScanRelationships reads relationships one per line (see
// ParseRelationship) as they come, holding one line at a time: blank lines
// and lines starting with # or // are skipped. It yields each relationship
// with a nil error; at the first line that does not parse it yields a
// *LineError naming the line and stops, and so it does for a read error
// (which is not a LineError).
func ScanRelationships(r io.Reader) iter.Seq2[Relationship, error] {
	return func(yield func(Relationship, error) bool) {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), MaxLineLength)
		n := 0
		for sc.Scan() {
			n++
			line := bytes.TrimSpace(sc.Bytes())
			if len(line) == 0 || line[0] == '#' || bytes.HasPrefix(line, []byte("//")) {
				continue
			}
			rel, err := ParseRelationship(string(line))
			if err != nil {
				yield(Relationship{}, &LineError{Line: n, Err: err})
				return
			}
			if !yield(rel, nil) {
				return
			}
		}
		switch err := sc.Err(); {
		case errors.Is(err, bufio.ErrTooLong):
			yield(Relationship{}, &LineError{Line: n + 1, Err: fmt.Errorf("longer than %d bytes", MaxLineLength)})
		case err != nil:
			yield(Relationship{}, fmt.Errorf("relations: read after line %d: %w", n, err))
		}
	}
}

// ImportOptions shape ImportRelationshipsFrom.
type ImportOptions struct {
	// Batch is the number of relationships per stream message;
	// DefaultImportBatch when <= 0.
	Batch int
	// PerTransaction, when > 0, commits every PerTransaction relationships
	// (each transaction is one bulk-import stream), and a transaction that
	// has run for ImportTransactionTime, whatever its size: SpiceDB ends
	// an import stream that runs longer than its streaming API timeout
	// (30s by default). 0 imports everything in one transaction.
	PerTransaction int
	// Progress, when not nil, is called after each batch with the number
	// of relationships sent so far.
	Progress func(sent int)
}

// ImportTransactionTime is how long one transaction of a chunked import
// (ImportOptions.PerTransaction) may run before it commits: under
// SpiceDB's default streaming API timeout of 30s.
const ImportTransactionTime = 20 * time.Second

// ImportError is the failure of an import. Committed relationships, the
// first of the sequence, were stored by transactions that committed
// before the failure (always 0 for a one-transaction import); none after.
type ImportError struct {
	Committed uint64
	Err       error
}

func (e *ImportError) Error() string {
	if e.Committed == 0 {
		return e.Err.Error()
	}
	return fmt.Sprintf("%v (after %d relationships were committed)", e.Err, e.Committed)
}

func (e *ImportError) Unwrap() error { return e.Err }

// ImportRelationshipsFrom is ImportRelationships from a sequence that may
// fail part way, such as ScanRelationships over a file, in one or (with
// PerTransaction) several transactions. The first error the sequence
// yields aborts the transaction in progress (not one of its relationships
// is stored, not even from batches already sent). Every failure is an
// *ImportError, which says how many relationships earlier transactions
// committed and unwraps to the cause (a *LineError still names its line).
func (s *Store) ImportRelationshipsFrom(ctx context.Context, rels iter.Seq2[Relationship, error], opts ImportOptions) (ImportResult, error) {
	if s.closed.Load() {
		return ImportResult{}, ErrClosed
	}
	batch := opts.Batch
	if batch <= 0 {
		batch = DefaultImportBatch
	}
	imp := &importer{perms: s.perms, batch: batch, progress: opts.Progress}
	defer imp.abort()
	started := time.Now()
	if err := imp.run(ctx, rels, opts.PerTransaction); err != nil {
		imp.abort()
		if imp.committed > 0 {
			// Reads must see what did commit: move the floor past it.
			if _, berr := s.importBarrier(context.WithoutCancel(ctx)); berr != nil {
				s.log.Warn("import failed after committing some relationships, and the barrier after them failed too", "err", berr)
			}
		}
		return ImportResult{}, &ImportError{Committed: imp.committed, Err: err}
	}
	res := ImportResult{Loaded: imp.committed, Elapsed: time.Since(started)}
	b, err := s.importBarrier(ctx)
	if err != nil {
		return ImportResult{}, &ImportError{Committed: imp.committed, Err: fmt.Errorf("relations: import done, but: %w", err)}
	}
	res.Revision = b
	s.log.Info("relationships imported", "loaded", res.Loaded, "took", res.Elapsed.Round(time.Millisecond),
		"per_second", int(res.PerSecond()))
	return res, nil
}

// importBarrier moves the floor past an import, which answers no token.
func (s *Store) importBarrier(ctx context.Context) (string, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	b, err := s.barrier(ctx)
	if err != nil {
		return "", err
	}
	s.setFloor(b)
	return b, nil
}

// importer is one import on its way: the open transaction (a bulk-import
// stream) and the batch being filled.
type importer struct {
	perms    v1.PermissionsServiceClient
	batch    int
	progress func(sent int)

	stream    v1.PermissionsService_ImportBulkRelationshipsClient
	cancel    context.CancelFunc // aborts the open transaction
	txStarted time.Time
	inTx      int // relationships in the open transaction
	buf       []*v1.Relationship
	sent      int
	committed uint64
}

// run sends every relationship of rels, committing a transaction every
// perTransaction (if > 0) relationships or ImportTransactionTime, and
// the last one at the end.
func (imp *importer) run(ctx context.Context, rels iter.Seq2[Relationship, error], perTransaction int) error {
	for r, err := range rels {
		if err != nil {
			return err
		}
		pr, err := relationshipToProto(r)
		if err != nil {
			return fmt.Errorf("relations: import relationship %d (%s): %w", imp.sent+len(imp.buf), r, err)
		}
		if err := imp.add(ctx, pr); err != nil {
			return err
		}
		if perTransaction > 0 && (imp.inTx >= perTransaction || time.Since(imp.txStarted) >= ImportTransactionTime) {
			if err := imp.commit(); err != nil {
				return err
			}
		}
	}
	return imp.commit()
}

// add puts a relationship in the batch, opening a transaction if none is
// open, and sends the batch when it is full.
func (imp *importer) add(ctx context.Context, r *v1.Relationship) error {
	if imp.stream == nil {
		// Cancelling the stream, rather than closing it, aborts the
		// transaction: SpiceDB commits only when the stream ends cleanly.
		sctx, cancel := context.WithCancel(ctx)
		stream, err := imp.perms.ImportBulkRelationships(sctx)
		if err != nil {
			cancel()
			return fmt.Errorf("relations: import: %w", err)
		}
		imp.stream, imp.cancel, imp.txStarted, imp.inTx = stream, cancel, time.Now(), 0
		imp.buf = make([]*v1.Relationship, 0, imp.batch)
	}
	imp.buf = append(imp.buf, r)
	imp.inTx++
	if len(imp.buf) == imp.batch {
		return imp.flush()
	}
	return nil
}

func (imp *importer) flush() error {
	if len(imp.buf) == 0 {
		return nil
	}
	if err := imp.stream.Send(&v1.ImportBulkRelationshipsRequest{Relationships: imp.buf}); err != nil {
		return fmt.Errorf("relations: import: %w", importError(imp.stream, err))
	}
	imp.sent += len(imp.buf)
	imp.buf = make([]*v1.Relationship, 0, imp.batch)
	if imp.progress != nil {
		imp.progress(imp.sent)
	}
	return nil
}

// commit sends what is left and ends the open transaction, if any.
func (imp *importer) commit() error {
	if imp.stream == nil {
		return nil
	}
	if err := imp.flush(); err != nil {
		return err
	}
	resp, err := imp.stream.CloseAndRecv()
	imp.cancel()
	imp.stream = nil
	if err != nil {
		return fmt.Errorf("relations: import: %w", err)
	}
	imp.committed += resp.GetNumLoaded()
	return nil
}

// abort cancels the open transaction, if any.
func (imp *importer) abort() {
	if imp.stream != nil {
		imp.cancel()
		imp.stream = nil
	}
}
