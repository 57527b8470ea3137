package trail

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// TestSidecarRecordCopiesCompactRecords: a sidecar's compact record is
// stored as it came; anything json.Marshal would change is changed as
// before.
func TestSidecarRecordCopiesCompactRecords(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		compact  bool
	}{
		{`{"decision_id":"d1","request":{"context":{"note":"a b\"}"}},"decision":true}`, ``, true},
		{`{"a": 1}`, `{"a":1}`, false},
		{`{"a":"<b>&"}`, `{"a":"\u003cb\u003e\u0026"}`, false},
		{"{\"a\":\"\u2028\"}", `{"a":"\u2028"}`, false},
		{"{\"a\":\n1}", `{"a":1}`, false},
	} {
		if got := compactJSON([]byte(tc.in)); got != tc.compact {
			t.Errorf("compactJSON(%q) = %v, want %v", tc.in, got, tc.compact)
		}
		rec, err := SidecarRecord("d1", time.Unix(0, 0).UTC(), SidecarBody{Sidecar: "sc", SpoolSeq: 1, Record: json.RawMessage(tc.in)})
		if err != nil {
			t.Fatal(err)
		}
		want := tc.want
		if want == "" {
			want = tc.in
		}
		if !bytes.HasSuffix(rec.Body, []byte(`"record":`+want+`}`)) {
			t.Errorf("%q stored as %s, want the record %s", tc.in, rec.Body, want)
		}
	}
	if _, err := SidecarRecord("d1", time.Unix(0, 0).UTC(), SidecarBody{Record: json.RawMessage(`{"a":`)}); err == nil {
		t.Error("a broken record was stored")
	}
}

// FuzzCompactJSON: what compactJSON lets through unchanged, json.Marshal
// would have copied unchanged.
func FuzzCompactJSON(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `{"a":"<"}`, `{"a":" \" "}`, "{\"a\":\"\xff\"}", `[1,2]`, `{"a":"\\u2028"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !compactJSON(data) {
			return
		}
		got, err := json.Marshal(json.RawMessage(data))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("compactJSON(%q) but json.Marshal gives %q, %v", data, got, err)
		}
	})
}
