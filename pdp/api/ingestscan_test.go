package api

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// sidecarBatch is an ingest body as a sidecar writes it (sidecar package's
// appendIngestBatch): n cache hits.
func sidecarBatch(n int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"records":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		id := fmt.Sprintf("019af0c2-7a1b-7c3d-8e4f-%012d", i)
		fmt.Fprintf(&b, `{"seq":%d,"id":%q,"time":"2026-12-07T17:00:00.123456789Z","body":{"decision_id":%q,"time":"2026-12-07T17:00:00.123456789Z","sidecar":"sc-1",`+
			`"request":{"subject":{"type":"user","id":"alice"},"action":{"name":"view_statements"},"resource":{"type":"account","id":"acc-alice"},"context":{"purpose":"account_servicing","note":"a \"quoted\" } ] {"}},`+
			`"decision":true,"reasons":["allowed"],"cached_from":"019af0c2-0000-7000-8000-000000000000","change_seq":3,"epoch":"e1","source":"cache"}}`, i+1, id, id)
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

// TestScanIngestReadsWhatSidecarsWrite: the fast reader takes a sidecar's
// batch, with the result of the encoding/json reader, and leaves every
// other form to it.
func TestScanIngestReadsWhatSidecarsWrite(t *testing.T) {
	good := string(sidecarBatch(3))
	for _, tc := range []struct {
		name string
		body string
		fast bool // scanIngest reads it
	}{
		{"a sidecar's batch", good, true},
		{"no records", `{"records":[]}`, true},
		{"one record", string(sidecarBatch(1)), true},
		{"whitespace", strings.Replace(good, `{"records":[`, `{ "records":[`, 1), false},
		{"trailing newline", good + "\n", false},
		{"members in another order", `{"records":[{"id":"d1","seq":1,"time":"2026-01-01T00:00:00Z","body":{}}]}`, false},
		{"an escaped id", `{"records":[{"seq":1,"id":"d\u0031","time":"2026-01-01T00:00:00Z","body":{}}]}`, false},
		{"a name twice in a body", `{"records":[{"seq":1,"id":"d1","time":"2026-01-01T00:00:00Z","body":{"a":1,"A":2}}]}`, false},
		{"a bad body", `{"records":[{"seq":1,"id":"d1","time":"2026-01-01T00:00:00Z","body":{"a":}}]}`, false},
		{"a body not an object", `{"records":[{"seq":1,"id":"d1","time":"2026-01-01T00:00:00Z","body":[1]}]}`, false},
		{"seq 0", `{"records":[{"seq":0,"id":"d1","time":"2026-01-01T00:00:00Z","body":{}}]}`, false},
		{"seq not increasing", `{"records":[{"seq":2,"id":"d1","time":"2026-01-01T00:00:00Z","body":{}},{"seq":2,"id":"d2","time":"2026-01-01T00:00:00Z","body":{}}]}`, false},
		{"seq with a leading zero", `{"records":[{"seq":01,"id":"d1","time":"2026-01-01T00:00:00Z","body":{}}]}`, false},
		{"seq too large", `{"records":[{"seq":18446744073709551616,"id":"d1","time":"2026-01-01T00:00:00Z","body":{}}]}`, false},
		{"empty id", `{"records":[{"seq":1,"id":"","time":"2026-01-01T00:00:00Z","body":{}}]}`, false},
		{"a bad time", `{"records":[{"seq":1,"id":"d1","time":"yesterday","body":{}}]}`, false},
		{"an unknown member", `{"records":[{"seq":1,"id":"d1","time":"2026-01-01T00:00:00Z","body":{},"x":1}]}`, false},
		{"data after", good + `{}`, false},
		{"no records member", `{}`, false},
		{"bad UTF-8 in a body", "{\"records\":[{\"seq\":1,\"id\":\"d1\",\"time\":\"2026-01-01T00:00:00Z\",\"body\":{\"a\":\"\xff\"}}]}", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fast, ok := scanIngest([]byte(tc.body))
			if ok != tc.fast {
				t.Fatalf("scanIngest ok = %v, want %v", ok, tc.fast)
			}
			slow, err := decodeIngestJSON([]byte(tc.body))
			if ok {
				if err != nil {
					t.Fatalf("scanIngest accepted what encoding/json refuses: %v", err)
				}
				if !reflect.DeepEqual(fast, slow) {
					t.Fatalf("scanIngest read\n%+v\nencoding/json\n%+v", fast, slow)
				}
			}
			got, gotErr := decodeIngest([]byte(tc.body))
			if fmt.Sprint(gotErr) != fmt.Sprint(err) || gotErr == nil && !reflect.DeepEqual(got, slow) {
				t.Fatalf("decodeIngest = %v, %v; encoding/json %v, %v", got, gotErr, slow, err)
			}
		})
	}
}

// FuzzScanIngest: whatever scanIngest reads, encoding/json reads the same.
func FuzzScanIngest(f *testing.F) {
	f.Add(sidecarBatch(2))
	f.Add([]byte(`{"records":[]}`))
	f.Add([]byte(`{"records":[{"seq":1,"id":"d1","time":"2026-01-01T00:00:00Z","body":{"a":[1,{"b":"}"}]}}]}`))
	f.Add([]byte(`{"records":[{"seq":1,"id":"d1","time":"2026-01-01T00:00:00Z","body":{"a":1,"a":2}}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		fast, ok := scanIngest(body)
		if !ok {
			return
		}
		slow, err := decodeIngestJSON(body)
		if err != nil {
			t.Fatalf("scanIngest accepted %q, encoding/json refuses: %v", body, err)
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("%q: scanIngest read\n%+v\nencoding/json\n%+v", body, fast, slow)
		}
	})
}

// BenchmarkDecodeIngest: a sidecar's batch of 200 cache hits.
func BenchmarkDecodeIngest(b *testing.B) {
	body := sidecarBatch(200)
	for _, bc := range []struct {
		name string
		fn   func([]byte) error
	}{
		{"scan", func(d []byte) error { _, err := decodeIngest(d); return err }},
		{"encoding_json", func(d []byte) error { _, err := decodeIngestJSON(d); return err }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := bc.fn(body); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/200/1000, "µs/record")
		})
	}
}
