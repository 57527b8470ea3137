package authzen

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/policy"
)

const benchBody = `{"subject":{"type":"user","id":"alice","properties":{"department":"Sales"}},` +
	`"action":{"name":"read","properties":{"method":"GET"}},` +
	`"resource":{"type":"record","id":"record-1","properties":{"status":"active","owner":"bob"}},` +
	`"context":{"time":"2024-10-26T01:22-07:00","ip":"192.168.1.1"}}`

func BenchmarkDecodeEvaluation(b *testing.B) {
	body := []byte(benchBody)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeEvaluation(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeDecision(b *testing.B) {
	d := pdp.Decision{ID: "0b8f5a4e-6c1d-4c39-9d55-1f0f3c7b2a11", Allowed: true, Policies: []string{"cert-read"},
		PolicyVersion: policy.Version{Hash: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}}
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		if err := json.NewEncoder(&buf).Encode(NewDecisionResponse(d, false)); err != nil {
			b.Fatal(err)
		}
	}
}
