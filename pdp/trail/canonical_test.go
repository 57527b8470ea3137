package trail

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// oldCanonical is how Canonical encoded a record before it was written by
// hand: encoding/json's Marshal of the Record (format 1).
func oldCanonical(rec Record) ([]byte, error) {
	rec.Time = rec.Time.UTC()
	if len(rec.Body) == 0 {
		rec.Body = json.RawMessage("null")
	}
	return json.Marshal(rec)
}

func canonicalCorpus(t testing.TB) []Record {
	body, err := os.ReadFile(filepath.Join("testdata", "decision_body.json"))
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 12, 7, 15, 4, 5, 999000000, time.FixedZone("CET", 3600))
	return []Record{
		{Seq: 0, Kind: "decision", ID: "01890a5d-ac96-774b-bcce-b302099a8057", Time: t0, Body: bytes.TrimSpace(body)},
		{Seq: 1, Kind: "admin", ID: "a<&>\u2028\"\\\x01\xff", Time: time.Time{}, Body: json.RawMessage(" { \"a\" : [1, 2, \"<x>\"] ,\n\"b\":null}")},
		{Seq: 12345678901, Kind: "decision", ID: "x", Time: t0, Pruned: true, Leaf: "q83vASNFZ4mrze8BI0VniavN7wEjRWeJq83vASNFZ4k="},
		{Seq: 2, Kind: "search", ID: "y", Time: t0},
		{Seq: 3, Kind: "sidecar", ID: "z", Time: t0, Body: json.RawMessage(`"just a string with é and \u00e9"`)},
	}
}

// TestCanonicalMatchesJSON: the hand-written Canonical writes what
// encoding/json wrote, so every record's leaf hash is unchanged; the
// compact path (a body the recorder encoded) writes the same bytes as the
// compacting one.
func TestCanonicalMatchesJSON(t *testing.T) {
	for _, rec := range canonicalCorpus(t) {
		want, err := oldCanonical(rec)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Canonical(rec)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("record %d:\n got %s\nwant %s", rec.Seq, got, want)
		}
		if rec.Pruned || len(rec.Body) == 0 {
			continue
		}
		var compacted bytes.Buffer
		if err := json.Compact(&compacted, rec.Body); err != nil {
			t.Fatal(err)
		}
		body, _ := json.Marshal(json.RawMessage(compacted.Bytes())) // HTML-escaped, as the recorder's encoder writes
		c := CompactRecord(rec.Kind, rec.ID, rec.Time, body)
		c.Seq = rec.Seq
		if got, _ := Canonical(c); !bytes.Equal(got, want) {
			t.Errorf("record %d, compact body:\n got %s\nwant %s", rec.Seq, got, want)
		}
	}
	if _, err := Canonical(Record{Body: json.RawMessage(`{"a":`)}); err == nil {
		t.Error("a malformed body was accepted")
	}
	if _, err := Canonical(Record{Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}); err == nil {
		t.Error("a time after year 9999 was accepted")
	}
}

// FuzzCanonical: for any record read from bytes, the hand-written encoding
// is encoding/json's (or both refuse it), and what decodeRecord reads
// back from a canonical payload encodes to the same payload.
func FuzzCanonical(f *testing.F) {
	for _, rec := range canonicalCorpus(f) {
		b, _ := oldCanonical(rec)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		var rec Record
		if json.Unmarshal(payload, &rec) != nil {
			return
		}
		want, werr := oldCanonical(rec)
		got, gerr := Canonical(rec)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("encoding/json error %v, Canonical error %v", werr, gerr)
		}
		if werr != nil {
			return
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("encodings differ:\n got %s\nwant %s", got, want)
		}
		back, err := decodeRecord(got)
		if err != nil {
			t.Fatalf("decode %s: %v", got, err)
		}
		again, err := Canonical(back)
		if err != nil || !bytes.Equal(again, got) {
			t.Fatalf("read back and encoded again: %s (%v), want %s", again, err, got)
		}
	})
}

// TestSidecarRecordMatchesJSON: a sidecar record built by hand is the
// record encoding/json built, and a malformed sidecar record is refused.
func TestSidecarRecordMatchesJSON(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 15, 0, 0, 0, time.UTC)
	for _, b := range []SidecarBody{
		{Sidecar: "sc-1", Application: "mobile-banking", SpoolSeq: 7, Record: json.RawMessage(` {"decision_id" : "d<1>", "x":[1, 2]} `)},
		{Sidecar: "s\"\u2028", SpoolSeq: 0},
	} {
		body, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := oldCanonical(Record{Seq: 3, Kind: KindSidecar, ID: "id-1", Time: t0, Body: body})
		rec, err := SidecarRecord("id-1", t0, b)
		if err != nil {
			t.Fatal(err)
		}
		rec.Seq = 3
		if got, _ := Canonical(rec); !bytes.Equal(got, want) {
			t.Errorf("\n got %s\nwant %s", got, want)
		}
	}
	if _, err := SidecarRecord("x", t0, SidecarBody{Record: json.RawMessage(`{"a":`)}); err == nil {
		t.Error("a malformed sidecar record was accepted")
	}
}

// FuzzParseHeader: whatever header the reflection-free reader accepts,
// encoding/json reads to the same record.
func FuzzParseHeader(f *testing.F) {
	for _, rec := range canonicalCorpus(f) {
		b, _ := oldCanonical(rec)
		if i := bytes.Index(b, bodyKey); i > 0 {
			f.Add(b[:i])
		}
	}
	f.Add([]byte(`{"seq":01,"kind":"a","id":"b","time":"2026-01-01T00:00:00Z"`))
	f.Add([]byte(`{"seq":1,"kind":"a\u00e9","id":"\xff","time":"2026-01-01T00:00:00+01:00"`))
	f.Fuzz(func(t *testing.T, h []byte) {
		fast, ok := parseHeader(h)
		if !ok {
			return
		}
		var slow Record
		if err := json.Unmarshal(append(bytes.Clone(h), '}'), &slow); err != nil {
			t.Fatalf("parseHeader accepted %q, encoding/json refuses it: %v", h, err)
		}
		if fast.Seq != slow.Seq || fast.Kind != slow.Kind || fast.ID != slow.ID || !fast.Time.Equal(slow.Time) || fast.Time.String() != slow.Time.String() {
			t.Fatalf("%q: parseHeader %+v, encoding/json %+v", h, fast, slow)
		}
	})
}
