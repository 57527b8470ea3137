package audit

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/trail"
)

// Revealer opens the redacted values of a record body that the auditor
// holds keys for, and names (by JSON path) those that stay hidden.
type Revealer func(body []byte) (revealed []byte, hidden []string, err error)

// redactedMark is in every body that holds a redaction marker.
var redactedMark = []byte(`"$redacted"`)

// redactedPlaceholder stands for a redacted value in a decoded request.
const redactedPlaceholder = "[redacted]"

// RevealWith is the Revealer of an auditor holding identities (age
// identities, "AGE-SECRET-KEY-1…"); with none, every redacted value stays
// hidden. Bodies without a marker pass through untouched.
func RevealWith(identities []string) Revealer {
	return func(body []byte) ([]byte, []string, error) {
		if !bytes.Contains(body, redactedMark) {
			return body, nil, nil
		}
		return trail.Reveal(body, identities)
	}
}

// requestHidden reports whether a hidden path lies in the request as
// received (which replay re-checks against the bundle).
func requestHidden(hidden []string) bool {
	for _, h := range hidden {
		if h == "request" || strings.HasPrefix(h, "request.") {
			return true
		}
	}
	return false
}

// decodeRequest decodes a recorded request, numbers as json.Number. A
// request with values still redacted (a marker object where a string
// belongs) decodes with each marker replaced by "[redacted]", so that
// listings and explanations show the rest.
func decodeRequest(raw []byte) (pdp.Request, error) {
	var req pdp.Request
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	err := dec.Decode(&req)
	if err == nil || !bytes.Contains(raw, redactedMark) {
		return req, err
	}
	var generic any
	dec = json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if gerr := dec.Decode(&generic); gerr != nil {
		return req, err
	}
	cleaned, merr := json.Marshal(placeholders(generic))
	if merr != nil {
		return req, err
	}
	req = pdp.Request{}
	dec = json.NewDecoder(bytes.NewReader(cleaned))
	dec.UseNumber()
	return req, dec.Decode(&req)
}

// placeholders replaces every redaction marker in v by "[redacted]".
func placeholders(v any) any {
	switch x := v.(type) {
	case map[string]any:
		if _, ok := x["$redacted"]; ok {
			return redactedPlaceholder
		}
		for k, e := range x {
			x[k] = placeholders(e)
		}
	case []any:
		for i, e := range x {
			x[i] = placeholders(e)
		}
	}
	return v
}
