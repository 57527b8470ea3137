package sidecar

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp"
)

func sampleAnswers() []answerRecord {
	t0 := time.Date(2026, 12, 7, 15, 0, 0, 123, time.UTC)
	req := pdp.Request{
		Subject:  pdp.Entity{Type: "user", ID: "alice", Properties: map[string]any{"mfa": true, "n": json.Number("2.50")}},
		Action:   pdp.Action{Name: "view_statements", Properties: map[string]any{"via": "<app>"}},
		Resource: pdp.Entity{Type: "account", ID: "acc-alice"},
		Context:  map[string]any{"purpose": "account_servicing", "list": []any{"a", nil}},
	}
	return []answerRecord{
		{DecisionID: "d1", Time: t0, Sidecar: "sc-1", Request: req, Decision: true, Reasons: []string{}, Policies: []string{"owner-views"},
			Obligations: []string{"log"}, CachedFrom: "c1", PolicyVersion: "sha256:x", ChangeSeq: 42, Epoch: "e", Degraded: true, Source: "degraded"},
		{DecisionID: "d2", Time: t0, Sidecar: "sc-1", Request: pdp.Request{}, Reasons: []string{"pdp_unreachable"}, Policies: []string{}, Source: "fail_closed"},
		{DecisionID: "d3\u2028&", Time: t0.In(time.FixedZone("X", 7200)), Sidecar: "s\"c", Request: req, Reasons: nil, Source: "cache"},
	}
}

// TestAnswerEncoderMatchesJSON: the spool's answer records and ingest
// batches are, byte for byte, what encoding/json wrote for them.
func TestAnswerEncoderMatchesJSON(t *testing.T) {
	var recs []ingestRecord
	for i, a := range sampleAnswers() {
		want, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		key, err := cacheKey(a.Request.(pdp.Request))
		if err != nil {
			t.Fatal(err)
		}
		got, err := appendAnswerRecord(nil, &a, key)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("answer %d:\n got %s (%v)\nwant %s", i, got, err, want)
		}
		recs = append(recs, ingestRecord{Seq: uint64(i + 1), ID: a.DecisionID, Time: a.Time, Body: got})
	}
	for _, rs := range [][]ingestRecord{recs, {}, {{Seq: 9, ID: "x", Time: time.Unix(0, 0).UTC()}}} {
		want, err := json.Marshal(map[string]any{"records": rs})
		if err != nil {
			t.Fatal(err)
		}
		got, err := appendIngestBatch(nil, rs)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("ingest batch:\n got %s (%v)\nwant %s", got, err, want)
		}
	}
}

// TestAnswerEncoderCoversEveryField fails when answerRecord or
// ingestRecord gains a field that answerenc.go does not write.
func TestAnswerEncoderCoversEveryField(t *testing.T) {
	for typ, want := range map[reflect.Type][]string{
		reflect.TypeFor[answerRecord](): {"CachedFrom", "ChangeSeq", "Decision", "DecisionID", "Degraded", "Epoch", "Obligations",
			"Policies", "PolicyVersion", "Reasons", "Request", "Sidecar", "Source", "Time"},
		reflect.TypeFor[ingestRecord](): {"Body", "ID", "Seq", "Time"},
	} {
		var got []string
		for f := range typ.Fields() {
			got = append(got, f.Name)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s has fields %v; answerenc.go writes %v: encode the new ones there", typ.Name(), got, want)
		}
	}
}

// FuzzAnswerEncoder: any strings in an answer encode as encoding/json
// encodes them.
func FuzzAnswerEncoder(f *testing.F) {
	f.Add("d1", "sc-1", "user", "alice<>", "cache", "\xff\u2028")
	f.Fuzz(func(t *testing.T, id, sidecar, typ, sub, source, reason string) {
		req := pdp.Request{Subject: pdp.Entity{Type: typ, ID: sub}, Context: map[string]any{reason: sub}}
		a := answerRecord{DecisionID: id, Time: time.Unix(1, 2).UTC(), Sidecar: sidecar, Request: req, Reasons: []string{reason}, Epoch: reason, Source: source}
		want, werr := json.Marshal(a)
		key, gerr := cacheKey(req)
		var got []byte
		if gerr == nil {
			got, gerr = appendAnswerRecord(nil, &a, key)
		}
		if (werr == nil) != (gerr == nil) || werr == nil && !bytes.Equal(got, want) {
			t.Fatalf("got %s (%v), want %s (%v)", got, gerr, want, werr)
		}
	})
}
