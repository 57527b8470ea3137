package api

import (
	"bytes"
	"strconv"
	"time"

	"github.com/ciampdp/pdp/pdp/ingest"
	"github.com/ciampdp/pdp/pdp/internal/strictjson"
)

// scanIngest reads an ingest body in the one form sidecars write,
//
//	{"records":[{"seq":1,"id":"…","time":"…","body":{…}},…]}
//
// with no whitespace outside the bodies, the members in this order, ids
// and times of printable ASCII without escapes, and applies every check
// of decodeIngestJSON: the result is the same. ok is false for anything
// else (another form, or a check that fails); decodeIngestJSON then reads
// the body and says what is wrong. Each body is checked as the whole body
// is there: valid JSON, valid UTF-8, no member named twice.
func scanIngest(data []byte) (_ []ingest.Record, ok bool) {
	p, ok := bytes.CutPrefix(data, []byte(`{"records":[`))
	if !ok {
		return nil, false
	}
	out := make([]ingest.Record, 0, min(bytes.Count(p, []byte(`{"seq":`)), MaxIngestRecords))
	if q, ok := bytes.CutPrefix(p, []byte(`]}`)); ok {
		return out, len(q) == 0
	}
	for {
		if len(out) == MaxIngestRecords {
			return nil, false
		}
		var (
			r   ingest.Record
			raw []byte
		)
		if p, ok = cutLiteral(p, `{"seq":`); !ok {
			return nil, false
		}
		if r.Seq, p, ok = cutSeq(p); !ok || r.Seq == 0 || len(out) > 0 && r.Seq <= out[len(out)-1].Seq {
			return nil, false
		}
		if p, ok = cutLiteral(p, `,"id":`); !ok {
			return nil, false
		}
		if raw, p, ok = cutPlainString(p); !ok || len(raw) == 0 || len(raw) > maxIngestID {
			return nil, false
		}
		r.ID = string(raw)
		if p, ok = cutLiteral(p, `,"time":`); !ok {
			return nil, false
		}
		if raw, p, ok = cutPlainString(p); !ok {
			return nil, false
		}
		t, err := time.Parse(time.RFC3339Nano, string(raw))
		if err != nil {
			return nil, false
		}
		r.Time = t
		if p, ok = cutLiteral(p, `,"body":`); !ok {
			return nil, false
		}
		n := objectEnd(p)
		if n < 0 {
			return nil, false
		}
		body := p[:n]
		if strictjson.CheckValidNames(body) != nil {
			return nil, false
		}
		r.Body = bytes.Clone(body) // data is a pooled buffer
		out = append(out, r)
		if p, ok = cutLiteral(p[n:], `}`); !ok || len(p) == 0 {
			return nil, false
		}
		switch p[0] {
		case ',':
			p = p[1:]
		case ']':
			return out, string(p) == "]}"
		default:
			return nil, false
		}
	}
}

func cutLiteral(p []byte, lit string) ([]byte, bool) {
	return bytes.CutPrefix(p, []byte(lit))
}

// cutSeq reads a JSON number that is a uint64 in decimal without a
// leading zero.
func cutSeq(p []byte) (uint64, []byte, bool) {
	n := 0
	for n < len(p) && p[n] >= '0' && p[n] <= '9' {
		n++
	}
	if n == 0 || n > 1 && p[0] == '0' {
		return 0, p, false
	}
	v, err := strconv.ParseUint(string(p[:n]), 10, 64)
	return v, p[n:], err == nil
}

// cutPlainString reads a JSON string of printable ASCII without escapes
// and returns its content.
func cutPlainString(p []byte) ([]byte, []byte, bool) {
	if len(p) == 0 || p[0] != '"' {
		return nil, p, false
	}
	for i := 1; i < len(p); i++ {
		switch c := p[i]; {
		case c == '"':
			return p[1:i], p[i+1:], true
		case c == '\\' || c < 0x20 || c >= 0x7f:
			return nil, p, false
		}
	}
	return nil, p, false
}

// objectEnd returns the length of the JSON object p starts with, found by
// its brackets outside strings (the object is validated after), or -1.
func objectEnd(p []byte) int {
	if len(p) == 0 || p[0] != '{' {
		return -1
	}
	return strictjson.CompositeEnd(p)
}
