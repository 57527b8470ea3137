package trail

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"strconv"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// Record is one trail entry: a decision or an administrative action.
type Record struct {
	Seq  uint64          `json:"seq"`  // assigned on append: 0,1,2,… (the Merkle leaf index)
	Kind string          `json:"kind"` // "decision", "admin", …
	ID   string          `json:"id"`   // decision id (UUIDv7) or admin event id
	Time time.Time       `json:"time"`
	Body json.RawMessage `json:"body"` // the decision record itself, opaque here
	// Pruned marks a tombstone: the record's body was removed by retention.
	// Leaf then holds the Merkle leaf hash of the record as it was written
	// (base64), so the tree, and every record that remains, still verifies.
	Pruned bool   `json:"pruned,omitempty"`
	Leaf   string `json:"leaf,omitempty"`
}

// Canonical returns the bytes that are hashed into the Merkle tree for rec:
// its JSON encoding with the time in UTC and the body compacted. Encoding a
// record read back from the trail yields the bytes that were stored.
func Canonical(rec Record) ([]byte, error) {
	rec.Time = rec.Time.UTC()
	if len(rec.Body) == 0 {
		rec.Body = json.RawMessage("null")
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("trail: encode record %d: %w", rec.Seq, err)
	}
	return b, nil
}

// LeafHash is the Merkle leaf hash of rec: of its canonical bytes, or for a
// tombstone the hash it carries.
func LeafHash(rec Record) (tlog.Hash, error) {
	if rec.Pruned {
		var h tlog.Hash
		raw, err := base64.StdEncoding.DecodeString(rec.Leaf)
		if err != nil || len(raw) != len(h) {
			return h, fmt.Errorf("trail: tombstone %d: malformed leaf hash", rec.Seq)
		}
		copy(h[:], raw)
		return h, nil
	}
	b, err := Canonical(rec)
	if err != nil {
		return tlog.Hash{}, err
	}
	return tlog.RecordHash(b), nil
}

// Frame layout: 8 hex digits of length, space, 8 hex digits of CRC-32C, space,
// payload, newline. Payloads are JSON, so they hold no raw newline.
const frameHeader = 18

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var errFrame = errors.New("bad frame")

func appendFrame(dst, payload []byte) []byte {
	dst = fmt.Appendf(dst, "%08x %08x ", len(payload), crc32.Checksum(payload, castagnoli))
	dst = append(dst, payload...)
	return append(dst, '\n')
}

// parseFrame checks one line (without its newline) and returns its payload.
func parseFrame(line []byte) ([]byte, error) {
	if len(line) < frameHeader || line[8] != ' ' || line[17] != ' ' {
		return nil, fmt.Errorf("%w: short or malformed header", errFrame)
	}
	n, err1 := strconv.ParseUint(string(line[:8]), 16, 32)
	sum, err2 := strconv.ParseUint(string(line[9:17]), 16, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("%w: malformed header", errFrame)
	}
	payload := line[frameHeader:]
	if uint64(len(payload)) != n {
		return nil, fmt.Errorf("%w: length %d, header says %d", errFrame, len(payload), n)
	}
	if crc32.Checksum(payload, castagnoli) != uint32(sum) {
		return nil, fmt.Errorf("%w: checksum mismatch", errFrame)
	}
	return payload, nil
}

// bodyKey separates a canonical record's header fields from its body:
// Canonical writes seq, kind, id and time first, then the body, then the
// tombstone fields. A quote inside a JSON string is escaped, so the first
// occurrence is the key.
var bodyKey = []byte(`,"body":`)

// decodeRecord decodes a canonical record. The body, which the frame's
// checksum already covers and Canonical wrote as valid JSON, is sliced out
// rather than decoded and copied: readers (replay, queries) decode it
// themselves, once.
func decodeRecord(payload []byte) (Record, error) {
	var rec Record
	i := bytes.Index(payload, bodyKey)
	if i < 0 || len(payload) < i+len(bodyKey)+2 || payload[len(payload)-1] != '}' || payload[i+len(bodyKey)] != '{' {
		err := json.Unmarshal(payload, &rec) // tombstones and anything unusual
		return rec, err
	}
	head := make([]byte, 0, i+1)
	head = append(append(head, payload[:i]...), '}')
	if err := json.Unmarshal(head, &rec); err != nil {
		return rec, err
	}
	rec.Body = payload[i+len(bodyKey) : len(payload)-1]
	return rec, nil
}
