package trail

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"

	"golang.org/x/mod/sumdb/tlog"
)

// Problem names what Verify found wrong with a record or checkpoint.
type Problem string

// Problems Verify reports.
const (
	Changed       Problem = "changed"        // the record's hash differs from the one signed
	Dropped       Problem = "dropped"        // the record is missing; later ones moved up
	Inserted      Problem = "inserted"       // an extra record sits at this position
	Reordered     Problem = "reordered"      // the record is present, at another position
	BadCheckpoint Problem = "bad_checkpoint" // a checkpoint's signature or consistency fails
	StoredHashes  Problem = "stored_hashes"  // records are intact, the hashes side file is not
)

// Report is the outcome of Verify.
type Report struct {
	OK          bool   `json:"ok"`
	From        uint64 `json:"from"`        // first sequence number checked
	To          uint64 `json:"to"`          // one past the last sequence number checked
	Checkpoints int    `json:"checkpoints"` // signed checkpoints checked
	Anchored    uint64 `json:"anchored"`    // records covered by the latest checkpoint
	// Unanchored counts the records after the latest checkpoint: no
	// signature covers them yet, so they could be altered (or dropped)
	// without Verify noticing.
	Unanchored uint64  `json:"unanchored"`
	Pruned     uint64  `json:"pruned"` // tombstones among the records checked
	Problem    Problem `json:"problem,omitempty"`
	Seq        uint64  `json:"seq,omitempty"` // first bad record (or checkpoint size)
	Detail     string  `json:"detail,omitempty"`
}

func (r Report) String() string {
	if r.OK && r.Pruned > 0 {
		return fmt.Sprintf("ok: records [%d,%d) (%d pruned), %d checkpoints, %d anchored, %d unanchored", r.From, r.To, r.Pruned, r.Checkpoints, r.Anchored, r.Unanchored)
	}
	if r.OK {
		return fmt.Sprintf("ok: records [%d,%d), %d checkpoints, %d anchored, %d unanchored", r.From, r.To, r.Checkpoints, r.Anchored, r.Unanchored)
	}
	return fmt.Sprintf("%s at seq %d: %s", r.Problem, r.Seq, r.Detail)
}

// Verify re-reads the stored records and checkpoints and checks records with
// from <= seq < to (to beyond the end means to the end): every checkpoint's
// signature under verifierKey, that each checkpoint's root is the tree of the
// records it covers, that successive checkpoints are consistent, and each
// record's leaf hash and position. The report names the first bad record.
// Records after the latest checkpoint are checked against the stored hashes
// and their own sequence numbers only: no signature covers them yet.
// A tombstone (a record Prune removed the body of) is checked through the
// leaf hash it carries, like any record, and counted in Report.Pruned; its
// Kind, ID and Time are not covered by that hash.
//
// Verify holds the leaf hashes of the whole trail in memory (about 100 bytes
// per record).
func (l *FileLog) Verify(ctx context.Context, verifierKey string, from, to uint64) (Report, error) {
	// Checkpoints first: the records read after them cover them all.
	cps := l.Checkpoints()
	frames, err := l.readFrames(ctx)
	if err != nil {
		return Report{}, err
	}
	side, err := os.ReadFile(filepath.Join(l.dir, hashesFile))
	if err != nil {
		return Report{}, fmt.Errorf("trail: read side file: %w", err)
	}
	stored := make([]tlog.Hash, len(side)/tlog.HashSize)
	for i := range stored {
		copy(stored[i][:], side[i*tlog.HashSize:])
	}
	return VerifyEvidence(verifierKey, Evidence{
		Origin:        l.opts.Origin,
		Checkpoints:   cps,
		Frames:        frames,
		Stored:        stored,
		StoredDiffers: "the record matches the signed checkpoints but the side file differs; delete " + hashesFile + " and reopen to rebuild it",
	}, from, to)
}

// readFrames reads every complete frame of the records file from disk.
func (l *FileLog) readFrames(ctx context.Context) ([]Frame, error) {
	var frames []Frame
	var dicts dictSet
	l.mu.RLock()
	rec, done := l.holdRecords()
	l.mu.RUnlock()
	defer done()
	_, err := scanFrames(io.NewSectionReader(rec, 0, math.MaxInt64), -1, func(i int, _ int64, payload []byte, bad error) error {
		if i%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		f := Frame{Seq: -1} // a bad frame's payload is nil
		if bad == nil {
			// Dictionaries as read here, not as the log holds them: a
			// changed dictionary changes what the records using it hash to.
			dicts.see(payload)
			var canon []byte
			if canon, bad = expand(payload, &dicts); bad == nil {
				payload = canon
			} else if seq, ok := payloadSeq(payload); ok && seq <= math.MaxInt64 {
				f.Seq = int64(seq)
			}
		}
		var err error
		f.Leaf, f.Pruned, err = frameLeaf(payload)
		if bad == nil {
			bad = err
		}
		if bad != nil {
			f.Bad = fmt.Errorf("frame fails its check: %w", bad)
		}
		var s struct {
			Seq *uint64 `json:"seq"`
		}
		switch seq, ok := payloadSeq(payload); {
		case f.Seq >= 0: // a compressed record that does not decode
		case ok && seq <= math.MaxInt64 && payload[len(payload)-1] == '}':
			f.Seq = int64(seq) // the canonical form: no need to decode 2 KB
		case json.Unmarshal(payload, &s) == nil && s.Seq != nil && *s.Seq <= math.MaxInt64:
			f.Seq = int64(*s.Seq)
		}
		frames = append(frames, f)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("trail: verify: %w", err)
	}
	return frames, nil
}
