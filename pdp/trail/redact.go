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
	"strconv"
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

func parseIdentities(ss []string) ([]age.Identity, error) {
	ids := make([]age.Identity, 0, len(ss))
	for i, s := range ss {
		s = strings.TrimSpace(s)
		var id age.Identity
		var err error
		switch {
		case strings.HasPrefix(s, "AGE-SECRET-KEY-PQ-1"):
			id, err = age.ParseHybridIdentity(s)
		case strings.HasPrefix(s, "AGE-SECRET-KEY-1"):
			id, err = age.ParseX25519Identity(s)
		default:
			err = errors.New("not an age identity (AGE-SECRET-KEY-1…)")
		}
		if err != nil {
			// age's errors do not quote the key; neither do we.
			return nil, fmt.Errorf("%w %d: %v", ErrBadIdentity, i+1, err)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// NewAuditorIdentity generates an auditor key pair: the identity (secret,
// "AGE-SECRET-KEY-1…") for the auditor, and its recipient ("age1…") for
// the PDP's configuration.
func NewAuditorIdentity() (identity, recipient string, err error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return "", "", fmt.Errorf("trail: generate auditor identity: %w", err)
	}
	return id.String(), id.Recipient().String(), nil
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
	s := redactScan{lexer: lexer{in: body, out: make([]byte, 0, len(body)+len(body)/8+64), max: maxDepthIn}, r: r}
	if err := s.top(r.all); err != nil {
		return nil, err
	}
	return s.out, nil
}

// lexer reads JSON from in and writes it compacted to out.
type lexer struct {
	in    []byte
	i     int
	out   []byte
	depth int
	max   int
}

func (l *lexer) errf(format string, args ...any) error {
	return fmt.Errorf("%w: at byte %d: %s", ErrBadBody, l.i, fmt.Sprintf(format, args...))
}

func (l *lexer) ws() {
	for l.i < len(l.in) {
		switch l.in[l.i] {
		case ' ', '\t', '\n', '\r':
			l.i++
		default:
			return
		}
	}
}

// peek skips white space and returns the next byte (0 at the end).
func (l *lexer) peek() byte {
	l.ws()
	if l.i < len(l.in) {
		return l.in[l.i]
	}
	return 0
}

func (l *lexer) expect(c byte) error {
	if l.peek() != c {
		if l.i == len(l.in) {
			return l.errf("unexpected end, want %q", c)
		}
		return l.errf("unexpected %q, want %q", l.in[l.i], c)
	}
	l.i++
	return nil
}

func (l *lexer) enter() error {
	if l.depth++; l.depth > l.max {
		return l.errf("nested deeper than %d", l.max)
	}
	return nil
}

// str reads the string at l.i and returns it as written, quotes included;
// esc tells whether it has escapes.
func (l *lexer) str() (raw []byte, esc bool, err error) {
	if l.peek() != '"' {
		return nil, false, l.errf("want a string")
	}
	in, start := l.in, l.i
	for i := start + 1; i < len(in); {
		switch c := in[i]; {
		case c == '"':
			l.i = i + 1
			return in[start:l.i], esc, nil
		case c == '\\':
			esc = true
			l.i = i
			if i+1 >= len(in) {
				return nil, false, l.errf("unterminated string")
			}
			switch in[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(in) || !isHex4(in[i+2:i+6]) {
					return nil, false, l.errf("bad \\u escape")
				}
				i += 6
			default:
				return nil, false, l.errf("bad escape")
			}
		case c < 0x20:
			l.i = i
			return nil, false, l.errf("control character in string")
		default:
			i++
		}
	}
	l.i = len(in)
	return nil, false, l.errf("unterminated string")
}

func isHex4(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// key is the decoded text of a string read by str.
func key(raw []byte, esc bool) string {
	if !esc {
		return string(raw[1 : len(raw)-1])
	}
	var s string
	_ = json.Unmarshal(raw, &s) // raw is a valid JSON string
	return s
}

// scalar copies the number, string or literal at l.i to out.
func (l *lexer) scalar() error {
	start := l.i
	switch c := l.in[l.i]; {
	case c == '"':
		raw, _, err := l.str()
		if err != nil {
			return err
		}
		l.out = append(l.out, raw...)
		return nil
	case c == 't' || c == 'f' || c == 'n':
		for _, w := range [...]string{"true", "false", "null"} {
			if bytes.HasPrefix(l.in[l.i:], []byte(w)) {
				l.i += len(w)
				l.out = append(l.out, w...)
				return nil
			}
		}
	case c == '-' || '0' <= c && c <= '9':
		if c == '-' {
			l.i++
		}
		switch {
		case l.i < len(l.in) && l.in[l.i] == '0':
			l.i++ // no leading zeros: "01" is 0 followed by junk
		case l.digits() == 0:
			return l.errf("bad number")
		}
		if l.i < len(l.in) && l.in[l.i] == '.' {
			l.i++
			if l.digits() == 0 {
				return l.errf("bad number")
			}
		}
		if l.i < len(l.in) && (l.in[l.i] == 'e' || l.in[l.i] == 'E') {
			l.i++
			if l.i < len(l.in) && (l.in[l.i] == '+' || l.in[l.i] == '-') {
				l.i++
			}
			if l.digits() == 0 {
				return l.errf("bad number")
			}
		}
		l.out = append(l.out, l.in[start:l.i]...)
		return nil
	}
	return l.errf("unexpected %q", l.in[l.i])
}

// digits skips a run of digits and returns its length.
func (l *lexer) digits() int {
	n := 0
	for l.i < len(l.in) && '0' <= l.in[l.i] && l.in[l.i] <= '9' {
		l.i++
		n++
	}
	return n
}

// redactScan copies a body to out, redacting what the rules match.
type redactScan struct {
	lexer
	r   *Redactor
	raw bool // copying a value that is about to be redacted: wrap nothing
}

func (s *redactScan) top(mask uint64) error {
	if err := s.value(mask, 0); err != nil {
		return err
	}
	if s.ws(); s.i != len(s.in) {
		return s.errf("data after the value")
	}
	return nil
}

// value copies the value at depth d; mask holds the rules that match its
// path so far.
func (s *redactScan) value(mask uint64, d int) error {
	c := s.peek()
	if s.i == len(s.in) {
		return s.errf("unexpected end")
	}
	if mask != 0 && d < len(s.r.endsAt) {
		if m := mask & s.r.endsAt[d]; m != 0 {
			return s.redact(bits.TrailingZeros64(m), d)
		}
	}
	switch c {
	case '{':
		return s.object(mask, d)
	case '[':
		return s.array(mask, d)
	}
	return s.scalar()
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

const literalPrefix = `{"` + markerKey + `":"` + MarkerLiteral + `","value":`

func (s *redactScan) object(mask uint64, d int) error {
	if err := s.enter(); err != nil {
		return err
	}
	start := len(s.out)
	s.i++
	s.out = append(s.out, '{')
	wrap := false
	if s.peek() == '}' {
		s.i++
	} else {
		for {
			raw, esc, err := s.str()
			if err != nil {
				return err
			}
			k := raw[1 : len(raw)-1]
			if esc && (mask != 0 || !s.raw) {
				k = []byte(key(raw, esc))
			}
			if !s.raw && string(k) == markerKey {
				wrap = true
			}
			s.out = append(s.out, raw...)
			if err := s.expect(':'); err != nil {
				return err
			}
			s.out = append(s.out, ':')
			if err := s.value(s.r.byKey(mask, d, k), d+1); err != nil {
				return err
			}
			if s.peek() != ',' {
				break
			}
			s.i++
			s.out = append(s.out, ',')
		}
		if err := s.expect('}'); err != nil {
			return err
		}
	}
	s.out = append(s.out, '}')
	if wrap {
		// Move the object right and wrap it: {"$redacted":"literal","value":{…}}.
		n := len(s.out) - start
		s.out = append(s.out, literalPrefix...)
		copy(s.out[start+len(literalPrefix):], s.out[start:start+n])
		copy(s.out[start:], literalPrefix)
		s.out = append(s.out, '}')
	}
	s.depth--
	return nil
}

func (s *redactScan) array(mask uint64, d int) error {
	if err := s.enter(); err != nil {
		return err
	}
	s.i++
	s.out = append(s.out, '[')
	if s.peek() == ']' {
		s.i++
	} else {
		for n := 0; ; n++ {
			var child uint64
			if mask != 0 {
				child = s.r.byIndex(mask, d, n)
			}
			if err := s.value(child, d+1); err != nil {
				return err
			}
			if s.peek() != ',' {
				break
			}
			s.i++
			s.out = append(s.out, ',')
		}
		if err := s.expect(']'); err != nil {
			return err
		}
	}
	s.out = append(s.out, ']')
	s.depth--
	return nil
}

// redact copies the value at depth d and replaces it by its marker under
// rule i.
func (s *redactScan) redact(i, d int) error {
	start := len(s.out)
	s.raw = true
	err := s.value(0, d)
	s.raw = false
	if err != nil {
		return err
	}
	text := s.out[start:] // the value's compact JSON text
	switch s.r.rules[i].method {
	case RedactHash:
		m := s.r.macs.Get().(hash.Hash)
		m.Reset()
		m.Write(text)
		var sum [sha256.Size]byte
		m.Sum(sum[:0])
		s.r.macs.Put(m)
		s.out = append(s.out[:start], `{"`+markerKey+`":"`+MarkerHMAC+`","value":"`...)
		s.out = base64.StdEncoding.AppendEncode(s.out, sum[:])
	case RedactEncrypt:
		var ct bytes.Buffer
		ct.Grow(len(text) + 256)
		w, err := age.Encrypt(&ct, s.r.recipients...)
		if err == nil {
			_, err = w.Write(text)
		}
		if err == nil {
			err = w.Close()
		}
		if err != nil {
			return fmt.Errorf("trail: encrypt the value at rule %q: %w", formatSegments(s.r.rules[i].segs), err)
		}
		s.out = append(s.out[:start], `{"`+markerKey+`":"`+MarkerAge+`","value":"`...)
		s.out = base64.StdEncoding.AppendEncode(s.out, ct.Bytes())
	}
	s.out = append(s.out, `"}`...)
	return nil
}

// Reveal reads a redacted body. It decrypts every age marker that one of
// identities ("AGE-SECRET-KEY-1…") opens, restoring the value's JSON text,
// unwraps literal markers, and returns the body compacted with the paths of
// the markers that stay hidden (hash markers, age markers no identity
// opens), in body order. A hidden path is concrete
// (decision.input.entities.3.attrs.email) and escaped like a rule path.
// With no identities every marker stays hidden; Reveal(body, nil) is how a
// redacted body is read when no key is held.
func Reveal(body []byte, identities []string) (revealed []byte, hidden []string, err error) {
	ids, err := parseIdentities(identities)
	if err != nil {
		return nil, nil, err
	}
	s := revealScan{lexer: lexer{in: body, out: make([]byte, 0, len(body)), max: maxDepthOut}, ids: ids}
	if err := s.value(); err != nil {
		return nil, nil, err
	}
	if s.ws(); s.i != len(s.in) {
		return nil, nil, s.errf("data after the value")
	}
	return s.out, s.hidden, nil
}

// NotReplayable returns the hidden paths (from Reveal) that replay needs:
// those at or under decision.input, or above it. Replay reports each as
// "not_replayable: <path>"; values hidden elsewhere (the request as
// received, say) do not hinder it.
func NotReplayable(hidden []string) []string {
	var out []string
	for _, p := range hidden {
		if p == "" || p == ReplayInput || strings.HasPrefix(p, ReplayInput+".") || strings.HasPrefix(ReplayInput, p+".") {
			out = append(out, p)
		}
	}
	return out
}

type revealScan struct {
	lexer
	ids    []age.Identity
	path   []string
	hidden []string
}

func (s *revealScan) markerErr(format string, args ...any) error {
	return fmt.Errorf("%w at %q: %s", ErrBadMarker, formatPath(s.path), fmt.Sprintf(format, args...))
}

func (s *revealScan) value() error {
	switch s.peek() {
	case '{':
		return s.object()
	case '[':
		return s.array()
	}
	if s.i == len(s.in) {
		return s.errf("unexpected end")
	}
	return s.scalar()
}

func (s *revealScan) object() error {
	if err := s.enter(); err != nil {
		return err
	}
	s.i++
	var err error
	if s.peek() == '}' {
		s.i++
		s.out = append(s.out, "{}"...)
	} else if raw, esc, err2 := s.str(); err2 != nil {
		err = err2
	} else if k := key(raw, esc); k == markerKey {
		err = s.marker()
	} else {
		s.out = append(s.out, '{')
		err = s.members(raw, k, false)
	}
	s.depth--
	return err
}

func (s *revealScan) array() error {
	if err := s.enter(); err != nil {
		return err
	}
	s.i++
	s.out = append(s.out, '[')
	if s.peek() == ']' {
		s.i++
	} else {
		for n := 0; ; n++ {
			s.path = append(s.path, strconv.Itoa(n))
			err := s.value()
			s.path = s.path[:len(s.path)-1]
			if err != nil {
				return err
			}
			if s.peek() != ',' {
				break
			}
			s.i++
			s.out = append(s.out, ',')
		}
		if err := s.expect(']'); err != nil {
			return err
		}
	}
	s.out = append(s.out, ']')
	s.depth--
	return nil
}

// members copies the members of an object, from its first key (raw, k,
// already read) to its closing brace. In a literal, "$redacted" is a key
// like any other.
func (s *revealScan) members(raw []byte, k string, literal bool) error {
	for {
		if !literal && k == markerKey {
			return s.markerErr("%s is not the first key of its object", markerKey)
		}
		s.out = append(s.out, raw...)
		if err := s.expect(':'); err != nil {
			return err
		}
		s.out = append(s.out, ':')
		s.path = append(s.path, k)
		err := s.value()
		s.path = s.path[:len(s.path)-1]
		if err != nil {
			return err
		}
		if s.peek() != ',' {
			break
		}
		s.i++
		s.out = append(s.out, ',')
		var esc bool
		if raw, esc, err = s.str(); err != nil {
			return err
		}
		k = key(raw, esc)
	}
	if err := s.expect('}'); err != nil {
		return err
	}
	s.out = append(s.out, '}')
	return nil
}

// marker reads a marker after its `{"$redacted"`, up to its closing brace.
func (s *revealScan) marker() error {
	if err := s.expect(':'); err != nil {
		return err
	}
	if s.peek() != '"' {
		return s.markerErr("the method is not a string")
	}
	raw, esc, err := s.str()
	if err != nil {
		return err
	}
	method := key(raw, esc)
	if err := s.expect(','); err != nil {
		return err
	}
	if raw, esc, err = s.str(); err != nil {
		return err
	} else if key(raw, esc) != "value" {
		return s.markerErr("want the member \"value\" second")
	}
	if err := s.expect(':'); err != nil {
		return err
	}
	switch method {
	case MarkerLiteral:
		if s.peek() != '{' {
			return s.markerErr("a literal's value is not an object")
		}
		if err := s.enter(); err != nil {
			return err
		}
		s.i++
		s.out = append(s.out, '{')
		if s.peek() == '}' {
			s.i++
			s.out = append(s.out, '}')
		} else if raw, esc, err = s.str(); err != nil {
			return err
		} else if err := s.members(raw, key(raw, esc), true); err != nil {
			return err
		}
		s.depth--
	case MarkerHMAC, MarkerAge:
		if s.peek() != '"' {
			return s.markerErr("the value is not a string")
		}
		if raw, esc, err = s.str(); err != nil {
			return err
		}
		var plain []byte
		if method == MarkerAge && len(s.ids) > 0 {
			if plain, err = s.open(key(raw, esc)); err != nil {
				return err
			}
		}
		if plain != nil {
			s.out = append(s.out, plain...)
			break
		}
		s.out = append(s.out, `{"`+markerKey+`":"`...)
		s.out = append(s.out, method...)
		s.out = append(s.out, `","value":`...)
		s.out = append(s.out, raw...)
		s.out = append(s.out, '}')
		s.hidden = append(s.hidden, formatPath(s.path))
	default:
		return s.markerErr("unknown method %q", method)
	}
	if s.peek() != '}' {
		return s.markerErr("members beyond %q and \"value\"", markerKey)
	}
	s.i++
	return nil
}

// open decrypts an age marker's value; nil when no identity opens it.
func (s *revealScan) open(value string) ([]byte, error) {
	ct, err := base64.StdEncoding.DecodeString(value)
	if err != nil {
		return nil, s.markerErr("the value is not base64")
	}
	r, err := age.Decrypt(bytes.NewReader(ct), s.ids...)
	if _, ok := errors.AsType[*age.NoIdentityMatchError](err); ok {
		return nil, nil
	}
	if err != nil {
		return nil, s.markerErr("age: %v", err)
	}
	pt, err := io.ReadAll(r)
	if err != nil {
		return nil, s.markerErr("age: %v", err)
	}
	// One JSON value, compacted, nested no deeper than the marker may be.
	c := redactScan{lexer: lexer{in: pt, out: make([]byte, 0, len(pt)), depth: s.depth - 1, max: s.max}, raw: true}
	if err := c.top(0); err != nil {
		return nil, s.markerErr("the decrypted value is not JSON: %v", err)
	}
	return c.out, nil
}
