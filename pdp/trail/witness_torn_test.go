package trail

import (
	"bytes"
	"strings"
	"testing"
)

// TestParseWitnessFileTornTail: a witness file whose last note is cut at
// any byte (a torn append) keeps the checkpoints before it, the torn
// chunk is one bad entry naming its line, and WitnessTail is where the
// last whole note ends.
func TestParseWitnessFileTornTail(t *testing.T) {
	signer, _ := newKeys(t)
	_, cps := witnessedLog(t, FileOptions{Signer: signer}, 12, 3, 7, 10)
	whole := bytes.Join(cps[:2], nil)
	last := cps[2]
	for k := 1; k < len(last); k++ {
		file := append(bytes.Clone(whole), last[:k]...)
		got, err := ParseWitnessFile(file)
		if err != nil {
			t.Fatalf("cut at %d: %v", k, err)
		}
		if len(got) != 3 || got[0].Err != nil || got[1].Err != nil || got[2].Err == nil ||
			!strings.Contains(got[2].Err.Error(), "line 11") {
			t.Fatalf("cut at %d (%q): %+v", k, last[:k], got)
		}
		if tail := WitnessTail(got); tail != len(whole) {
			t.Fatalf("cut at %d: tail %d, want %d", k, tail, len(whole))
		}
	}
}

// TestParseWitnessFileBadChunkInMiddle: a chunk that is not a checkpoint
// between good ones is one bad entry naming its line, and parsing goes on
// at the next note.
func TestParseWitnessFileBadChunkInMiddle(t *testing.T) {
	signer, _ := newKeys(t)
	_, cps := witnessedLog(t, FileOptions{Signer: signer}, 12, 3, 7, 10)
	text, _, _ := strings.Cut(string(cps[1]), "\n\n")
	lines := strings.SplitAfter(text, "\n")
	tests := []struct {
		name, chunk, want string
	}{
		{"garbage", "hello\nworld\n\n", "line 6: the checkpoint starting here has no signature line after its empty line"},
		{"signature alone", "\n\u2014 pdp/trail AAAA\n", "line 7: a signature line with no checkpoint text"},
		{"torn at a line's end", lines[0] + lines[1], "line 6: text that is not part of a checkpoint"},
		{"garbled signature", text + "\n\n\u2014 x !!!\n", "line 6: malformed note"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			file := string(cps[0]) + tc.chunk + string(cps[2])
			got, err := ParseWitnessFile([]byte(file))
			if err != nil || len(got) != 3 {
				t.Fatalf("%q: %+v %v", file, got, err)
			}
			if got[0].Err != nil || !bytes.Equal(got[0].Signed, cps[0]) || got[2].Err != nil || !bytes.Equal(got[2].Signed, cps[2]) {
				t.Fatalf("the good ones: %+v", got)
			}
			if got[1].Err == nil || !strings.Contains(got[1].Err.Error(), tc.want) {
				t.Fatalf("bad chunk: %v, want %q", got[1].Err, tc.want)
			}
		})
	}
}
