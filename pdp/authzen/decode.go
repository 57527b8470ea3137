package authzen

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/internal/strictjson"
)

// wireEntity is a subject or resource as sent. A nil *wireEntity means the
// member was absent (or JSON null); a present one may still lack type or id.
type wireEntity struct {
	Type       string         `json:"type"`
	ID         string         `json:"id"`
	Properties map[string]any `json:"properties"`
}

// wireAction is an action as sent.
type wireAction struct {
	Name       string         `json:"name"`
	Properties map[string]any `json:"properties"`
}

// wireEvaluation is one evaluation request as sent: the single-evaluation
// body, a batch item, and the batch defaults all share this shape. Unknown
// members are ignored.
type wireEvaluation struct {
	Subject  *wireEntity    `json:"subject"`
	Action   *wireAction    `json:"action"`
	Resource *wireEntity    `json:"resource"`
	Context  map[string]any `json:"context"`
}

// DecodeEvaluation strictly decodes the body of a single Access Evaluation
// (POST /access/v1/evaluation). Every problem with the body is reported as a
// *RequestError: an empty body, malformed JSON, a top-level value that is not
// an object, a missing subject, action or resource, a member of the wrong
// JSON type, or an empty type, id or action name. Unknown members are
// ignored. Numbers inside properties and context decode as json.Number so
// that integers survive exactly.
func DecodeEvaluation(body []byte) (pdp.Request, error) {
	var w wireEvaluation
	if err := decodeObject(body, &w); err != nil {
		return pdp.Request{}, err
	}
	if err := w.validate(); err != nil {
		return pdp.Request{}, err
	}
	return w.request(), nil
}

// decodeObject decodes body, which must hold exactly one JSON object, into v.
func decodeObject(body []byte, v any) error {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 {
		return badRequest("request body is empty", nil)
	}
	if trimmed[0] != '{' {
		return badRequest("request body must be a JSON object", nil)
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	// Decode stops after the first value; anything but whitespace after it
	// makes the body malformed.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badRequest("malformed JSON: unexpected data after the top-level object", err)
	}
	if err := strictjson.CheckNames(trimmed); err != nil {
		return badRequest(err.Error(), err)
	}
	return nil
}

// decodeError turns an encoding/json error into a *RequestError with a
// client-safe one-line message.
func decodeError(err error) *RequestError {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return badRequest(fmt.Sprintf("malformed JSON at offset %d: %s", syntax.Offset, syntax.Error()), err)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return badRequest("malformed JSON: unexpected end of input", err)
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "request body"
		}
		return badRequest(fmt.Sprintf("%s must be %s, not %s", field, jsonKind(typ.Type), typ.Value), err)
	default:
		return badRequest("malformed JSON", err)
	}
}

// jsonKind names the JSON type that decodes into t, with its article.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "a different type"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "a number"
	default:
		return "a different type"
	}
}

// validate reports the first missing required member of a complete
// evaluation request.
func (w *wireEvaluation) validate() error {
	if err := validateEntity("subject", w.Subject); err != nil {
		return err
	}
	if w.Action == nil {
		return badRequest("action is required", nil)
	}
	if w.Action.Name == "" {
		return badRequest("action.name is required and must be a non-empty string", nil)
	}
	if err := validateEntity("resource", w.Resource); err != nil {
		return err
	}
	// A step-up outcome reported (context.step_up) must be one the failed
	// step-up rules can count.
	if _, err := pdp.StepUpOutcome(w.Context); err != nil {
		return badRequest(err.Error(), err)
	}
	return nil
}

func validateEntity(member string, e *wireEntity) error {
	switch {
	case e == nil:
		return badRequest(member+" is required", nil)
	case e.Type == "":
		return badRequest(member+".type is required and must be a non-empty string", nil)
	case e.ID == "":
		return badRequest(member+".id is required and must be a non-empty string", nil)
	}
	return nil
}

// request converts to the engine's Request, leaving absent parts zero.
func (w *wireEvaluation) request() pdp.Request {
	var r pdp.Request
	if w.Subject != nil {
		r.Subject = pdp.Entity{Type: w.Subject.Type, ID: w.Subject.ID, Properties: w.Subject.Properties}
	}
	if w.Action != nil {
		r.Action = pdp.Action{Name: w.Action.Name, Properties: w.Action.Properties}
	}
	if w.Resource != nil {
		r.Resource = pdp.Entity{Type: w.Resource.Type, ID: w.Resource.ID, Properties: w.Resource.Properties}
	}
	r.Context = w.Context
	return r
}
