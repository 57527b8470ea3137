package consent

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ReceiptVersion is the Kantara Consent Receipt specification version the
// receipts follow.
const ReceiptVersion = "KI-CR-v1.1.0"

// Consent types of a receipt's purposes, by event type.
const (
	ConsentTypeExplicit  = "EXPLICIT"  // given, renewed
	ConsentTypeWithdrawn = "WITHDRAWN" // withdrawn, revoked
	ConsentTypeRefused   = "REFUSED"   // refused
)

// TerminationWithdrawal is a purpose's termination when the grant has no
// expiry: it lasts until withdrawn.
const TerminationWithdrawal = "withdrawal"

// AllApplications is the service of a receipt whose grant covers every
// application of the purpose (the event lists none). A caller with the
// registry may list them instead.
const AllApplications = "*"

// maxReceiptSize bounds what VerifyReceipt reads.
const maxReceiptSize = 64 << 10

var (
	// ErrReceiptInvalid: a receipt is malformed, uses another algorithm, or
	// its signature does not verify (ErrReceiptSignature).
	ErrReceiptInvalid = errors.New("invalid consent receipt")
	// ErrReceiptSignature: the receipt is well formed but its signature
	// does not verify with the key. It matches ErrReceiptInvalid.
	ErrReceiptSignature = fmt.Errorf("%w: signature does not verify", ErrReceiptInvalid)
)

// ReceiptClaims is a consent receipt: the fields of the Kantara Consent
// Receipt v1.1 (as adopted by ISO/IEC TS 27560), plus the "pdp" extension
// that ties it to the ledger.
type ReceiptClaims struct {
	Version          string `json:"version"`
	Jurisdiction     string `json:"jurisdiction"`
	ConsentTimestamp int64  `json:"consentTimestamp"` // unix seconds
	CollectionMethod string `json:"collectionMethod"` // the event's channel
	ConsentReceiptID string `json:"consentReceiptID"` // the event id
	// PublicKey is the signer's Ed25519 public key, base64url.
	PublicKey      string              `json:"publicKey,omitempty"`
	Language       string              `json:"language,omitempty"`
	PIIPrincipalID string              `json:"piiPrincipalId"` // "user:alice"
	PIIControllers []ReceiptController `json:"piiControllers"`
	PolicyURL      string              `json:"policyUrl"` // the notice
	Services       []ReceiptService    `json:"services"`
	Sensitive      bool                `json:"sensitive"`
	SPICat         []string            `json:"spiCat"`
	PDP            ReceiptExtension    `json:"pdp"`
}

// ReceiptController is a PII controller of a receipt.
type ReceiptController struct {
	PIIController string `json:"piiController"`
	Contact       string `json:"contact,omitempty"`
}

// ReceiptService is one service (an application) of a receipt.
type ReceiptService struct {
	Service  string           `json:"service"`
	Purposes []ReceiptPurpose `json:"purposes"`
}

// ReceiptPurpose is one purpose of a service.
type ReceiptPurpose struct {
	Purpose         string   `json:"purpose"`
	PurposeCategory []string `json:"purposeCategory"`
	// ConsentType is ConsentTypeExplicit, ConsentTypeWithdrawn or
	// ConsentTypeRefused.
	ConsentType    string   `json:"consentType"`
	PIICategory    []string `json:"piiCategory"`
	PrimaryPurpose bool     `json:"primaryPurpose"`
	// Termination is the grant's expiry (RFC 3339) or
	// TerminationWithdrawal.
	Termination          string `json:"termination"`
	ThirdPartyDisclosure bool   `json:"thirdPartyDisclosure"`
}

// ReceiptExtension ties a receipt to the ledger event it records.
type ReceiptExtension struct {
	LedgerPosition int64     `json:"ledger_position"`
	EventType      EventType `json:"event_type"`
	GrantID        string    `json:"grant_id,omitempty"`
	PurposeVersion int       `json:"purpose_version"`
	NoticeVersion  int       `json:"notice_version"`
	NoticeHash     string    `json:"notice_hash,omitempty"`
	Actor          string    `json:"actor"` // "user:dave"
	Delegation     string    `json:"delegation,omitempty"`
	RecordedAt     time.Time `json:"recorded_at"`
}

// NewReceipt builds the receipt of a ledger event. controller names the
// PII controller (the bank); pub, when given, is the key that will sign it.
// An event that lists no applications covers every application of the
// purpose and gets the one service AllApplications.
func NewReceipt(e Event, controller string, pub ed25519.PublicKey) ReceiptClaims {
	consentType := ConsentTypeExplicit
	switch e.Type {
	case EventWithdrawn, EventRevoked:
		consentType = ConsentTypeWithdrawn
	case EventRefused:
		consentType = ConsentTypeRefused
	}
	termination := TerminationWithdrawal
	if e.Expires != nil {
		termination = e.Expires.UTC().Format(time.RFC3339)
	}
	apps := e.Applications
	if len(apps) == 0 {
		apps = []string{AllApplications}
	}
	services := make([]ReceiptService, len(apps))
	for i, app := range apps {
		services[i] = ReceiptService{Service: app, Purposes: []ReceiptPurpose{{
			Purpose:         e.Purpose,
			PurposeCategory: []string{e.Purpose},
			ConsentType:     consentType,
			PIICategory:     []string{},
			PrimaryPurpose:  true,
			Termination:     termination,
		}}}
	}
	actor := e.Actor
	if actor == (Ref{}) {
		actor = e.Subject
	}
	c := ReceiptClaims{
		Version:          ReceiptVersion,
		Jurisdiction:     e.Jurisdiction,
		ConsentTimestamp: e.At.Unix(),
		CollectionMethod: e.Channel,
		ConsentReceiptID: e.ID,
		Language:         e.Notice.Language,
		PIIPrincipalID:   e.Subject.String(),
		PIIControllers:   []ReceiptController{{PIIController: controller}},
		PolicyURL:        e.Notice.URI,
		Services:         services,
		SPICat:           []string{},
		PDP: ReceiptExtension{
			LedgerPosition: e.Position,
			EventType:      e.Type,
			GrantID:        e.GrantID,
			PurposeVersion: e.PurposeVersion,
			NoticeVersion:  e.Notice.Version,
			NoticeHash:     e.Notice.Hash,
			Actor:          actor.String(),
			Delegation:     e.Delegation,
			RecordedAt:     e.RecordedAt.UTC(),
		},
	}
	if len(pub) == ed25519.PublicKeySize {
		c.PublicKey = base64.RawURLEncoding.EncodeToString(pub)
	}
	return c
}

// jwsHeader is the protected header of a receipt (RFC 7515, RFC 8037).
type jwsHeader struct {
	Alg  string          `json:"alg"`
	Typ  string          `json:"typ,omitempty"`
	Kid  string          `json:"kid,omitempty"`
	Crit json.RawMessage `json:"crit,omitempty"`
}

var b64 = base64.RawURLEncoding.Strict()

// SignReceipt signs the claims with Ed25519 as a JWS in compact
// serialization: base64url(header) "." base64url(claims) "."
// base64url(signature), the header {"alg":"EdDSA","typ":"JWT","kid":kid}
// (kid left out when empty).
func SignReceipt(key ed25519.PrivateKey, kid string, c ReceiptClaims) (string, error) {
	if len(key) != ed25519.PrivateKeySize {
		return "", fmt.Errorf("sign consent receipt: private key has %d bytes, want %d", len(key), ed25519.PrivateKeySize)
	}
	header, err := json.Marshal(jwsHeader{Alg: "EdDSA", Typ: "JWT", Kid: kid})
	if err != nil {
		return "", fmt.Errorf("sign consent receipt: %w", err)
	}
	payload, err := json.Marshal(c.normalized())
	if err != nil {
		return "", fmt.Errorf("sign consent receipt: %w", err)
	}
	signingInput := b64.EncodeToString(header) + "." + b64.EncodeToString(payload)
	sig := ed25519.Sign(key, []byte(signingInput))
	return signingInput + "." + b64.EncodeToString(sig), nil
}

// normalized writes absent lists as empty ones, as the receipt format
// wants arrays, not nulls.
func (c ReceiptClaims) normalized() ReceiptClaims {
	if c.SPICat == nil {
		c.SPICat = []string{}
	}
	if c.PIIControllers == nil {
		c.PIIControllers = []ReceiptController{}
	}
	services := make([]ReceiptService, len(c.Services))
	for i, s := range c.Services {
		purposes := make([]ReceiptPurpose, len(s.Purposes))
		for j, p := range s.Purposes {
			if p.PurposeCategory == nil {
				p.PurposeCategory = []string{}
			}
			if p.PIICategory == nil {
				p.PIICategory = []string{}
			}
			purposes[j] = p
		}
		s.Purposes = purposes
		services[i] = s
	}
	c.Services = services
	return c
}

// ReceiptKeyID returns the kid of a receipt's header, without verifying
// anything: to choose the key to verify it with.
func ReceiptKeyID(jws string) (string, error) {
	h, _, _, err := splitReceipt(jws)
	if err != nil {
		return "", err
	}
	return h.Kid, nil
}

// VerifyReceipt checks that jws is a compact JWS with algorithm EdDSA
// whose signature verifies with pub, and returns its claims. A receipt
// that names a public key must name pub. Errors about the receipt match
// ErrReceiptInvalid; a bad signature matches ErrReceiptSignature.
func VerifyReceipt(pub ed25519.PublicKey, jws string) (ReceiptClaims, error) {
	var c ReceiptClaims
	if len(pub) != ed25519.PublicKeySize {
		return c, fmt.Errorf("verify consent receipt: public key has %d bytes, want %d", len(pub), ed25519.PublicKeySize)
	}
	_, payload, sig, err := splitReceipt(jws)
	if err != nil {
		return c, err
	}
	signingInput := jws[:strings.LastIndexByte(jws, '.')]
	if !ed25519.Verify(pub, []byte(signingInput), sig) {
		return c, ErrReceiptSignature
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	if err := dec.Decode(&c); err != nil {
		return ReceiptClaims{}, receiptErr("claims are not a consent receipt: %v", err)
	}
	if dec.More() {
		return ReceiptClaims{}, receiptErr("claims: data after the JSON object")
	}
	if c.Version != ReceiptVersion {
		return ReceiptClaims{}, receiptErr("claims: version %q, want %q", c.Version, ReceiptVersion)
	}
	if c.PublicKey != "" && c.PublicKey != b64.EncodeToString(pub) {
		return ReceiptClaims{}, receiptErr("claims name another public key than the one that verified it")
	}
	return c, nil
}

// splitReceipt decodes the three parts of a compact JWS and checks the
// header.
func splitReceipt(jws string) (h jwsHeader, payload, sig []byte, err error) {
	if len(jws) > maxReceiptSize {
		return h, nil, nil, receiptErr("longer than %d bytes", maxReceiptSize)
	}
	// Only the base64url alphabet and the two dots: base64 decoders skip
	// line breaks, which would let one receipt be written several ways.
	for i := 0; i < len(jws); i++ {
		if c := jws[i]; !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return h, nil, nil, receiptErr("not a compact JWS: unexpected character %q at %d", c, i)
		}
	}
	parts := strings.Split(jws, ".")
	if len(parts) != 3 {
		return h, nil, nil, receiptErr("not a compact JWS: %d parts, want header.payload.signature", len(parts))
	}
	header, err := b64.DecodeString(parts[0])
	if err != nil {
		return h, nil, nil, receiptErr("header is not base64url: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(header))
	if err := dec.Decode(&h); err != nil || dec.More() {
		if err == nil {
			err = errors.New("data after the JSON object")
		}
		return h, nil, nil, receiptErr("header: %v", err)
	}
	switch {
	case h.Alg != "EdDSA":
		return h, nil, nil, receiptErr("algorithm %q refused; want EdDSA", h.Alg)
	case h.Typ != "" && h.Typ != "JWT":
		return h, nil, nil, receiptErr("type %q; want JWT", h.Typ)
	case h.Crit != nil:
		return h, nil, nil, receiptErr("critical header parameters are not supported")
	}
	if payload, err = b64.DecodeString(parts[1]); err != nil {
		return h, nil, nil, receiptErr("payload is not base64url: %v", err)
	}
	if sig, err = b64.DecodeString(parts[2]); err != nil {
		return h, nil, nil, receiptErr("signature is not base64url: %v", err)
	}
	if len(sig) != ed25519.SignatureSize {
		return h, nil, nil, receiptErr("signature has %d bytes, want %d", len(sig), ed25519.SignatureSize)
	}
	return h, payload, sig, nil
}

func receiptErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrReceiptInvalid, fmt.Sprintf(format, args...))
}
