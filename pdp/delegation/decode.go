package delegation

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/ciampdp/pdp/pdp/internal/strictjson"
)

// MaxOfferBytes bounds the JSON of one offer.
const MaxOfferBytes = 64 << 10

// offerWire is the JSON of an OfferRequest, with the times as text so that
// a bad one gets a clear error.
type offerWire struct {
	ID          string      `json:"id"`
	Actor       Ref         `json:"actor"`
	Principal   Ref         `json:"principal"`
	Agent       Ref         `json:"agent"`
	Basis       Basis       `json:"basis"`
	Source      Source      `json:"source"`
	Scope       []string    `json:"scope"`
	Resources   []Ref       `json:"resources"`
	Constraints Constraints `json:"constraints"`
	ValidFrom   *string     `json:"valid_from"`
	ValidUntil  *string     `json:"valid_until"`
	MaxDepth    int         `json:"max_depth"`
	Parent      string      `json:"parent"`
}

// DecodeOffer reads one offer as JSON (the fields of OfferRequest, snake
// case; times in RFC 3339; "actor" is the subject of By — the application
// comes from the caller's credential, never from the body) and nothing else: unknown fields, trailing data
// and bodies over MaxOfferBytes are errors. Errors wrap ErrDecode and name
// the field ("valid_until: want RFC 3339 time"). It checks the form only;
// Service.Offer checks the content.
func DecodeOffer(r io.Reader) (OfferRequest, error) {
	body, err := io.ReadAll(io.LimitReader(r, MaxOfferBytes+1))
	if err != nil {
		return OfferRequest{}, fmt.Errorf("%w: read: %w", ErrDecode, err)
	}
	if len(body) > MaxOfferBytes {
		return OfferRequest{}, fmt.Errorf("%w: larger than %d bytes", ErrDecode, MaxOfferBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var w offerWire
	if err := dec.Decode(&w); err != nil {
		return OfferRequest{}, fmt.Errorf("%w: %s", ErrDecode, jsonProblem(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return OfferRequest{}, fmt.Errorf("%w: data after the offer object", ErrDecode)
	}
	if err := strictjson.CheckNames(body); err != nil {
		return OfferRequest{}, fmt.Errorf("%w: %w", ErrDecode, err)
	}
	o := OfferRequest{
		ID: w.ID, By: Actor{Subject: w.Actor}, Principal: w.Principal, Agent: w.Agent, Basis: w.Basis, Source: w.Source,
		Scope: w.Scope, Resources: w.Resources, Constraints: w.Constraints, MaxDepth: w.MaxDepth, Parent: w.Parent,
	}
	if o.ValidFrom, err = parseTime("valid_from", w.ValidFrom); err != nil {
		return OfferRequest{}, err
	}
	if o.ValidUntil, err = parseTime("valid_until", w.ValidUntil); err != nil {
		return OfferRequest{}, err
	}
	return o, nil
}

func parseTime(field string, s *string) (time.Time, error) {
	if s == nil {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, *s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: %s: want RFC 3339 time (like 2026-01-01T00:00:00Z), got %q", ErrDecode, field, *s)
	}
	return t.UTC(), nil
}

// jsonProblem rewrites encoding/json's errors to name the field and what it
// wants.
func jsonProblem(err error) string {
	var (
		typeErr   *json.UnmarshalTypeError
		syntaxErr *json.SyntaxError
	)
	switch {
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			field = "offer"
		}
		return fmt.Sprintf("%s: want %s, got JSON %s", field, wantOf(typeErr.Type.String()), typeErr.Value)
	case errors.As(err, &syntaxErr):
		return fmt.Sprintf("invalid JSON at byte %d: %v", syntaxErr.Offset, syntaxErr)
	case errors.Is(err, io.EOF):
		return "empty body: want a JSON object"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "truncated JSON"
	}
	return err.Error() // json: unknown field "x"
}

func wantOf(goType string) string {
	switch goType {
	case "string", "*string", "delegation.Basis", "delegation.Source":
		return "string"
	case "int", "float64", "*float64":
		return "number"
	case "[]string":
		return "array of strings"
	case "[]delegation.Ref":
		return "array of {type, id}"
	case "delegation.offerWire":
		return "object"
	}
	return "object"
}

// MarshalJSON writes an offer in the form DecodeOffer reads: By as
// "actor" (its subject; the application is never part of the body) and
// the times in RFC 3339, left out when zero.
func (o OfferRequest) MarshalJSON() ([]byte, error) {
	w := offerWire{
		ID: o.ID, Actor: o.By.Subject, Principal: o.Principal, Agent: o.Agent, Basis: o.Basis, Source: o.Source,
		Scope: o.Scope, Resources: o.Resources, Constraints: o.Constraints, MaxDepth: o.MaxDepth, Parent: o.Parent,
	}
	for _, t := range []struct {
		v   time.Time
		dst **string
	}{{o.ValidFrom, &w.ValidFrom}, {o.ValidUntil, &w.ValidUntil}} {
		if !t.v.IsZero() {
			s := t.v.Format(time.RFC3339Nano)
			*t.dst = &s
		}
	}
	return json.Marshal(w)
}
