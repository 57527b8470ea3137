package pgtrail

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/ciampdp/pdp/pdp/trail"
)

// The helpers below are those of package trail's tests, for the same
// records in both stores.

func newKeys(t testing.TB) (note.Signer, string) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, "northbank-pdp")
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return s, vkey
}

var epoch = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func mkRec(i int) trail.Record {
	return trail.Record{
		Kind: "decision",
		ID:   fmt.Sprintf("d-%04d", i),
		Time: epoch.Add(time.Duration(i) * time.Millisecond),
		Body: json.RawMessage(fmt.Sprintf(`{"i": %d, "effect": "allow", "note": "<&>"}`, i)),
	}
}

// sizeOf is the tree size a signed checkpoint names.
func sizeOf(signed []byte) uint64 {
	h, _ := trail.UnverifiedHead(signed)
	return h.Size
}

// memHashes is a tlog.HashReader over hashes in memory.
type memHashes []tlog.Hash

func (m memHashes) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, idx := range indexes {
		if idx < 0 || idx >= int64(len(m)) {
			return nil, fmt.Errorf("hash %d out of range", idx)
		}
		out[i] = m[idx]
	}
	return out, nil
}
