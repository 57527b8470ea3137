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
	"unicode/utf8"

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

	// compact says Body is canonical JSON already (compact, strings
	// escaped as encoding/json escapes them): Canonical copies it as it is.
	compact bool
}

// CompactRecord is a record whose body the caller guarantees to be
// canonical JSON: compact, valid, with strings escaped as encoding/json's
// Marshal escapes them (HTML characters, U+2028 and U+2029 included), as
// Marshal or an encoder matching it byte for byte writes. Canonical then
// copies the body instead of compacting it again; a body that breaks the
// promise would be hashed as it is, and its record would not verify.
func CompactRecord(kind, id string, t time.Time, body []byte) Record {
	return Record{Kind: kind, ID: id, Time: t, Body: body, compact: true}
}

// Canonical returns the bytes that are hashed into the Merkle tree for rec:
// its JSON encoding with the time in UTC and the body compacted. Encoding a
// record read back from the trail yields the bytes that were stored.
//
// The encoding is written by hand and is byte for byte what encoding/json's
// Marshal of the Record wrote before (format 1 of the trail, the only one):
// {"seq":N,"kind":…,"id":…,"time":…,"body":…} then "pruned" and "leaf"
// when set. TestCanonicalMatchesJSON holds it to that.
func Canonical(rec Record) ([]byte, error) {
	return appendCanonical(nil, rec)
}

func appendCanonical(dst []byte, rec Record) ([]byte, error) {
	dst = append(dst, canonicalSeqPrefix...)
	dst = strconv.AppendUint(dst, rec.Seq, 10)
	dst = append(dst, ',')
	return appendCanonicalTail(dst, rec)
}

// appendCanonicalTail appends Canonical(rec) without its leading
// {"seq":N, — the part that does not depend on the sequence number.
func appendCanonicalTail(dst []byte, rec Record) ([]byte, error) {
	dst = append(dst, `"kind":`...)
	dst = appendJSONString(dst, rec.Kind)
	dst = append(dst, `,"id":`...)
	dst = appendJSONString(dst, rec.ID)
	dst = append(dst, `,"time":"`...)
	t := rec.Time.UTC()
	if y := t.Year(); y < 0 || y >= 10000 {
		return nil, fmt.Errorf("trail: encode record %d: time %v outside years 0-9999", rec.Seq, t)
	}
	dst = t.AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","body":`...)
	switch {
	case len(rec.Body) == 0:
		dst = append(dst, "null"...)
	case rec.compact:
		dst = append(dst, rec.Body...)
	default:
		// Validate, compact and escape as encoding/json does.
		b, err := json.Marshal(rec.Body)
		if err != nil {
			return nil, fmt.Errorf("trail: encode record %d: %w", rec.Seq, err)
		}
		dst = append(dst, b...)
	}
	if rec.Pruned {
		dst = append(dst, `,"pruned":true`...)
	}
	if rec.Leaf != "" {
		dst = append(dst, `,"leaf":`...)
		dst = appendJSONString(dst, rec.Leaf)
	}
	return append(dst, '}'), nil
}

const hexDigits = "0123456789abcdef"

// appendJSONString writes s as encoding/json's Marshal does: \" \\ \b \f
// \n \r \t, other control bytes and < > & as \u00XX, U+2028 and U+2029
// escaped, invalid UTF-8 as \ufffd.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' && b != '<' && b != '>' && b != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			start = i + size
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			start = i + size
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
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
	dst = appendFrameHeader(dst, len(payload), crc32.Checksum(payload, castagnoli))
	dst = append(dst, payload...)
	return append(dst, '\n')
}

// appendFrameHeader appends "LLLLLLLL CCCCCCCC ".
func appendFrameHeader(dst []byte, n int, sum uint32) []byte {
	var h [frameHeader]byte
	putFrameHeader(h[:], n, sum)
	return append(dst, h[:]...)
}

// putFrameHeader writes "LLLLLLLL CCCCCCCC " into h[:frameHeader].
func putFrameHeader(h []byte, n int, sum uint32) {
	putHex32(h[0:8], uint32(n))
	h[8] = ' '
	putHex32(h[9:17], sum)
	h[17] = ' '
}

func putHex32(dst []byte, v uint32) {
	for i := 7; i >= 0; i-- {
		dst[i] = hexDigits[v&0xF]
		v >>= 4
	}
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
	var ok bool
	if rec, ok = parseHeader(payload[:i]); !ok {
		head := make([]byte, 0, i+1)
		head = append(append(head, payload[:i]...), '}')
		if err := json.Unmarshal(head, &rec); err != nil {
			return rec, err
		}
	}
	rec.Body = payload[i+len(bodyKey) : len(payload)-1]
	return rec, nil
}

// parseHeader reads a canonical header, {"seq":N,"kind":"…","id":"…","time":"…"
// (without a closing brace), without reflection. It accepts only the plain
// form Canonical writes for ordinary values: strings without escapes or
// control bytes, valid UTF-8; anything else (ok false) is left to
// encoding/json, which reads it the same way or refuses it.
func parseHeader(h []byte) (Record, bool) {
	var rec Record
	h, ok := bytes.CutPrefix(h, []byte(canonicalSeqPrefix))
	if !ok {
		return rec, false
	}
	n := 0
	for n < len(h) && '0' <= h[n] && h[n] <= '9' {
		n++
	}
	if n == 0 || n > 1 && h[0] == '0' {
		return rec, false
	}
	seq, err := strconv.ParseUint(string(h[:n]), 10, 64)
	if err != nil {
		return rec, false
	}
	rec.Seq, h = seq, h[n:]
	var kind, id, tm []byte
	if kind, h, ok = plainMember(h, `,"kind":`); !ok {
		return rec, false
	}
	if id, h, ok = plainMember(h, `,"id":`); !ok {
		return rec, false
	}
	if tm, h, ok = plainMember(h, `,"time":`); !ok || len(h) != 0 {
		return rec, false
	}
	if err := rec.Time.UnmarshalJSON(tm); err != nil {
		return rec, false
	}
	rec.Kind, rec.ID = string(kind[1:len(kind)-1]), string(id[1:len(id)-1])
	return rec, true
}

// plainMember cuts key and a quoted string without escapes off h and
// returns the string with its quotes.
func plainMember(h []byte, key string) (str, rest []byte, ok bool) {
	h, ok = bytes.CutPrefix(h, []byte(key))
	if !ok || len(h) < 2 || h[0] != '"' {
		return nil, nil, false
	}
	end := bytes.IndexByte(h[1:], '"')
	if end < 0 {
		return nil, nil, false
	}
	str = h[:end+2]
	for _, c := range str[1 : len(str)-1] {
		if c < 0x20 || c == '\\' {
			return nil, nil, false
		}
	}
	if !utf8.Valid(str) {
		return nil, nil, false
	}
	return str, h[end+2:], true
}
