package trail

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

// Compression of record bodies (FileOptions.Compression).
const (
	CompressionOff = "off"
	// CompressionS2 stores records S2-compressed (klauspost/compress/s2)
	// with a dictionary of at most 64 KiB: a few microseconds of CPU per
	// record, ~7x smaller on decision records.
	CompressionS2 = "s2"
	// CompressionZstd stores records zstd-compressed with a dictionary:
	// smaller still (~10x), at several times S2's CPU per record.
	CompressionZstd = "zstd"
)

// KindDictionary is the kind of a record that holds a compression
// dictionary: body {"codec":"s2-dict" or "zstd-raw","content":"<base64>"},
// id "sha256:<hex of the content>". It is a record like any other, so the
// tree, Verify and inclusion proofs cover it; it is never compressed and
// never pruned.
const KindDictionary = "trail.dictionary"

// DefaultDictionarySize is how many bytes of the first records written
// without a dictionary are gathered into one (FileOptions.DictionarySize);
// an S2 dictionary keeps the last 64 KiB of them.
const DefaultDictionarySize = 96 << 10

// ErrDictionary: a compressed record names a dictionary the trail does not
// hold (missing, or a record that is not a well-formed dictionary).
var ErrDictionary = errors.New("trail: compression dictionary missing or corrupt")

// A compressed frame's payload is
//
//	z<seq>,<dictionary seq>,<stuffed compressed canonical record after {"seq":N,>
//
// The dictionary record says which codec compressed it. A canonical record
// starts with '{', so the first byte tells the two apart. The leaf hash is
// of the canonical bytes, as for every record: the tree does not know how
// a record is stored. Stuffing keeps newlines out of the payload (frames
// are lines): 0x0A is written as esc 0x01, esc as esc 0x02.
const (
	zMark    = 'z'
	stuffEsc = 0x0B
	// Dictionary codecs: the content is the raw zstd dictionary, or an S2
	// dictionary as s2.Dict.Bytes serialises it (its repeat offset, then
	// at most 64 KiB of records).
	codeZstd = "zstd-raw"
	codeS2   = "s2-dict"
	// maxExpanded bounds a decompressed record (a decoder's output).
	maxExpanded = 16 << 20
)

// dictCodeOf is the dictionary codec of a compression mode.
func dictCodeOf(compression string) string {
	switch compression {
	case CompressionZstd:
		return codeZstd
	case CompressionS2:
		return codeS2
	}
	return ""
}

type dictBody struct {
	Codec   string `json:"codec"`
	Content []byte `json:"content"`
}

// dictCodec compresses record tails with one dictionary, or expands them.
// Safe for concurrent use.
type dictCodec struct {
	code string
	zenc *zstd.Encoder // zstd, writer side only
	zdec *zstd.Decoder // zstd
	s2   *s2.Dict      // s2, both ways
}

// newDictCodec builds the codec of a dictionary record's content; the
// zstd encoder only when forWriting (it holds per-CPU state).
func newDictCodec(code string, content []byte, forWriting bool) (*dictCodec, error) {
	c := &dictCodec{code: code}
	var err error
	switch code {
	case codeS2:
		if c.s2 = s2.NewDict(content); c.s2 == nil {
			return nil, errors.New("malformed S2 dictionary")
		}
	case codeZstd:
		c.zdec, err = zstd.NewReader(nil, zstd.WithDecoderDictRaw(0, content),
			zstd.WithDecoderConcurrency(runtime.GOMAXPROCS(0)), zstd.WithDecoderMaxMemory(maxExpanded))
		if err == nil && forWriting {
			c.zenc, err = zstd.NewWriter(nil, zstd.WithEncoderDictRaw(0, content), zstd.WithEncoderCRC(false),
				zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)),
				zstd.WithSingleSegment(true))
		}
	default:
		return nil, fmt.Errorf("unknown dictionary codec %q", code)
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

// s2Scratch holds a compressor's output before it is stuffed.
var s2Scratch = sync.Pool{New: func() any { return new([]byte) }}

// appendCompressed appends a canonical tail (the record after
// {"seq":N,) compressed and stuffed to dst.
func (c *dictCodec) appendCompressed(dst, tail []byte) []byte {
	bp := s2Scratch.Get().(*[]byte)
	var z []byte
	if c.s2 != nil {
		z = c.s2.Encode((*bp)[:0], tail)
	} else {
		z = c.zenc.EncodeAll(tail, (*bp)[:0])
	}
	dst = stuff(slices.Grow(dst, len(z)+len(z)/64+4), z)
	if cap(z) <= 64<<10 {
		*bp = z[:0]
	}
	s2Scratch.Put(bp)
	return dst
}

// decode appends the decompression of raw (unstuffed) to dst.
func (c *dictCodec) decode(dst, raw []byte) ([]byte, error) {
	if c.s2 != nil {
		n, err := s2.DecodedLen(raw)
		if err != nil {
			return nil, err
		}
		if n > maxExpanded {
			return nil, fmt.Errorf("decompresses to %d bytes", n)
		}
		dst = slices.Grow(dst, n)
		if _, err := c.s2.Decode(dst[len(dst):len(dst)+n], raw); err != nil {
			return nil, err
		}
		return dst[:len(dst)+n], nil
	}
	return c.zdec.DecodeAll(raw, dst)
}

// writerDict is the dictionary new records are compressed with.
type writerDict struct {
	seq   uint64
	codec *dictCodec
}

// dictSet holds the dictionaries met so far by the decoders of one reader,
// by their sequence number. Safe for concurrent use.
type dictSet struct {
	m sync.Map // uint64 → *dictCodec
}

func (d *dictSet) get(seq uint64) *dictCodec {
	if v, ok := d.m.Load(seq); ok {
		return v.(*dictCodec)
	}
	return nil
}

// see registers the dictionary in a canonical record, if it is one. A
// record of the dictionary kind that is malformed is not registered:
// records compressed with it then fail to decode (ErrDictionary).
func (d *dictSet) see(canon []byte) (body dictBody, seq uint64, ok bool) {
	if !isDictionary(canon) {
		return dictBody{}, 0, false
	}
	rec, err := decodeRecord(canon)
	if err != nil {
		return dictBody{}, 0, false
	}
	body, c, err := openDict(rec, false)
	if err != nil {
		return dictBody{}, 0, false
	}
	d.m.Store(rec.Seq, c)
	return body, rec.Seq, true
}

// openDict checks a dictionary record (kind, body, id the content's hash)
// and builds its codec; forWriting also prepares compression.
func openDict(rec Record, forWriting bool) (dictBody, *dictCodec, error) {
	var b dictBody
	if rec.Kind != KindDictionary || rec.Pruned {
		return b, nil, fmt.Errorf("%w: record %d is not a dictionary", ErrDictionary, rec.Seq)
	}
	if err := json.Unmarshal(rec.Body, &b); err != nil || len(b.Content) == 0 {
		return b, nil, fmt.Errorf("%w: record %d: malformed body", ErrDictionary, rec.Seq)
	}
	if rec.ID != dictionaryID(b.Content) {
		return b, nil, fmt.Errorf("%w: record %d: id is not its content's hash", ErrDictionary, rec.Seq)
	}
	c, err := newDictCodec(b.Codec, b.Content, forWriting)
	if err != nil {
		return b, nil, fmt.Errorf("%w: record %d: %w", ErrDictionary, rec.Seq, err)
	}
	return b, c, nil
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

// dictionaryContent makes a dictionary's content from a sample of
// canonical tails: for zstd the first size bytes, for S2 the last 64 KiB
// of those, serialised with the offset the encoder tries first (where the
// first sampled record's start recurs last).
func dictionaryContent(code string, sample []byte, size int) []byte {
	sample = sample[:min(size, len(sample))]
	if code != codeS2 {
		return sample
	}
	if len(sample) > s2.MaxDictSize {
		sample = sample[len(sample)-s2.MaxDictSize:]
	}
	d := s2.MakeDict(slices.Clone(sample), sample[:min(32, len(sample))])
	if d == nil {
		return nil
	}
	return d.Bytes()
}

// dictionaryRecord is the record that stores content as a dictionary.
func dictionaryRecord(code string, content []byte, rec Record) (Record, error) {
	body, err := json.Marshal(dictBody{Codec: code, Content: content})
	if err != nil {
		return Record{}, err
	}
	return CompactRecord(KindDictionary, dictionaryID(content), rec.Time, body), nil
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
	codec := dicts.get(ds)
	if codec == nil {
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
	out, err := codec.decode(dst, raw)
	if err != nil {
		return nil, fmt.Errorf("record %d: decompress: %w", seq, err)
	}
	if len(out) > maxExpanded {
		return nil, fmt.Errorf("record %d: decompresses to %d bytes", seq, len(out))
	}
	return out, nil
}

// Dictionary is a compression dictionary as another store of records
// (pgtrail) uses it: made from a sample of canonical record tails, kept
// as a record of KindDictionary in that store's own tree, and used to
// compress and expand bodies one by one. Safe for concurrent use.
type Dictionary struct {
	// Codec is the dictionary codec ("s2-dict" or "zstd-raw").
	Codec string
	codec *dictCodec
}

// NewDictionary makes a dictionary for compression (CompressionS2 or
// CompressionZstd) from a sample of records (their canonical bytes, or
// any bytes like those to be compressed), keeping the first size bytes
// (S2: at most the last 64 KiB of those). It returns the dictionary and
// its record (kind KindDictionary, id the content's SHA-256), to be
// stored before any record compressed with it.
func NewDictionary(compression string, sample []byte, size int, t time.Time) (*Dictionary, Record, error) {
	code := dictCodeOf(compression)
	if code == "" {
		return nil, Record{}, fmt.Errorf("%w: compression %q has no dictionary", ErrBadOption, compression)
	}
	content := dictionaryContent(code, sample, size)
	if content == nil {
		return nil, Record{}, fmt.Errorf("%w: sample of %d bytes is too small for a dictionary", ErrBadOption, len(sample))
	}
	c, err := newDictCodec(code, content, true)
	if err != nil {
		return nil, Record{}, err
	}
	rec, err := dictionaryRecord(code, content, Record{Time: t})
	if err != nil {
		return nil, Record{}, err
	}
	return &Dictionary{Codec: code, codec: c}, rec, nil
}

// OpenDictionary reads a dictionary record (as stored: its canonical
// body). forWriting also prepares compression (zstd keeps per-CPU state
// for it).
func OpenDictionary(rec Record, forWriting bool) (*Dictionary, error) {
	b, c, err := openDict(rec, forWriting)
	if err != nil {
		return nil, err
	}
	return &Dictionary{Codec: b.Codec, codec: c}, nil
}

// Compress returns src compressed with the dictionary, in a new slice
// (not stuffed: it may hold any byte).
func (d *Dictionary) Compress(src []byte) []byte {
	if d.codec.s2 != nil {
		return d.codec.s2.Encode(nil, src)
	}
	if d.codec.zenc == nil {
		panic("trail: Dictionary opened for reading only")
	}
	return d.codec.zenc.EncodeAll(src, nil)
}

// Expand appends the decompression of z (from Compress) to dst.
func (d *Dictionary) Expand(dst, z []byte) ([]byte, error) {
	out, err := d.codec.decode(dst, z)
	if err != nil {
		return nil, fmt.Errorf("trail: decompress: %w", err)
	}
	if len(out) > maxExpanded {
		return nil, fmt.Errorf("trail: decompresses to %d bytes", len(out))
	}
	return out, nil
}
