package ingest

import (
	"encoding/json"
	"reflect"
	"testing"
)

// hitRecord is a cache hit's record as a sidecar writes it.
const hitRecord = `{"decision_id":"019af0c2-7a1b-7c3d-8e4f-000000000001","time":"2026-12-07T17:00:00.123456789Z","sidecar":"sc-1",` +
	`"request":{"subject":{"type":"user","id":"alice"},"action":{"name":"view_statements","properties":{"x":[1,"}"]}},"resource":{"type":"account","id":"acc-alice"},"context":{"purpose":"account_servicing"}},` +
	`"decision":true,"reasons":["allowed"],"cached_from":"019af0c2-0000-7000-8000-000000000000","change_seq":3,"epoch":"e1","source":"cache"}`

// TestScanSidecarRecord: the reader without reflection takes a sidecar's
// record with json.Unmarshal's result, and leaves every other form to it.
func TestScanSidecarRecord(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		fast       bool
	}{
		{"a cache hit", hitRecord, true},
		{"a fail-closed deny", `{"decision_id":"d","time":"2026-12-07T17:00:00Z","sidecar":"s","request":{},"decision":false,"reasons":["pdp_unreachable"],"change_seq":0,"source":"fail_closed"}`, true},
		{"whitespace", `{ "decision_id" : "d" , "decision" : true }`, true},
		{"a degraded answer", `{"decision_id":"d","decision":true,"degraded":true,"source":"degraded"}`, true},
		{"a name in another case", `{"decision_id":"d","Source":"cache"}`, false},
		{"an escaped value", `{"decision_id":"d\u0031"}`, false},
		{"a null decision", `{"decision":null}`, false},
		{"a string decision", `{"decision":"true"}`, false},
		{"a request not an object", `{"request":"view"}`, false},
		{"an action in another case", `{"request":{"Action":{"name":"x"}}}`, false},
		{"a bad time", `{"time":"yesterday"}`, false},
		{"not an object", `[1]`, false},
		{"bad UTF-8", "{\"sidecar\":\"\xff\"}", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var fast sidecarRecord
			ok := json.Valid([]byte(tc.body)) && scanSidecarRecord([]byte(tc.body), &fast)
			if ok != tc.fast {
				t.Fatalf("scanSidecarRecord ok = %v, want %v", ok, tc.fast)
			}
			var slow sidecarRecord
			err := json.Unmarshal([]byte(tc.body), &slow)
			if ok && (err != nil || !reflect.DeepEqual(fast, slow)) {
				t.Fatalf("scan %+v; json.Unmarshal %+v, %v", fast, slow, err)
			}
			var got sidecarRecord
			gerr := decodeSidecarRecord([]byte(tc.body), &got)
			if (gerr == nil) != (err == nil) || err == nil && !reflect.DeepEqual(got, slow) {
				t.Fatalf("decodeSidecarRecord %+v, %v; json.Unmarshal %+v, %v", got, gerr, slow, err)
			}
		})
	}
}

// FuzzScanSidecarRecord: whatever the scan reads, json.Unmarshal reads the
// same.
func FuzzScanSidecarRecord(f *testing.F) {
	for _, s := range []string{hitRecord, `{"decision":true,"DECISION":false}`, `{"request":{"action":{"name":"a","NAME":"b"}}}`,
		`{"source":"cache","source":"degraded"}`, `{"time":"2026-01-01T00:00:00+01:00"}`, `{"\u0073ource":"x"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var fast sidecarRecord
		if !json.Valid(body) || !scanSidecarRecord(body, &fast) {
			return
		}
		var slow sidecarRecord
		if err := json.Unmarshal(body, &slow); err != nil || !reflect.DeepEqual(fast, slow) {
			t.Fatalf("%q: scan %+v; json.Unmarshal %+v, %v", body, fast, slow, err)
		}
	})
}

func BenchmarkDecodeSidecarRecord(b *testing.B) {
	body := []byte(hitRecord)
	b.Run("scan", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var p sidecarRecord
			if err := decodeSidecarRecord(body, &p); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding_json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var p sidecarRecord
			if err := json.Unmarshal(body, &p); err != nil {
				b.Fatal(err)
			}
		}
	})
}
