package dormancy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ErrDecode: a revalidation request body is malformed (400).
var ErrDecode = errors.New("bad revalidation request")

// ChangeBody is the body of a revalidation or re-confirmation:
// {"actor":{"type":"user","id":"alice"},"reason":"…"}.
type ChangeBody struct {
	Actor  Ref    `json:"actor"`
	Reason string `json:"reason,omitempty"`
}

// MaxReason bounds the reason of a change.
const MaxReason = 1024

// DecodeChange reads a ChangeBody: one JSON object, no unknown fields, an
// actor with a type and an id, a reason of at most MaxReason bytes.
func DecodeChange(r io.Reader) (ChangeBody, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var b ChangeBody
	if err := dec.Decode(&b); err != nil {
		return ChangeBody{}, fmt.Errorf("%w: %w", ErrDecode, err)
	}
	if dec.More() {
		return ChangeBody{}, fmt.Errorf("%w: more than one JSON value", ErrDecode)
	}
	if _, err := dec.Token(); err != io.EOF {
		return ChangeBody{}, fmt.Errorf("%w: data after the JSON object", ErrDecode)
	}
	switch {
	case b.Actor.Type == "" || b.Actor.ID == "":
		return ChangeBody{}, fmt.Errorf("%w: actor needs a type and an id (who revalidates, or the principal re-confirming)", ErrDecode)
	case strings.ContainsAny(b.Actor.Type, ":#") || strings.ContainsRune(b.Actor.ID, 0):
		return ChangeBody{}, fmt.Errorf("%w: actor type %q: no ':' or '#'", ErrDecode, b.Actor.Type)
	case len(b.Reason) > MaxReason:
		return ChangeBody{}, fmt.Errorf("%w: reason longer than %d bytes", ErrDecode, MaxReason)
	}
	return b, nil
}

// ParseSubject reads an identity named "type:id" (or a user's id); the
// type may not hold '#' (the activity refs of roles).
func ParseSubject(s string) (Ref, error) {
	typ, id, ok := strings.Cut(s, ":")
	if !ok {
		typ, id = "user", s
	}
	if typ == "" || id == "" || strings.ContainsRune(typ, '#') {
		return Ref{}, fmt.Errorf("%w: subject %q: want type:id, as in user:heidi", ErrDecode, s)
	}
	return Ref{Type: typ, ID: id}, nil
}
