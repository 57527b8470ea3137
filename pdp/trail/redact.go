package trail

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/bits"
	"strings"
	"sync"
	"unicode/utf8"

	"filippo.io/age"
)

// Redaction replaces personal data in a decision record's body, before the
// record is written, by a marker object that keeps the record useful:
//
//	{"$redacted":"hmac-sha256","value":"<base64>"}  HMAC-SHA256, under a key the
//	    PDP holds, of the value's JSON text: equal values still match across
//	    records, and whoever holds the key can confirm a candidate (HashValue).
//	{"$redacted":"age","value":"<base64>"}  the value's JSON text encrypted
//	    with age to the auditors' recipients; Reveal restores it.
//	{"$redacted":"literal","value":{…}}  not a redaction: an object of the
//	    original body that had a "$redacted" key of its own, wrapped so that
//	    nobody (a client, say, through the request context) can plant a fake
//	    marker and make a decision look unreplayable, or replay with a value
//	    it chose. Reveal unwraps it.
//
// A redacted body must therefore be read through Reveal (with no identities
// when none are held), which also names the values that stay hidden.

// Redaction methods of a RedactionRule.
const (
	RedactHash    = "hash"    // keyed hash: HMAC-SHA256 under the PDP's hash key
	RedactEncrypt = "encrypt" // age encryption to the auditors' recipients
)

// Marker "$redacted" values.
const (
	MarkerHMAC    = "hmac-sha256"
	MarkerAge     = "age"
	MarkerLiteral = "literal"
)

// MinHashKey is the shortest hash key NewRedactor accepts, in bytes: the
// values hashed (e-mail addresses, phone numbers) are guessable, so the key
// is all that keeps them from being confirmed by brute force.
const MinHashKey = 16

// MaxRedactionRules is the most rules a Redactor holds.
const MaxRedactionRules = 64

// ReplayInput is the part of a decision body that replay evaluates.
const ReplayInput = "decision.input"

const (
	markerKey   = "$redacted"
	maxDepthIn  = 1000  // Redact: nesting of a body (wrapping may double it)
	maxDepthOut = 10000 // Reveal: nesting of a redacted body (encoding/json's limit)
)

var (
	ErrBadRule      = errors.New("trail: bad redaction rule")
	ErrNoHashKey    = errors.New("trail: hash redaction needs a key")
	ErrNoRecipient  = errors.New("trail: encrypt redaction needs at least one auditor recipient")
	ErrBadRecipient = errors.New("trail: bad auditor recipient")
	ErrBadIdentity  = errors.New("trail: bad auditor identity")
	ErrBadBody      = errors.New("trail: malformed record body")
	ErrBadMarker    = errors.New("trail: malformed redaction marker")
)

// RedactionRule redacts the values at Path with Method (RedactHash or
// RedactEncrypt).
//
// Path is a dot-separated path into the decision body, starting at its top
// ("decision", "request", …). A segment names an object key; a number also
// names an array element; "*" matches every key of an object and every
// element of an array. A literal ".", "*" or "\" in a key is escaped with
// "\". Examples: request.subject.properties.email, request.context.ip,
// decision.input.entities.*.attrs.email, decision.input.context.device.*.
//
// A value matched by several rules is redacted once, by the first of them;
// a value inside one already redacted is not visited.
type RedactionRule struct {
	Path   string `json:"path" mapstructure:"path"`
	Method string `json:"method" mapstructure:"method"`
}

// segment is one step of a rule path.
type segment struct {
	key   string // the object key (unescaped); "*" with wild
	index int    // key as an array index, or -1
	wild  bool
}

// parsePath parses a rule path.
func parsePath(p string) ([]segment, error) {
	if p == "" {
		return nil, errors.New("empty path")
	}
	if !utf8.ValidString(p) {
		return nil, errors.New("path is not valid UTF-8")
	}
	var segs []segment
	var cur []byte
	star := false // cur holds an unescaped '*'
	flush := func() error {
		switch {
		case len(cur) == 0:
			return fmt.Errorf("empty segment %d", len(segs)+1)
		case star && len(cur) == 1:
			segs = append(segs, segment{key: "*", index: -1, wild: true})
		case star:
			return fmt.Errorf("segment %q: * must be a whole segment (escape a literal * as \\*)", cur)
		default:
			segs = append(segs, segment{key: string(cur), index: parseIndex(cur)})
		}
		cur, star = cur[:0], false
		return nil
	}
	for i := 0; i < len(p); i++ {
		switch c := p[i]; c {
		case '\\':
			if i+1 == len(p) {
				return nil, errors.New("path ends in a lone \\")
			}
			i++
			if e := p[i]; e != '.' && e != '*' && e != '\\' {
				return nil, fmt.Errorf("unknown escape \\%c (only \\. \\* \\\\)", e)
			}
			cur = append(cur, p[i])
		case '.':
			if err := flush(); err != nil {
				return nil, err
			}
		case '*':
			star = true
			cur = append(cur, c)
		default:
			cur = append(cur, c)
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return segs, nil
}

// parseIndex is k as an array index (decimal, no sign or leading zero), or -1.
func parseIndex(k []byte) int {
	if len(k) == 0 || len(k) > 9 || (k[0] == '0' && len(k) > 1) {
		return -1
	}
	n := 0
	for _, c := range k {
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// escapeKey writes key as a path segment.
func escapeKey(b *strings.Builder, key string) {
	for i := 0; i < len(key); i++ {
		if c := key[i]; c == '.' || c == '*' || c == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(key[i])
	}
}

// formatPath is the path of concrete keys (array indexes as numbers).
func formatPath(keys []string) string {
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('.')
		}
		escapeKey(&b, k)
	}
	return b.String()
}

// formatSegments is the rule path of segs (parsePath's inverse).
func formatSegments(segs []segment) string {
	var b strings.Builder
	for i, s := range segs {
		if i > 0 {
			b.WriteByte('.')
		}
		if s.wild {
			b.WriteByte('*')
		} else {
			escapeKey(&b, s.key)
		}
	}
	return b.String()
}

type compiledRule struct {
	method string
	segs   []segment
}

// Redactor redacts decision bodies by its rules. It is safe for concurrent
// use.
type Redactor struct {
	rules      []compiledRule
	endsAt     []uint64 // endsAt[d]: the rules whose path has d segments
	all        uint64
	macs       sync.Pool // of hash.Hash, HMAC-SHA256 under the hash key
	recipients []age.Recipient
}

// NewRedactor checks rules and returns a Redactor. hashKey (at least
// MinHashKey bytes, kept secret by the PDP) is needed by hash rules;
// recipients, the auditors' age public keys ("age1…", or hybrid
// post-quantum "age1pq1…", not mixed), by encrypt rules. A Redactor without
// rules changes no value, but still wraps objects that have a "$redacted" key.
func NewRedactor(rules []RedactionRule, hashKey []byte, recipients []string) (*Redactor, error) {
	if len(rules) > MaxRedactionRules {
		return nil, fmt.Errorf("%w: %d rules, at most %d", ErrBadRule, len(rules), MaxRedactionRules)
	}
	r := &Redactor{}
	seen := make(map[string]int, len(rules))
	var hashes, encrypts bool
	for i, rule := range rules {
		segs, err := parsePath(rule.Path)
		if err != nil {
			return nil, fmt.Errorf("%w %d (%q): %v", ErrBadRule, i+1, rule.Path, err)
		}
		switch rule.Method {
		case RedactHash:
			hashes = true
		case RedactEncrypt:
			encrypts = true
		default:
			return nil, fmt.Errorf("%w %d (%q): method %q, want %s or %s", ErrBadRule, i+1, rule.Path, rule.Method, RedactHash, RedactEncrypt)
		}
		canon := formatSegments(segs)
		if j, dup := seen[canon]; dup {
			return nil, fmt.Errorf("%w %d (%q): same path as rule %d", ErrBadRule, i+1, rule.Path, j)
		}
		seen[canon] = i + 1
		r.rules = append(r.rules, compiledRule{method: rule.Method, segs: segs})
		for len(r.endsAt) <= len(segs) {
			r.endsAt = append(r.endsAt, 0)
		}
		r.endsAt[len(segs)] |= 1 << i
		r.all |= 1 << i
	}
	if hashes && len(hashKey) == 0 {
		return nil, fmt.Errorf("%w: a rule uses %s, but no hash key is configured", ErrNoHashKey, RedactHash)
	}
	if len(hashKey) > 0 && len(hashKey) < MinHashKey {
		return nil, fmt.Errorf("%w: the hash key has %d bytes, want at least %d", ErrNoHashKey, len(hashKey), MinHashKey)
	}
	key := bytes.Clone(hashKey)
	r.macs.New = func() any { return hmac.New(sha256.New, key) }
	if encrypts && len(recipients) == 0 {
		return nil, fmt.Errorf("%w: a rule uses %s", ErrNoRecipient, RedactEncrypt)
	}
	for i, s := range recipients {
		rc, err := parseRecipient(s)
		if err != nil {
			return nil, fmt.Errorf("%w %d: %v", ErrBadRecipient, i+1, err)
		}
		r.recipients = append(r.recipients, rc)
	}
	if len(r.recipients) > 0 {
		// age refuses some mixes (classic with post-quantum): find out now.
		w, err := age.Encrypt(io.Discard, r.recipients...)
		if err == nil {
			err = w.Close()
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadRecipient, err)
		}
	}
	return r, nil
}

func parseRecipient(s string) (age.Recipient, error) {
	s = strings.TrimSpace(s)
	switch {
	case strings.HasPrefix(s, "age1pq1"):
		return age.ParseHybridRecipient(s)
	case strings.HasPrefix(s, "age1"):
		return age.ParseX25519Recipient(s)
	case strings.HasPrefix(strings.ToUpper(s), "AGE-SECRET-KEY-"):
		// Never echo it: it is the auditor's secret.
		return nil, errors.New("this is an identity (secret key); give its recipient (age1…), and keep the identity with the auditor")
	default:
		return nil, errors.New("not an age recipient (age1…)")
	}
}

// HashValue is the "value" of the hash marker of value (encoded as the
// Recorder encodes it, with encoding/json) under key: an auditor holding
// the key confirms a candidate by comparing.
func HashValue(key []byte, value any) (string, error) {
	text, err := json.Marshal(value)
	if err != nil {
		return "", fmt.Errorf("trail: hash value: %w", err)
	}
	m := hmac.New(sha256.New, key)
	m.Write(text)
	return base64.StdEncoding.EncodeToString(m.Sum(nil)), nil
}

// Redact returns body, compacted, with every value a rule matches replaced
// by its marker. Paths that are absent are skipped. body must be one JSON
// value nested at most 1000 deep.
func (r *Redactor) Redact(body []byte) ([]byte, error) {
	w := walker{lexer: lexer{in: body, out: make([]byte, 0, len(body)+len(body)/8+64), max: maxDepthIn}, v: redaction{r}}
	if err := w.top(frame{mask: r.all}); err != nil {
		return nil, err
	}
	return w.out, nil
}

// redaction is the visitor of Redact: it replaces the values the rules
// match by their markers, and wraps objects that have a "$redacted" key of
// their own in literal markers.
type redaction struct{ r *Redactor }

// value redacts the value in f if a rule's path ends there.
func (v redaction) value(w *walker, f frame) (bool, error) {
	if f.mask != 0 && f.d < len(v.r.endsAt) {
		if m := f.mask & v.r.endsAt[f.d]; m != 0 {
			return true, v.redact(w, bits.TrailingZeros64(m), f.d)
		}
	}
	return false, nil
}

func (v redaction) member(_ *walker, f frame, k member, _ bool, _ int) (frame, bool, error) {
	var child uint64
	if f.mask != 0 {
		child = v.r.byKey(f.mask, f.d, k.bytes())
	}
	return frame{d: f.d + 1, mask: child, raw: f.raw}, false, nil
}

func (v redaction) element(f frame, n int) frame {
	var child uint64
	if f.mask != 0 {
		child = v.r.byIndex(f.mask, f.d, n)
	}
	return frame{d: f.d + 1, mask: child, raw: f.raw}
}

const literalPrefix = `{"` + markerKey + `":"` + MarkerLiteral + `","value":`

// closed wraps an object of the body that has a "$redacted" key:
// {"$redacted":"literal","value":{…}}.
func (v redaction) closed(w *walker, f frame, start int, marked bool) {
	if !marked || f.raw {
		return
	}
	n := len(w.out) - start
	w.out = append(w.out, literalPrefix...)
	copy(w.out[start+len(literalPrefix):], w.out[start:start+n])
	copy(w.out[start:], literalPrefix)
	w.out = append(w.out, '}')
}

// byKey is the rules of mask (matching a value at depth d) that match its
// member k.
func (r *Redactor) byKey(mask uint64, d int, k []byte) uint64 {
	var child uint64
	for m := mask; m != 0; m &= m - 1 {
		i := bits.TrailingZeros64(m)
		if seg := r.rules[i].segs[d]; seg.wild || seg.key == string(k) {
			child |= 1 << i
		}
	}
	return child
}

// byIndex is the rules of mask that match element n.
func (r *Redactor) byIndex(mask uint64, d, n int) uint64 {
	var child uint64
	for m := mask; m != 0; m &= m - 1 {
		i := bits.TrailingZeros64(m)
		if seg := r.rules[i].segs[d]; seg.wild || seg.index == n {
			child |= 1 << i
		}
	}
	return child
}

// redact copies the value at depth d and replaces it by its marker under
// rule i.
func (v redaction) redact(w *walker, i, d int) error {
	start := len(w.out)
	if err := w.value(frame{d: d, raw: true}); err != nil {
		return err
	}
	text := w.out[start:] // the value's compact JSON text
	switch v.r.rules[i].method {
	case RedactHash:
		m := v.r.macs.Get().(hash.Hash)
		m.Reset()
		m.Write(text)
		var sum [sha256.Size]byte
		m.Sum(sum[:0])
		v.r.macs.Put(m)
		w.out = append(w.out[:start], `{"`+markerKey+`":"`+MarkerHMAC+`","value":"`...)
		w.out = base64.StdEncoding.AppendEncode(w.out, sum[:])
	case RedactEncrypt:
		var ct bytes.Buffer
		ct.Grow(len(text) + 256)
		aw, err := age.Encrypt(&ct, v.r.recipients...)
		if err == nil {
			_, err = aw.Write(text)
		}
		if err == nil {
			err = aw.Close()
		}
		if err != nil {
			return fmt.Errorf("trail: encrypt the value at rule %q: %w", formatSegments(v.r.rules[i].segs), err)
		}
		w.out = append(w.out[:start], `{"`+markerKey+`":"`+MarkerAge+`","value":"`...)
		w.out = base64.StdEncoding.AppendEncode(w.out, ct.Bytes())
	}
	w.out = append(w.out, `"}`...)
	return nil
}
