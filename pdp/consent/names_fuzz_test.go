package consent

import (
	"bytes"
	"errors"
	"testing"

	"github.com/ciampdp/pdp/pdp/internal/strictjson"
)

// FuzzDecodeNoDuplicates: the consent decoders refuse a body naming a
// member twice (in any case), as a decode error.
func FuzzDecodeNoDuplicates(f *testing.F) {
	for _, s := range []string{
		`{"subject":{"type":"user","id":"judy"},"purpose":"marketing","purpose":"account_information_sharing","jurisdiction":"DE"}`,
		`{"subject":{"type":"user","id":"mallory","ID":"judy"},"purpose":"marketing"}`,
		`{"subject":{"type":"user","id":"judy"},"purpose":"marketing","reason":"r"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		dup := strictjson.CheckNames(body)
		for name, decode := range map[string]func() error{
			"choice":   func() error { _, err := DecodeChoice(bytes.NewReader(body)); return err },
			"withdraw": func() error { _, err := DecodeWithdraw(bytes.NewReader(body)); return err },
			"renew":    func() error { _, err := DecodeRenew(bytes.NewReader(body)); return err },
		} {
			err := decode()
			if err == nil && dup != nil {
				t.Fatalf("%s accepted %q: %v", name, body, dup)
			}
			if err != nil && !errors.Is(err, ErrDecode) {
				t.Fatalf("%s: %v does not wrap ErrDecode", name, err)
			}
		}
	})
}
