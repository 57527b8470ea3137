package delegation

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/ciampdp/pdp/pdp/internal/strictjson"
)

// FuzzDecodeOfferNoDuplicates: an offer naming a member twice (in any
// case) is a decode error; an accepted one names none twice.
func FuzzDecodeOfferNoDuplicates(f *testing.F) {
	for _, s := range []string{
		`{"actor":{"type":"user","id":"alice"},"principal":{"type":"user","id":"mallory","id":"alice"},"agent":{"type":"user","id":"bob"},"scope":["view"]}`,
		`{"actor":{"type":"user","id":"alice"},"principal":{"type":"user","id":"alice"},"agent":{"type":"user","id":"bob"},"scope":["view"],"Scope":["*"]}`,
		`{"actor":{"type":"user","id":"alice"},"principal":{"type":"user","id":"alice"},"agent":{"type":"user","id":"bob"},"scope":["view"]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		_, err := DecodeOffer(bytes.NewReader(body))
		dup := strictjson.CheckNames(body)
		switch {
		case err == nil && dup != nil:
			t.Fatalf("accepted %q: %v", body, dup)
		case err != nil && !errors.Is(err, ErrDecode):
			t.Fatalf("error %v does not wrap ErrDecode", err)
		case err != nil && errors.Is(err, strictjson.ErrDuplicateName) && !strings.Contains(err.Error(), "duplicate member name"):
			t.Fatalf("unclear error %v", err)
		}
	})
}
