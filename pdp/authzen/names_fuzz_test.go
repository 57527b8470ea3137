package authzen

import (
	"errors"
	"strings"
	"testing"

	"github.com/ciampdp/pdp/pdp/internal/strictjson"
)

var duplicateSeeds = []string{
	`{"subject":{"type":"user","id":"mallory","id":"alice"},"action":{"name":"read"},"resource":{"type":"doc","id":"1"}}`,
	`{"subject":{"type":"user","id":"mallory","ID":"alice"},"action":{"name":"read"},"resource":{"type":"doc","id":"1"}}`,
	`{"subject":{"type":"user","id":"a"},"action":{"name":"read"},"resource":{"type":"doc","id":"1"},"context":{"x":1,"x":2}}`,
	`{"subject":{"type":"user","id":"a"},"action":{"name":"read"},"evaluations":[{"resource":{"type":"doc","id":"1"},"resource":{"type":"doc","id":"2"}}]}`,
	`{"subject":{"type":"user","id":"a"},"action":{"name":"read"},"resource":{"type":"doc","id":"1"}}`,
}

// TestDecodersRefuseDuplicateNames: every AuthZEN body decoder answers a
// RequestError naming the duplicate.
func TestDecodersRefuseDuplicateNames(t *testing.T) {
	decoders := map[string]func([]byte) error{
		"evaluation":  func(b []byte) error { _, err := DecodeEvaluation(b); return err },
		"evaluations": func(b []byte) error { _, err := DecodeEvaluations(b); return err },
		"search":      func(b []byte) error { _, err := DecodeSearch(SearchAction, b); return err },
	}
	for name, decode := range decoders {
		for _, seed := range duplicateSeeds[:4] {
			err := decode([]byte(seed))
			var re *RequestError
			if name == "evaluation" && strings.Contains(seed, "evaluations") {
				continue // no resource: refused for that first
			}
			if !errors.As(err, &re) || !strings.Contains(re.Message, "duplicate member name") {
				t.Errorf("%s %s: %v", name, seed, err)
			}
		}
	}
}

// FuzzDecodeNoDuplicates: a body any decoder accepts names no member twice.
func FuzzDecodeNoDuplicates(f *testing.F) {
	for _, s := range append(duplicateSeeds, fuzzSeeds...) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		_, e1 := DecodeEvaluation(body)
		_, e2 := DecodeEvaluations(body)
		_, e3 := DecodeSearch(SearchSubject, body)
		if e1 == nil || e2 == nil || e3 == nil {
			if err := strictjson.CheckNames(body); err != nil {
				t.Fatalf("accepted %q: %v", body, err)
			}
		}
	})
}
