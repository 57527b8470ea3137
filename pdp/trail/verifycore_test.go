package trail

import (
	"errors"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// evidence is a trail of n records in memory, with a checkpoint over the
// first cp of them.
func evidence(t *testing.T, n, cp int) (Evidence, string) {
	t.Helper()
	signer, vkey := newKeys(t)
	ev := Evidence{Origin: DefaultOrigin, StoredDiffers: "stored differs"}
	var tree memTree
	for i := range n {
		rec := mkRec(i)
		rec.Seq = uint64(i)
		leaf, err := LeafHash(rec)
		if err != nil {
			t.Fatal(err)
		}
		ev.Frames = append(ev.Frames, Frame{Leaf: leaf, Seq: int64(i)})
		if err := tree.add(leaf); err != nil {
			t.Fatal(err)
		}
		if i+1 == cp {
			root, err := tlog.TreeHash(int64(cp), tree.hashes)
			if err != nil {
				t.Fatal(err)
			}
			signed, err := TreeHead{Origin: DefaultOrigin, Size: uint64(cp), Root: root}.Sign(signer)
			if err != nil {
				t.Fatal(err)
			}
			ev.Checkpoints = append(ev.Checkpoints, signed)
		}
	}
	ev.Stored = append([]tlog.Hash(nil), tree.hashes...)
	return ev, vkey
}

// TestVerifyEvidence: the verify core both stores use, on evidence built
// in memory: what a store adds (a check of each checkpoint, stored hashes
// it could not read, lesser problems of a record) and the first problem
// wins.
func TestVerifyEvidence(t *testing.T) {
	for _, tc := range []struct {
		name    string
		change  func(ev *Evidence)
		problem Problem // "" for OK
		seq     uint64
		detail  string
	}{
		{"intact", func(*Evidence) {}, "", 0, ""},
		{"stored hashes partly unread", func(ev *Evidence) {
			ev.Have = make([]bool, len(ev.Stored))
			for i := range ev.Have {
				ev.Have[i] = i%2 == 0
			}
		}, "", 0, ""},
		{"checkpoint refused by the store", func(ev *Evidence) {
			ev.CheckHead = func(i int, h TreeHead) error { return errors.New("filed under another size") }
		}, BadCheckpoint, 6, "checkpoint 0: filed under another size"},
		{"other origin", func(ev *Evidence) { ev.Origin = "elsewhere" }, BadCheckpoint, 6, `origin "` + DefaultOrigin + `", want "elsewhere"`},
		{"lesser problem", func(ev *Evidence) {
			ev.Issues = map[uint64]Issue{4: {Problem: Changed, Detail: "the id column differs"}}
		}, Changed, 4, "the id column differs"},
		{"bad record before a lesser problem", func(ev *Evidence) {
			ev.Issues = map[uint64]Issue{4: {Problem: Changed, Detail: "the id column differs"}}
			ev.Frames[2].Bad = errors.New("unreadable row")
		}, Changed, 2, "unreadable row"},
		{"proven record, other stored hash", func(ev *Evidence) {
			ev.Stored[tlog.StoredHashIndex(0, 1)][0] ^= 1
		}, StoredHashes, 1, "stored differs"},
		{"dropped record", func(ev *Evidence) {
			ev.Frames = append(ev.Frames[:3], ev.Frames[4:]...)
		}, Dropped, 3, ""},
		{"reordered records", func(ev *Evidence) {
			ev.Frames[1], ev.Frames[2] = ev.Frames[2], ev.Frames[1]
		}, Reordered, 1, ""},
		{"tombstones counted", func(ev *Evidence) { ev.Frames[0].Pruned = true }, "", 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, vkey := evidence(t, 8, 6)
			tc.change(&ev)
			rep, err := VerifyEvidence(vkey, ev, 0, 100)
			if err != nil {
				t.Fatal(err)
			}
			if tc.problem == "" {
				if !rep.OK || rep.To != uint64(len(ev.Frames)) || rep.Anchored != 6 || rep.Unanchored != 2 {
					t.Fatalf("report %+v, want ok over 8 records, 6 anchored", rep)
				}
				if want := uint64(strings.Count(tc.name, "tombstones")); rep.Pruned != want {
					t.Errorf("pruned %d, want %d", rep.Pruned, want)
				}
				return
			}
			if rep.OK || rep.Problem != tc.problem || rep.Seq != tc.seq || !strings.Contains(rep.Detail, tc.detail) {
				t.Fatalf("report %+v, want %s at %d (%q)", rep, tc.problem, tc.seq, tc.detail)
			}
		})
	}
	if _, err := VerifyEvidence("not a key", Evidence{}, 0, 1); err == nil {
		t.Error("a malformed verifier key was accepted")
	}
}

// TestTrailIsALeaf: the trail knows nothing of decisions or of PostgreSQL:
// it imports no package of this module and no database driver.
func TestTrailIsALeaf(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, "github.com/ciampdp/pdp/") && p != "github.com/ciampdp/pdp/pdp/trail" || strings.Contains(p, "pgx") {
			t.Errorf("pdp/trail depends on %s", p)
		}
	}
}
