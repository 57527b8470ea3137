package trail

import (
	"fmt"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Frame is what verification learns about one stored record, whatever
// holds it (a frame of records.log, a row of a table).
type Frame struct {
	Leaf   tlog.Hash // the record's leaf hash (a tombstone's: the one it carries)
	Seq    int64     // the record's own Seq, -1 if unreadable
	Bad    error     // the record fails its own check; its Error() is the report's detail
	Pruned bool      // a tombstone (counted in Report.Pruned)
}

// Issue is a lesser problem of a record whose leaf hash and position are
// right (an edited index column, say): reported only when nothing worse is.
type Issue struct {
	Problem Problem
	Detail  string
}

// Evidence is a trail as a store hands it to [VerifyEvidence]: the signed
// checkpoints, one Frame per stored record in position order, and the
// stored hashes of the tree (the side file, the hashes table).
type Evidence struct {
	Origin      string   // the origin every checkpoint must name
	Checkpoints [][]byte // signed notes, oldest first
	// CheckHead, if set, checks a checkpoint further once its signature
	// and text are good (PostgreSQL: the size it is filed under).
	CheckHead func(i int, h TreeHead) error
	Frames    []Frame
	// Stored holds the tree's stored hashes by tlog index; Have, if not
	// nil, says which of them were read (the others are unknown).
	Stored []tlog.Hash
	Have   []bool
	// StoredDiffers is the detail of a StoredHashes report: a record the
	// signed checkpoints prove whose stored leaf hash differs.
	StoredDiffers string
	// Issues holds lesser problems by position (nil: none).
	Issues map[uint64]Issue
}

// VerifyEvidence checks the records with from <= seq < to (to beyond the
// end means to the end) of ev: every checkpoint's signature under
// verifierKey and its origin, that each checkpoint's root is the tree of
// the records it covers, that successive checkpoints are consistent, and
// each record's leaf hash and position. The report names the first bad
// record: changed, dropped, inserted or reordered, told apart with the
// stored hashes. Records after the latest checkpoint are checked against
// the stored hashes and their own sequence numbers only.
func VerifyEvidence(verifierKey string, ev Evidence, from, to uint64) (Report, error) {
	vs, err := Verifiers(verifierKey)
	if err != nil {
		return Report{}, err
	}
	// Checkpoints: signature and text.
	var heads []TreeHead
	for i, c := range ev.Checkpoints {
		n, err := note.Open(c, vs)
		var h TreeHead
		if err == nil {
			h, err = parseTreeHead(n.Text)
		}
		if err == nil && h.Origin != ev.Origin {
			err = fmt.Errorf("origin %q, want %q", h.Origin, ev.Origin)
		}
		if err == nil && ev.CheckHead != nil {
			err = ev.CheckHead(i, h)
		}
		if err != nil {
			return Report{Problem: BadCheckpoint, Seq: sizeOf(c), Detail: fmt.Sprintf("checkpoint %d: %v", i, err)}, nil
		}
		heads = append(heads, h)
	}

	frames := ev.Frames
	var tree memTree
	for _, f := range frames {
		if err := tree.add(f.Leaf); err != nil {
			return Report{}, err
		}
	}
	sideHashes := memHashes(ev.Stored)
	n := uint64(len(frames))
	to = min(to, n)
	rep := Report{From: from, To: to, Checkpoints: len(heads)}
	if len(heads) > 0 {
		rep.Anchored = heads[len(heads)-1].Size
	}
	rep.Unanchored = n - min(rep.Anchored, n)
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
		if idx >= int64(len(sideHashes)) || ev.Have != nil && !ev.Have[idx] {
			return tlog.Hash{}, false
		}
		return sideHashes[idx], true
	}

	// The records are proven up to the largest checkpoint whose root their
	// tree reproduces (checkpoints before it reproduce theirs too).
	var proven uint64
	failing := -1
	for i, h := range heads {
		if h.Size > n {
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
	issue := int64(-1) // first record in range with a lesser problem
	for i := rep.From; i < to; i++ {
		f := frames[i]
		if f.Pruned {
			rep.Pruned++
		}
		if f.Bad != nil {
			return rep.fail(Changed, i, f.Bad.Error()), nil
		}
		if want, ok := stored(i); ok && want != f.Leaf {
			if i < proven {
				return rep.fail(StoredHashes, i, ev.StoredDiffers), nil
			}
			p, detail := classifyByHash(i, frames, stored, authentic)
			return rep.fail(p, i, detail), nil
		}
		if f.Seq != int64(i) {
			p, detail := classifyBySeq(i, frames)
			return rep.fail(p, i, detail), nil
		}
		if _, ok := ev.Issues[i]; ok && issue < 0 {
			issue = int64(i)
		}
	}

	// A checkpoint whose root the records do not reproduce, with no record
	// pinpointed above: the stored hashes were rewritten too.
	if failing >= 0 {
		h := heads[failing]
		switch {
		case h.Size > n && n >= rep.From && n <= to:
			return rep.fail(Dropped, n, fmt.Sprintf("checkpoint %d covers %d records, the trail holds %d", failing, h.Size, n)), nil
		case h.Size <= n && proven < to && h.Size > rep.From:
			hint := ""
			if issue >= int64(proven) && issue < int64(h.Size) {
				hint = fmt.Sprintf("; record %d: %s", issue, ev.Issues[uint64(issue)].Detail)
			}
			return rep.fail(Changed, max(proven, rep.From), fmt.Sprintf("a record in [%d,%d) differs from checkpoint %d (stored hashes do not pinpoint it)%s", proven, h.Size, failing, hint)), nil
		}
	}
	// Lesser problems: records whose hash and position are right.
	if issue >= 0 {
		is := ev.Issues[uint64(issue)]
		return rep.fail(is.Problem, uint64(issue), is.Detail), nil
	}
	rep.OK = true
	return rep, nil
}

// Fail returns r as a failed report: problem p at record seq.
func (r Report) Fail(p Problem, seq uint64, detail string) Report {
	return r.fail(p, seq, detail)
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
func classifyByHash(i uint64, frames []Frame, stored func(uint64) (tlog.Hash, bool), authentic uint64) (Problem, string) {
	note := ""
	if i >= authentic {
		note = " (stored hash not yet covered by a checkpoint)"
	}
	want, _ := stored(i)
	got := frames[i].Leaf
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
		if frames[k].Leaf == want {
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
func classifyBySeq(i uint64, frames []Frame) (Problem, string) {
	s := frames[i].Seq
	switch {
	case s < 0:
		return Changed, "record is unreadable"
	case s < int64(i):
		return Inserted, fmt.Sprintf("position %d holds a record numbered %d", i, s)
	}
	for k := i + 1; k < uint64(len(frames)); k++ {
		if frames[k].Seq == int64(i) {
			return Reordered, fmt.Sprintf("record %d sits at position %d and record %d at %d", s, i, i, k)
		}
	}
	return Dropped, fmt.Sprintf("position %d holds record %d", i, s)
}
