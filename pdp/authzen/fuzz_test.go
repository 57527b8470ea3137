package authzen

import (
	"errors"
	"strings"
	"testing"
)

// fuzzSeeds are valid and invalid bodies of both endpoints.
var fuzzSeeds = []string{
	rule1,
	``,
	`{}`,
	`[]`,
	`null`,
	`{"subject":"alice"}`,
	`{"subject":{"type":"user","id":"alice"},"action":{"name":123},"resource":{"type":"record","id":"record-1"}}`,
	`{"subject":{"type":"user","id":"alice","properties":{"n":12345678901234567890,"f":1e400}},"action":{"name":"read"},"resource":{"type":"record","id":"record-1"},"context":{"a":[{"b":null}]}}`,
	`{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"evaluations":[{"resource":{"type":"record","id":"record-1"}},{}]}`,
	`{"options":{"evaluations_semantic":"deny_on_first_deny"},"evaluations":[{"subject":{"type":"user","id":"bob"},"action":{"name":"write"},"resource":{"type":"record","id":"record-2"}}]}`,
	`{"evaluations":[null]}`,
	`{"evaluations":{}}`,
	`{"evaluations":[],"subject":{"type":"u","id":"1"},"action":{"name":"a"},"resource":{"type":"r","id":"2"}}`,
	`{"subject":{"type":"user","id":"\u00e9\ud800"},"action":{"name":"read"},"resource":{"type":"record","id":"record-1"}}`,
	"{\"subject\":{\"type\":\"user\",\"id\":\"a\xff\"}}",
	`{"subject":{"type":"user","id":"alice"},"subject":{"type":"user"}}`,
	strings.Repeat("[", 20000),
	`{"context":` + strings.Repeat("[", 20000),
}

// checkError asserts the decoders' error contract: only *RequestError, with
// a one-line message.
func checkError(t *testing.T, err error) {
	t.Helper()
	var re *RequestError
	if !errors.As(err, &re) {
		t.Fatalf("error %v is %T, want *RequestError", err, err)
	}
	if re.Message == "" || strings.ContainsAny(re.Message, "\r\n") {
		t.Fatalf("bad message %q", re.Message)
	}
}

func FuzzDecodeEvaluation(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := DecodeEvaluation(body)
		if err != nil {
			checkError(t, err)
			return
		}
		if req.Subject.Type == "" || req.Subject.ID == "" || req.Action.Name == "" ||
			req.Resource.Type == "" || req.Resource.ID == "" {
			t.Fatalf("accepted an incomplete request: %+v", req)
		}
	})
}

func FuzzDecodeEvaluations(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := DecodeEvaluations(body)
		if err != nil {
			checkError(t, err)
			return
		}
		if !b.Semantic.Valid() {
			t.Fatalf("invalid semantic %q accepted", b.Semantic)
		}
		if len(b.Requests) == 0 {
			t.Fatal("no requests")
		}
		if !b.Single {
			return
		}
		if len(b.Requests) != 1 {
			t.Fatalf("single batch with %d requests", len(b.Requests))
		}
		req := b.Requests[0]
		if req.Subject.Type == "" || req.Subject.ID == "" || req.Action.Name == "" ||
			req.Resource.Type == "" || req.Resource.ID == "" {
			t.Fatalf("accepted an incomplete single request: %+v", req)
		}
		// The single form must agree with the single endpoint.
		if _, err := DecodeEvaluation(body); err != nil {
			t.Fatalf("batch accepted a single request the single endpoint rejects: %v", err)
		}
	})
}
