package trail

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"

	"golang.org/x/mod/sumdb/note"
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

// frameInfo is what Verify learns about one stored frame.
type frameInfo struct {
	leaf   tlog.Hash
	seq    int64 // the record's own Seq, -1 if unreadable
	bad    error // framing or checksum error, or a malformed tombstone
	pruned bool  // a tombstone: leaf is the hash it carries
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
	v, err := note.NewVerifier(verifierKey)
	if err != nil {
		return Report{}, fmt.Errorf("trail: verifier key: %w", err)
	}
	// Checkpoints: signature and text.
	var heads []TreeHead
	for i, c := range l.Checkpoints() {
		n, err := note.Open(c, note.VerifierList(v))
		var h TreeHead
		if err == nil {
			h, err = parseTreeHead(n.Text)
		}
		if err == nil && h.Origin != l.opts.Origin {
			err = fmt.Errorf("origin %q, want %q", h.Origin, l.opts.Origin)
		}
		if err != nil {
			return Report{Problem: BadCheckpoint, Seq: sizeOf(c), Detail: fmt.Sprintf("checkpoint %d: %v", i, err)}, nil
		}
		heads = append(heads, h)
	}

	frames, err := l.readFrames(ctx)
	if err != nil {
		return Report{}, err
	}
	side, err := os.ReadFile(filepath.Join(l.dir, hashesFile))
	if err != nil {
		return Report{}, fmt.Errorf("trail: read side file: %w", err)
	}
	var tree memTree
	for _, f := range frames {
		if err := tree.add(f.leaf); err != nil {
			return Report{}, err
		}
	}
	sideHashes := memHashes(make([]tlog.Hash, len(side)/tlog.HashSize))
	for i := range sideHashes {
		copy(sideHashes[i][:], side[i*tlog.HashSize:])
	}

	to = min(to, uint64(len(frames)))
	rep := Report{From: from, To: to, Checkpoints: len(heads)}
	if len(heads) > 0 {
		rep.Anchored = heads[len(heads)-1].Size
	}
	rep.Unanchored = uint64(len(frames)) - min(rep.Anchored, uint64(len(frames)))
	if from > to {
		rep.From = to
	}

	// Successive checkpoints must be consistent (the log only grew). The
	// proof comes from the stored hashes, or failing that from the records.
	for i := 1; i < len(heads); i++ {
		a, b := heads[i-1], heads[i]
		if err := checkConsistency(a, b, sideHashes, tree.hashes); err != nil {
			return Report{Problem: BadCheckpoint, Seq: b.Size, Detail: fmt.Sprintf("checkpoint %d (size %d) does not extend checkpoint %d (size %d): %v", i, b.Size, i-1, a.Size, err)}, nil
		}
	}

	// The stored leaf hashes are authentic up to the largest checkpoint whose
	// root they reproduce; they pinpoint what changed in the records.
	var authentic uint64
	for i := len(heads) - 1; i >= 0; i-- {
		if root, err := tlog.TreeHash(int64(heads[i].Size), sideHashes); err == nil && root == heads[i].Root {
			authentic = heads[i].Size
			break
		}
	}
	stored := func(i uint64) (tlog.Hash, bool) {
		idx := tlog.StoredHashIndex(0, int64(i))
		if idx >= int64(len(sideHashes)) {
			return tlog.Hash{}, false
		}
		return sideHashes[idx], true
	}

	// The records are proven up to the largest checkpoint whose root their
	// tree reproduces (checkpoints before it reproduce theirs too).
	var proven uint64
	failing := -1
	for i, h := range heads {
		if h.Size > uint64(len(frames)) {
			failing = i
			break
		}
		root, err := tlog.TreeHash(int64(h.Size), tree.hashes)
		if err != nil {
			return Report{}, err
		}
		if root != h.Root {
			failing = i
			break
		}
		proven = h.Size
	}

	// Per-record checks, first bad record wins.
	for i := rep.From; i < to; i++ {
		f := frames[i]
		if f.pruned {
			rep.Pruned++
		}
		if f.bad != nil {
			return rep.fail(Changed, i, fmt.Sprintf("frame fails its check: %v", f.bad)), nil
		}
		if want, ok := stored(i); ok && want != f.leaf {
			if i < proven {
				return rep.fail(StoredHashes, i, "the record matches the signed checkpoints but the side file differs; delete "+hashesFile+" and reopen to rebuild it"), nil
			}
			p, detail := classifyByHash(i, frames, stored, authentic)
			return rep.fail(p, i, detail), nil
		}
		if f.seq != int64(i) {
			p, detail := classifyBySeq(i, frames)
			return rep.fail(p, i, detail), nil
		}
	}

	// A checkpoint whose root the records do not reproduce, with no record
	// pinpointed above: the stored hashes were rewritten too.
	if failing >= 0 {
		h, n := heads[failing], uint64(len(frames))
		switch {
		case h.Size > n && n >= rep.From && n <= to:
			return rep.fail(Dropped, n, fmt.Sprintf("checkpoint %d covers %d records, the trail holds %d", failing, h.Size, n)), nil
		case h.Size <= n && proven < to && h.Size > rep.From:
			return rep.fail(Changed, max(proven, rep.From), fmt.Sprintf("a record in [%d,%d) differs from checkpoint %d (stored hashes do not pinpoint it)", proven, h.Size, failing)), nil
		}
	}
	rep.OK = true
	return rep, nil
}

func (r Report) fail(p Problem, seq uint64, detail string) Report {
	r.OK, r.Problem, r.Seq, r.Detail = false, p, seq, detail
	return r
}

func sizeOf(signed []byte) uint64 {
	h, _ := unverifiedHead(signed)
	return h.Size
}

// checkConsistency checks that b extends a, with a proof built from the
// first reader that reproduces b's root. If none does, the records or stored
// hashes are at fault, not the checkpoints, and the root checks report it.
func checkConsistency(a, b TreeHead, readers ...tlog.HashReader) error {
	if b.Size < a.Size {
		return fmt.Errorf("tree shrank")
	}
	if a.Size == 0 { // every tree extends the empty one
		if empty, _ := tlog.TreeHash(0, nil); a.Root != empty {
			return fmt.Errorf("empty tree with a non-empty root")
		}
		return nil
	}
	for _, r := range readers {
		if root, err := tlog.TreeHash(int64(b.Size), r); err != nil || root != b.Root {
			continue
		}
		p, err := tlog.ProveTree(int64(b.Size), int64(a.Size), r)
		if err != nil {
			return err
		}
		return tlog.CheckTree(p, int64(b.Size), b.Root, int64(a.Size), a.Root)
	}
	return nil
}

// classifyByHash explains why frame i's leaf differs from the stored leaf i.
func classifyByHash(i uint64, frames []frameInfo, stored func(uint64) (tlog.Hash, bool), authentic uint64) (Problem, string) {
	note := ""
	if i >= authentic {
		note = " (stored hash not yet covered by a checkpoint)"
	}
	want, _ := stored(i)
	got := frames[i].leaf
	// Where does the record now at i belong, and where did record i go?
	belongs := int64(-1)
	for j := i + 1; ; j++ {
		h, ok := stored(j)
		if !ok {
			break
		}
		if h == got {
			belongs = int64(j)
			break
		}
	}
	movedTo := int64(-1)
	for k := i + 1; k < uint64(len(frames)); k++ {
		if frames[k].leaf == want {
			movedTo = int64(k)
			break
		}
	}
	switch {
	case belongs == int64(i)+1 && movedTo < 0:
		return Dropped, "record missing; the next record sits in its place" + note
	case belongs >= 0 && movedTo >= 0:
		return Reordered, fmt.Sprintf("record %d sits at position %d and record %d at %d%s", belongs, i, i, movedTo, note)
	case belongs >= 0:
		return Dropped, fmt.Sprintf("records [%d,%d) missing%s", i, belongs, note)
	case movedTo == int64(i)+1:
		return Inserted, "an extra record sits before this one" + note
	default:
		return Changed, "record hash differs from the stored hash" + note
	}
}

// classifyBySeq explains a record whose own Seq is not its position.
func classifyBySeq(i uint64, frames []frameInfo) (Problem, string) {
	s := frames[i].seq
	switch {
	case s < 0:
		return Changed, "record is unreadable"
	case s < int64(i):
		return Inserted, fmt.Sprintf("position %d holds a record numbered %d", i, s)
	}
	for k := i + 1; k < uint64(len(frames)); k++ {
		if frames[k].seq == int64(i) {
			return Reordered, fmt.Sprintf("record %d sits at position %d and record %d at %d", s, i, i, k)
		}
	}
	return Dropped, fmt.Sprintf("position %d holds record %d", i, s)
}

// readFrames reads every complete frame of the records file from disk.
func (l *FileLog) readFrames(ctx context.Context) ([]frameInfo, error) {
	var frames []frameInfo
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
		f := frameInfo{seq: -1, bad: bad} // a bad frame's payload is nil
		var err error
		f.leaf, f.pruned, err = frameLeaf(payload)
		if f.bad == nil {
			f.bad = err
		}
		var s struct {
			Seq *uint64 `json:"seq"`
		}
		if json.Unmarshal(payload, &s) == nil && s.Seq != nil && *s.Seq <= math.MaxInt64 {
			f.seq = int64(*s.Seq)
		}
		frames = append(frames, f)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("trail: verify: %w", err)
	}
	return frames, nil
}
