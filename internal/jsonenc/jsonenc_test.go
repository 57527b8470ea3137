package jsonenc

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

func TestMatchesEncodingJSON(t *testing.T) {
	cases := []any{
		map[string]any{"a": "x<y>&z", "b": json.Number("1e3"), "c": []any{nil, true, 1.5, 1e-7, 1e21}, "d": map[string]any{}},
		map[string]any{"\u2028": "\u2029\x00\x1f\xff\"\\/", "int": 3, "i64": int64(-4)},
	}
	for _, c := range cases {
		want, _ := json.Marshal(c)
		got, err := Any(nil, c)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("Any: %s (%v), want %s", got, err, want)
		}
	}
	tm := time.Date(2026, 12, 7, 1, 2, 3, 400, time.FixedZone("X", -3600))
	want, _ := json.Marshal(tm)
	if got, _ := Time(nil, tm); !bytes.Equal(got, want) {
		t.Errorf("Time: %s, want %s", got, want)
	}
}

// FuzzAny: any JSON value, decoded as a request's properties are
// (json.Number), encodes as encoding/json encodes it.
func FuzzAny(f *testing.F) {
	for _, s := range []string{`{"a":[1,"x<",{"b":null}],"c":1.50}`, `"\u2028\ud800"`, `[1e999,-0]`, `"\xff"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var v any
		if dec.Decode(&v) != nil {
			return
		}
		want, werr := json.Marshal(v)
		got, gerr := Any(nil, v)
		if (werr == nil) != (gerr == nil) || werr == nil && !bytes.Equal(got, want) {
			t.Fatalf("got %s (%v), want %s (%v)", got, gerr, want, werr)
		}
		s, _ := v.(string)
		want, _ = json.Marshal(s)
		if got := String(nil, s); !bytes.Equal(got, want) {
			t.Fatalf("String: got %s, want %s", got, want)
		}
	})
}
