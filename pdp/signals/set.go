package signals

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Error codes of RFC 8935 §2.3 (the IANA "Security Event Token Error
// Codes"), answered in {"err": code, "description": …}.
const (
	ErrCodeInvalidRequest  = "invalid_request"
	ErrCodeInvalidKey      = "invalid_key"
	ErrCodeInvalidIssuer   = "invalid_issuer"
	ErrCodeInvalidAudience = "invalid_audience"
	ErrCodeAuthentication  = "authentication_failed"
	ErrCodeAccessDenied    = "access_denied"
)

// SETType is the typ header of a Security Event Token.
const SETType = "secevent+jwt"

// Limits of a SET.
const (
	DefaultMaxSETBytes = 64 << 10
	DefaultMaxAge      = 24 * time.Hour
	DefaultSkew        = 5 * time.Minute
	MaxEventsPerSET    = 16
)

// SETError is a SET the receiver refuses: an RFC 8935 error code and a
// description safe to send back to the transmitter.
type SETError struct {
	Code        string `json:"err"`
	Description string `json:"description"`
}

func (e *SETError) Error() string { return e.Code + ": " + e.Description }

func setErr(code, format string, args ...any) *SETError {
	return &SETError{Code: code, Description: fmt.Sprintf(format, args...)}
}

// SET is a verified Security Event Token: its claims, and each event with
// its subject resolved (the event's own subject, else sub_id).
type SET struct {
	Issuer   string
	Audience []string
	IssuedAt time.Time
	JTI      string
	TXN      string
	SubID    *SubjectID
	Events   []SETEvent
	Raw      string
}

// SETEvent is one event of a SET.
type SETEvent struct {
	Type    string
	Subject *SubjectID
	// Time is the payload's event_timestamp, else the SET's iat.
	Time    time.Time
	Payload json.RawMessage
}

// Keys verify the signatures of one transmitter: *jwtverify-like key
// sources, or a fixed set (StaticKeys).
type Keys interface {
	Keys() []jose.JSONWebKey
}

// StaticKeys is a fixed JWKS.
type StaticKeys []jose.JSONWebKey

// Keys implements Keys.
func (s StaticKeys) Keys() []jose.JSONWebKey { return s }

// Transmitter is one transmitter the receiver trusts.
type Transmitter struct {
	Issuer     string
	Audience   []string
	Keys       Keys
	Algorithms []string      // default ES256, RS256, PS256, EdDSA
	MaxBytes   int           // default DefaultMaxSETBytes
	MaxAge     time.Duration // how old iat may be; default DefaultMaxAge
	Skew       time.Duration // how far iat may be in the future; default DefaultSkew
	// PushToken, when set, is the SHA-256 of the bearer token the
	// transmitter must send with a push (RFC 8935 lets the receiver
	// authenticate the transmitter besides the SET's signature).
	PushToken []byte
}

// DefaultSETAlgorithms are accepted when a transmitter names none.
var DefaultSETAlgorithms = []string{"ES256", "ES384", "RS256", "PS256", "EdDSA"}

// asymmetric are the algorithms a transmitter may be configured with: a
// JWKS holds public keys, so never "none" nor HMAC.
var asymmetric = []jose.SignatureAlgorithm{"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"}

// Verifier verifies SETs from the configured transmitters. Safe for
// concurrent use.
type Verifier struct {
	byIssuer map[string]Transmitter
	maxBytes int
}

// NewVerifier returns a verifier of the transmitters' SETs.
func NewVerifier(ts []Transmitter) (*Verifier, error) {
	v := &Verifier{byIssuer: map[string]Transmitter{}}
	for _, t := range ts {
		if t.Issuer == "" || len(t.Audience) == 0 || t.Keys == nil {
			return nil, errors.New("signals: a transmitter needs an issuer, an audience and keys")
		}
		if _, dup := v.byIssuer[t.Issuer]; dup {
			return nil, fmt.Errorf("signals: transmitter %q is configured twice", t.Issuer)
		}
		if len(t.Algorithms) == 0 {
			t.Algorithms = DefaultSETAlgorithms
		}
		for _, a := range t.Algorithms {
			if !slices.Contains(asymmetric, jose.SignatureAlgorithm(a)) {
				return nil, fmt.Errorf("signals: transmitter %q: algorithm %q is not accepted (asymmetric only)", t.Issuer, a)
			}
		}
		if t.MaxBytes <= 0 {
			t.MaxBytes = DefaultMaxSETBytes
		}
		if t.MaxAge <= 0 {
			t.MaxAge = DefaultMaxAge
		}
		if t.Skew <= 0 {
			t.Skew = DefaultSkew
		}
		v.maxBytes = max(v.maxBytes, t.MaxBytes)
		v.byIssuer[t.Issuer] = t
	}
	if v.maxBytes == 0 {
		v.maxBytes = DefaultMaxSETBytes
	}
	return v, nil
}

// CheckPushToken checks the bearer token of a push of a SET issuer sent:
// an authentication_failed SETError when the transmitter wants a token
// and bearer is not it.
func (v *Verifier) CheckPushToken(issuer, bearer string) error {
	t, ok := v.byIssuer[issuer]
	if !ok || len(t.PushToken) == 0 {
		return nil
	}
	sum := sha256.Sum256([]byte(bearer))
	if bearer == "" || subtle.ConstantTimeCompare(sum[:], t.PushToken) != 1 {
		return setErr(ErrCodeAuthentication, "the push of %s needs its bearer token", issuer)
	}
	return nil
}

// MaxBytes is the largest SET any transmitter may send.
func (v *Verifier) MaxBytes() int { return v.maxBytes }

// Issuers lists the configured transmitters.
func (v *Verifier) Issuers() []string {
	out := make([]string, 0, len(v.byIssuer))
	for k := range v.byIssuer {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// claims are a SET's claims as they arrive.
type claims struct {
	Iss    string                     `json:"iss"`
	Aud    json.RawMessage            `json:"aud"`
	Iat    *json.Number               `json:"iat"`
	JTI    string                     `json:"jti"`
	TXN    string                     `json:"txn"`
	SubID  *SubjectID                 `json:"sub_id"`
	Events map[string]json.RawMessage `json:"events"`
	Exp    *json.Number               `json:"exp"`
}

// Verify decodes and verifies a compact SET at now: size, JWS with one
// signature, typ, algorithm, issuer (a configured transmitter), signature
// with its keys, audience, iat within its window, jti, events and their
// subjects. Every refusal is a *SETError.
func (v *Verifier) Verify(raw []byte, now time.Time) (*SET, error) {
	if len(raw) > v.maxBytes {
		return nil, setErr(ErrCodeInvalidRequest, "the SET is larger than %d bytes", v.maxBytes)
	}
	token := strings.TrimSpace(string(raw))
	if strings.Count(token, ".") != 2 {
		return nil, setErr(ErrCodeInvalidRequest, "the body is not a compact JWS (three dot-separated parts)")
	}
	jws, err := jose.ParseSigned(token, asymmetric)
	if err != nil {
		return nil, setErr(ErrCodeInvalidRequest, "malformed JWS or algorithm not accepted: %v", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, setErr(ErrCodeInvalidRequest, "a SET has exactly one signature")
	}
	h := jws.Signatures[0].Protected
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); !strings.EqualFold(typ, SETType) && !strings.EqualFold(typ, "application/"+SETType) {
		return nil, setErr(ErrCodeInvalidRequest, "typ must be %q, not %q", SETType, typ)
	}
	// The issuer picks the keys: read it before the signature is checked,
	// trust nothing else of the payload until it is.
	var pre struct {
		Iss string `json:"iss"`
	}
	if err := json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &pre); err != nil {
		return nil, setErr(ErrCodeInvalidRequest, "the payload is not a JSON object: %v", err)
	}
	t, ok := v.byIssuer[pre.Iss]
	if !ok {
		return nil, setErr(ErrCodeInvalidIssuer, "issuer %q is not a configured transmitter", pre.Iss)
	}
	if len(raw) > t.MaxBytes {
		return nil, setErr(ErrCodeInvalidRequest, "the SET is larger than %d bytes", t.MaxBytes)
	}
	if !slices.Contains(t.Algorithms, h.Algorithm) {
		return nil, setErr(ErrCodeInvalidKey, "algorithm %s is not accepted from %s", h.Algorithm, t.Issuer)
	}
	var payload []byte
	found := false
	for _, k := range t.Keys.Keys() {
		if h.KeyID != "" && k.KeyID != "" && k.KeyID != h.KeyID {
			continue
		}
		if k.Algorithm != "" && k.Algorithm != h.Algorithm {
			continue
		}
		found = true
		if p, err := jws.Verify(k.Key); err == nil {
			payload = p
			break
		}
	}
	if payload == nil {
		if !found {
			return nil, setErr(ErrCodeInvalidKey, "no key of %s has id %q", t.Issuer, h.KeyID)
		}
		return nil, setErr(ErrCodeInvalidKey, "the signature does not verify with the keys of %s", t.Issuer)
	}
	return decodeClaims(t, payload, token, now)
}

// decodeClaims checks the verified payload of transmitter t's SET.
func decodeClaims(t Transmitter, payload []byte, token string, now time.Time) (*SET, error) {
	var c claims
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&c); err != nil {
		return nil, setErr(ErrCodeInvalidRequest, "claims: %v", err)
	}
	aud, err := audiences(c.Aud)
	if err != nil {
		return nil, setErr(ErrCodeInvalidAudience, "%v", err)
	}
	if !slices.ContainsFunc(aud, func(a string) bool { return slices.Contains(t.Audience, a) }) {
		return nil, setErr(ErrCodeInvalidAudience, "the SET is not addressed to this receiver (aud %q)", aud)
	}
	if c.Iat == nil {
		return nil, setErr(ErrCodeInvalidRequest, "iat is required")
	}
	iat, err := unixTime(*c.Iat)
	if err != nil {
		return nil, setErr(ErrCodeInvalidRequest, "iat: %v", err)
	}
	switch {
	case iat.After(now.Add(t.Skew)):
		return nil, setErr(ErrCodeInvalidRequest, "iat %s is in the future", iat.UTC().Format(time.RFC3339))
	case now.Sub(iat) > t.MaxAge:
		return nil, setErr(ErrCodeInvalidRequest, "the SET is stale: issued %s, more than %s ago", iat.UTC().Format(time.RFC3339), t.MaxAge)
	}
	if c.Exp != nil {
		if exp, err := unixTime(*c.Exp); err != nil || !now.Before(exp.Add(t.Skew)) {
			return nil, setErr(ErrCodeInvalidRequest, "the SET has expired")
		}
	}
	if c.JTI == "" || len(c.JTI) > maxJTI {
		return nil, setErr(ErrCodeInvalidRequest, "jti is required (at most %d characters)", maxJTI)
	}
	if len(c.Events) == 0 {
		return nil, setErr(ErrCodeInvalidRequest, "events is required and holds at least one event")
	}
	if len(c.Events) > MaxEventsPerSET {
		return nil, setErr(ErrCodeInvalidRequest, "at most %d events per SET", MaxEventsPerSET)
	}
	if c.SubID != nil {
		if err := c.SubID.Validate(); err != nil {
			return nil, setErr(ErrCodeInvalidRequest, "sub_id: %v", err)
		}
	}
	s := &SET{Issuer: c.Iss, Audience: aud, IssuedAt: iat, JTI: c.JTI, TXN: c.TXN, SubID: c.SubID, Raw: token}
	types := make([]string, 0, len(c.Events))
	for typ := range c.Events {
		types = append(types, typ)
	}
	slices.Sort(types)
	for _, typ := range types {
		ev, err := decodeEvent(typ, c.Events[typ], s)
		if err != nil {
			return nil, err
		}
		s.Events = append(s.Events, ev)
	}
	return s, nil
}

// decodeEvent reads one event's payload: its subject and time.
func decodeEvent(typ string, raw json.RawMessage, s *SET) (SETEvent, error) {
	if typ == "" {
		return SETEvent{}, setErr(ErrCodeInvalidRequest, "an event type is empty")
	}
	var p struct {
		Subject        *SubjectID   `json:"subject"`
		EventTimestamp *json.Number `json:"event_timestamp"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&p); err != nil {
		return SETEvent{}, setErr(ErrCodeInvalidRequest, "event %s: the payload is not a JSON object: %v", typ, err)
	}
	ev := SETEvent{Type: typ, Subject: s.SubID, Time: s.IssuedAt, Payload: raw}
	if p.Subject != nil {
		if err := p.Subject.Validate(); err != nil {
			return SETEvent{}, setErr(ErrCodeInvalidRequest, "event %s: subject: %v", typ, err)
		}
		ev.Subject = p.Subject
	}
	if p.EventTimestamp != nil {
		t, err := unixTime(*p.EventTimestamp)
		if err != nil {
			return SETEvent{}, setErr(ErrCodeInvalidRequest, "event %s: event_timestamp: %v", typ, err)
		}
		ev.Time = t
	}
	if ev.Subject == nil && ShortName(typ) != "" && ShortName(typ) != "verification" {
		return SETEvent{}, setErr(ErrCodeInvalidRequest, "event %s names no subject (sub_id or subject)", typ)
	}
	return ev, nil
}

// audiences reads aud: a string or an array of strings.
func audiences(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 {
		return nil, errors.New("aud is required")
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, errors.New("aud must be a string or an array of strings")
	}
	return many, nil
}

// unixTime reads NumericDate seconds (fractions allowed), within sane
// bounds.
func unixTime(n json.Number) (time.Time, error) {
	f, err := n.Float64()
	if err != nil || f < 0 || f > 1e11 {
		return time.Time{}, fmt.Errorf("%q is not a NumericDate", n.String())
	}
	sec := int64(f)
	return time.Unix(sec, int64((f-float64(sec))*1e9)).UTC(), nil
}
