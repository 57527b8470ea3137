package trail

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Compression of record bodies (FileOptions.Compression).
const (
	CompressionOff  = "off"
	CompressionZstd = "zstd"
)

// KindDictionary is the kind of a record that holds a compression
// dictionary: body {"codec":"zstd-raw","content":"<base64>"}, id
// "sha256:<hex of the content>". It is a record like any other, so the
// tree, Verify and inclusion proofs cover it; it is never compressed and
// never pruned.
const KindDictionary = "trail.dictionary"

// DefaultDictionarySize is how many bytes of the first records written
// without a dictionary are gathered into one (FileOptions.DictionarySize).
const DefaultDictionarySize = 96 << 10

// ErrDictionary: a compressed record names a dictionary the trail does not
// hold (missing, or a record that is not a well-formed dictionary).
var ErrDictionary = errors.New("trail: compression dictionary missing or corrupt")

// A compressed frame's payload is
//
//	z<seq>,<dictionary seq>,<stuffed zstd of the canonical record after {"seq":N,>
//
// A canonical record starts with '{', so the first byte tells the two
// apart. The leaf hash is of the canonical bytes, as for every record: the
// tree does not know how a record is stored. Stuffing keeps newlines out
// of the payload (frames are lines): 0x0A is written as esc 0x01, esc as
// esc 0x02.
const (
	zMark    = 'z'
	stuffEsc = 0x0B
	dictCode = "zstd-raw"
	// maxExpanded bounds a decompressed record (a decoder's output).
	maxExpanded = 16 << 20
)

type dictBody struct {
	Codec   string `json:"codec"`
	Content []byte `json:"content"`
}

// writerDict is the dictionary new records are compressed with.
type writerDict struct {
	seq uint64
	enc *zstd.Encoder
}

// dictSet holds the dictionaries met so far by the decoders of one reader,
// by their sequence number. Safe for concurrent use.
type dictSet struct {
	m sync.Map // uint64 → *zstd.Decoder
}

func (d *dictSet) get(seq uint64) *zstd.Decoder {
	if v, ok := d.m.Load(seq); ok {
		return v.(*zstd.Decoder)
	}
	return nil
}

// see registers the dictionary in a canonical record, if it is one. A
// record of the dictionary kind that is malformed is not registered:
// records compressed with it then fail to decode (ErrDictionary).
func (d *dictSet) see(canon []byte) (content []byte, seq uint64, ok bool) {
	if !isDictionary(canon) {
		return nil, 0, false
	}
	rec, err := decodeRecord(canon)
	if err != nil || rec.Kind != KindDictionary || rec.Pruned {
		return nil, 0, false
	}
	var b dictBody
	if json.Unmarshal(rec.Body, &b) != nil || b.Codec != dictCode || len(b.Content) == 0 {
		return nil, 0, false
	}
	if rec.ID != dictionaryID(b.Content) {
		return nil, 0, false
	}
	dec, err := newDictDecoder(b.Content)
	if err != nil {
		return nil, 0, false
	}
	d.m.Store(rec.Seq, dec)
	return b.Content, rec.Seq, true
}

var dictKindMark = []byte(`"kind":"` + KindDictionary + `",`)

// isDictionary says whether a canonical record is of the dictionary kind,
// without decoding it.
func isDictionary(canon []byte) bool {
	i := bytes.IndexByte(canon, ',')
	return i > 0 && bytes.HasPrefix(canon[i+1:], dictKindMark)
}

func dictionaryID(content []byte) string {
	sum := sha256.Sum256(content)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func newDictDecoder(content []byte) (*zstd.Decoder, error) {
	return zstd.NewReader(nil, zstd.WithDecoderDictRaw(0, content),
		zstd.WithDecoderConcurrency(runtime.GOMAXPROCS(0)), zstd.WithDecoderMaxMemory(maxExpanded))
}

func newDictEncoder(content []byte) (*zstd.Encoder, error) {
	return zstd.NewWriter(nil, zstd.WithEncoderDictRaw(0, content), zstd.WithEncoderCRC(false),
		zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)),
		zstd.WithSingleSegment(true))
}

// dictionaryRecord is the record that stores content as a dictionary.
func dictionaryRecord(content []byte, rec Record) (Record, error) {
	body, err := json.Marshal(dictBody{Codec: dictCode, Content: content})
	if err != nil {
		return Record{}, err
	}
	return CompactRecord(KindDictionary, dictionaryID(content), rec.Time, body), nil
}

// compressTail compresses a canonical tail (the record after {"seq":N,)
// and stuffs it.
func compressTail(enc *zstd.Encoder, tail []byte) []byte {
	z := enc.EncodeAll(tail, make([]byte, 0, len(tail)/4+16))
	return stuff(make([]byte, 0, len(z)+len(z)/64+4), z)
}

// appendZPayload appends a compressed frame's payload.
func appendZPayload(dst []byte, seq, dict uint64, stuffed []byte) []byte {
	dst = append(dst, zMark)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, ',')
	dst = strconv.AppendUint(dst, dict, 10)
	dst = append(dst, ',')
	return append(dst, stuffed...)
}

func stuff(dst, src []byte) []byte {
	for {
		i := bytes.IndexAny(src, "\n\x0B")
		if i < 0 {
			return append(dst, src...)
		}
		dst = append(dst, src[:i]...)
		if src[i] == '\n' {
			dst = append(dst, stuffEsc, 1)
		} else {
			dst = append(dst, stuffEsc, 2)
		}
		src = src[i+1:]
	}
}

func unstuff(src []byte) ([]byte, error) {
	if bytes.IndexByte(src, stuffEsc) < 0 {
		return src, nil
	}
	dst := make([]byte, 0, len(src))
	for i := 0; i < len(src); i++ {
		c := src[i]
		if c != stuffEsc {
			dst = append(dst, c)
			continue
		}
		if i+1 == len(src) || src[i+1] != 1 && src[i+1] != 2 {
			return nil, errors.New("bad escape in compressed payload")
		}
		if i++; src[i] == 1 {
			dst = append(dst, '\n')
		} else {
			dst = append(dst, stuffEsc)
		}
	}
	return dst, nil
}

// parseZHeader splits a compressed payload into its sequence number, its
// dictionary's and the stuffed compressed bytes.
func parseZHeader(p []byte) (seq, dict uint64, z []byte, err error) {
	if len(p) == 0 || p[0] != zMark {
		return 0, 0, nil, errors.New("not a compressed payload")
	}
	rest := p[1:]
	num := func() (uint64, bool) {
		i := bytes.IndexByte(rest, ',')
		if i <= 0 || i > 20 || i > 1 && rest[0] == '0' {
			return 0, false
		}
		v, err := strconv.ParseUint(string(rest[:i]), 10, 64)
		rest = rest[i+1:]
		return v, err == nil
	}
	var ok1, ok2 bool
	seq, ok1 = num()
	if ok1 {
		dict, ok2 = num()
	}
	if !ok1 || !ok2 {
		return 0, 0, nil, errors.New("malformed compressed payload header")
	}
	if dict >= seq {
		return 0, 0, nil, fmt.Errorf("record %d names dictionary %d, which does not precede it", seq, dict)
	}
	return seq, dict, rest, nil
}

// expand returns the canonical bytes of a stored payload: the payload
// itself, or for a compressed one its decompression under the dictionary
// dicts holds for it.
func expand(payload []byte, dicts *dictSet) ([]byte, error) {
	if len(payload) == 0 || payload[0] != zMark {
		return payload, nil
	}
	seq, ds, z, err := parseZHeader(payload)
	if err != nil {
		return nil, err
	}
	dec := dicts.get(ds)
	if dec == nil {
		return nil, fmt.Errorf("%w: record %d names dictionary record %d", ErrDictionary, seq, ds)
	}
	raw, err := unstuff(z)
	if err != nil {
		return nil, err
	}
	dst := make([]byte, 0, 3*len(raw)+32)
	dst = append(dst, canonicalSeqPrefix...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, ',')
	out, err := dec.DecodeAll(raw, dst)
	if err != nil {
		return nil, fmt.Errorf("record %d: decompress: %w", seq, err)
	}
	if len(out) > maxExpanded {
		return nil, fmt.Errorf("record %d: decompresses to %d bytes", seq, len(out))
	}
	return out, nil
}
