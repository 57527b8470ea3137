package consent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"time"

	"github.com/ciampdp/pdp/pdp/internal/strictjson"
)

// MaxRequestBytes bounds the JSON of one consent request.
const MaxRequestBytes = 64 << 10

// The wire forms: the request fields in snake case, times as RFC 3339
// text. None has the application: it comes from the caller's credential.
type (
	choiceWire struct {
		Subject      Ref      `json:"subject"`
		Actor        Ref      `json:"actor,omitzero"`
		Delegation   string   `json:"delegation,omitempty"`
		Purpose      string   `json:"purpose"`
		Applications []string `json:"applications,omitempty"`
		Jurisdiction string   `json:"jurisdiction"`
		Notice       Notice   `json:"notice,omitzero"`
		Channel      string   `json:"channel,omitempty"`
		Evidence     string   `json:"evidence,omitempty"`
		At           *string  `json:"at,omitempty"`
		Expires      *string  `json:"expires,omitempty"`
	}
	withdrawWire struct {
		Subject    Ref    `json:"subject"`
		Actor      Ref    `json:"actor,omitzero"`
		Delegation string `json:"delegation,omitempty"`
		Purpose    string `json:"purpose,omitempty"`
		GrantID    string `json:"grant_id,omitempty"`
		All        bool   `json:"all,omitempty"`
		Reason     string `json:"reason,omitempty"`
		Revoke     bool   `json:"revoke,omitempty"`
	}
	renewWire struct {
		Subject    Ref     `json:"subject"`
		Actor      Ref     `json:"actor,omitzero"`
		Delegation string  `json:"delegation,omitempty"`
		GrantID    string  `json:"grant_id"`
		Notice     Notice  `json:"notice,omitzero"`
		Expires    *string `json:"expires,omitempty"`
		Channel    string  `json:"channel,omitempty"`
		Evidence   string  `json:"evidence,omitempty"`
	}
)

// DecodeChoice reads a give or refuse request: a JSON object with
// subject, actor, delegation, purpose, applications, jurisdiction, notice
// {uri, version, hash, language}, channel, evidence, at and expires (RFC
// 3339) — and nothing else: unknown fields, trailing data and bodies over
// MaxRequestBytes are errors wrapping ErrDecode that name the field. It
// checks the form only; the Ledger checks the content. Application is left
// empty for the caller to set from the credential.
func DecodeChoice(r io.Reader) (ChoiceRequest, error) {
	var w choiceWire
	if err := decodeStrict(r, &w, "choice"); err != nil {
		return ChoiceRequest{}, err
	}
	c := ChoiceRequest{
		Subject: w.Subject, Actor: w.Actor, Delegation: w.Delegation, Purpose: w.Purpose,
		Applications: w.Applications, Jurisdiction: w.Jurisdiction, Notice: w.Notice,
		Channel: w.Channel, Evidence: w.Evidence,
	}
	var err error
	if c.At, err = parseTime("at", w.At); err != nil {
		return ChoiceRequest{}, err
	}
	if c.Expires, err = parseTimePtr("expires", w.Expires); err != nil {
		return ChoiceRequest{}, err
	}
	return c, nil
}

// DecodeWithdraw reads a withdraw request: subject, actor, delegation,
// purpose, grant_id, all, reason, revoke; strict as DecodeChoice.
func DecodeWithdraw(r io.Reader) (WithdrawRequest, error) {
	var w withdrawWire
	if err := decodeStrict(r, &w, "withdrawal"); err != nil {
		return WithdrawRequest{}, err
	}
	return WithdrawRequest{
		Subject: w.Subject, Actor: w.Actor, Delegation: w.Delegation, Purpose: w.Purpose,
		GrantID: w.GrantID, All: w.All, Reason: w.Reason, Revoke: w.Revoke,
	}, nil
}

// DecodeRenew reads a renew request: subject, actor, delegation, grant_id,
// notice, expires, channel, evidence; strict as DecodeChoice.
func DecodeRenew(r io.Reader) (RenewRequest, error) {
	var w renewWire
	if err := decodeStrict(r, &w, "renewal"); err != nil {
		return RenewRequest{}, err
	}
	q := RenewRequest{
		Subject: w.Subject, Actor: w.Actor, Delegation: w.Delegation, GrantID: w.GrantID,
		Notice: w.Notice, Channel: w.Channel, Evidence: w.Evidence,
	}
	var err error
	if q.Expires, err = parseTimePtr("expires", w.Expires); err != nil {
		return RenewRequest{}, err
	}
	return q, nil
}

// MarshalJSON writes the request in the form DecodeChoice reads (without
// Application).
func (c ChoiceRequest) MarshalJSON() ([]byte, error) {
	return json.Marshal(choiceWire{
		Subject: c.Subject, Actor: c.Actor, Delegation: c.Delegation, Purpose: c.Purpose,
		Applications: c.Applications, Jurisdiction: c.Jurisdiction, Notice: c.Notice,
		Channel: c.Channel, Evidence: c.Evidence, At: formatTime(c.At), Expires: formatTimePtr(c.Expires),
	})
}

// MarshalJSON writes the request in the form DecodeWithdraw reads.
func (r WithdrawRequest) MarshalJSON() ([]byte, error) {
	return json.Marshal(withdrawWire{
		Subject: r.Subject, Actor: r.Actor, Delegation: r.Delegation, Purpose: r.Purpose,
		GrantID: r.GrantID, All: r.All, Reason: r.Reason, Revoke: r.Revoke,
	})
}

// MarshalJSON writes the request in the form DecodeRenew reads.
func (r RenewRequest) MarshalJSON() ([]byte, error) {
	return json.Marshal(renewWire{
		Subject: r.Subject, Actor: r.Actor, Delegation: r.Delegation, GrantID: r.GrantID,
		Notice: r.Notice, Expires: formatTimePtr(r.Expires), Channel: r.Channel, Evidence: r.Evidence,
	})
}

func decodeStrict(r io.Reader, v any, what string) error {
	body, err := io.ReadAll(io.LimitReader(r, MaxRequestBytes+1))
	if err != nil {
		return fmt.Errorf("%w: read: %w", ErrDecode, err)
	}
	if len(body) > MaxRequestBytes {
		return fmt.Errorf("%w: larger than %d bytes", ErrDecode, MaxRequestBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %s", ErrDecode, jsonProblem(err, what))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: data after the %s object", ErrDecode, what)
	}
	if err := strictjson.CheckNames(body); err != nil {
		return fmt.Errorf("%w: %w", ErrDecode, err)
	}
	return nil
}

func parseTime(field string, s *string) (time.Time, error) {
	if s == nil {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, *s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: %s: want RFC 3339 time (like 2026-01-01T00:00:00Z), got %q", ErrDecode, field, *s)
	}
	return storedTime(t), nil
}

func parseTimePtr(field string, s *string) (*time.Time, error) {
	if s == nil {
		return nil, nil
	}
	t, err := parseTime(field, s)
	if err != nil {
		return nil, err
	}
	return &t, nil
}

func formatTime(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.Format(time.RFC3339Nano)
	return &s
}

func formatTimePtr(t *time.Time) *string {
	if t == nil {
		return nil
	}
	return formatTime(*t)
}

// jsonProblem rewrites encoding/json's errors to name the field and what it
// wants.
func jsonProblem(err error, what string) string {
	var (
		typeErr   *json.UnmarshalTypeError
		syntaxErr *json.SyntaxError
	)
	switch {
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			field = what
		}
		return fmt.Sprintf("%s: want %s, got JSON %s", field, wantOf(typeErr.Type), typeErr.Value)
	case errors.As(err, &syntaxErr):
		return fmt.Sprintf("invalid JSON at byte %d: %v", syntaxErr.Offset, syntaxErr)
	case errors.Is(err, io.EOF):
		return "empty body: want a JSON object"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "truncated JSON"
	}
	return err.Error() // json: unknown field "x"
}

func wantOf(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Int, reflect.Int64, reflect.Float64:
		return "number"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice:
		return "array of " + wantOf(t.Elem()) + "s"
	}
	return "object"
}
