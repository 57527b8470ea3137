package api

import (
	"bytes"
	"errors"
	"testing"

	"github.com/ciampdp/pdp/pdp/delegation"
	"github.com/ciampdp/pdp/pdp/internal/strictjson"
)

// FuzzDecodeChange: a delegation change naming a member twice (in any
// case) is a decode error (400); an accepted one names none twice.
func FuzzDecodeChange(f *testing.F) {
	for _, s := range []string{
		`{"actor":{"type":"user","id":"mallory","id":"peggy"}}`,
		`{"actor":{"type":"user","id":"peggy"},"Reason":"a","reason":"b"}`,
		`{"actor":{"type":"user","id":"peggy"},"reason":"moving"}`,
		`{"actor":`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		_, err := decodeChange(bytes.NewReader(body))
		if err == nil {
			if dup := strictjson.CheckNames(body); dup != nil {
				t.Fatalf("accepted %q: %v", body, dup)
			}
			return
		}
		if !errors.Is(err, delegation.ErrDecode) {
			t.Fatalf("%v does not wrap ErrDecode", err)
		}
	})
}

// FuzzDecodeIngest: the same for a sidecar's trail ingest body.
func FuzzDecodeIngest(f *testing.F) {
	for _, s := range []string{
		`{"records":[{"seq":1,"id":"d1","time":"2026-01-01T00:00:00Z","body":{"a":1,"a":2}}]}`,
		`{"records":[{"seq":1,"id":"d1","ID":"d2","time":"2026-01-01T00:00:00Z","body":{}}]}`,
		`{"records":[{"seq":1,"id":"d1","time":"2026-01-01T00:00:00Z","body":{"a":1}}]}`,
		`{"records":[]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		_, err := decodeIngest(body)
		if err == nil {
			if dup := strictjson.CheckNames(body); dup != nil {
				t.Fatalf("accepted %q: %v", body, dup)
			}
			return
		}
		if !errors.Is(err, errSidecarRequest) {
			t.Fatalf("%v does not wrap errSidecarRequest", err)
		}
	})
}
