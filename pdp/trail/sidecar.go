package trail

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// KindSidecar is the Record.Kind of a decision record a sidecar made (from
// its cache) and sent to the PDP, which stores it as it came.
const KindSidecar = "sidecar"

// SidecarBody is the body of a sidecar record: who sent it, its place in
// the sidecar's spool (what makes ingestion exactly once), and the
// sidecar's record itself.
type SidecarBody struct {
	Sidecar     string          `json:"sidecar"`     // the sidecar's id (PDP-Sidecar-Id)
	Application string          `json:"application"` // the authenticated application ("" with authentication off)
	SpoolSeq    uint64          `json:"spool_seq"`   // strictly increasing per sidecar
	Record      json.RawMessage `json:"record"`      // the sidecar's record, a JSON object
}

// SidecarRecord is the trail record of b, with ID id and time t: its
// body is encoded once, by hand, as encoding/json encodes b (the sidecar's
// record validated and compacted, once), and the record is marked compact
// so that Canonical does not compact it again.
func SidecarRecord(id string, t time.Time, b SidecarBody) (Record, error) {
	rec := []byte(b.Record)
	if !compactJSON(rec) {
		var err error
		if rec, err = json.Marshal(b.Record); err != nil { // validates, compacts and escapes what the sidecar sent
			return Record{}, fmt.Errorf("trail: sidecar record %s: %w", id, err)
		}
	}
	body := make([]byte, 0, 64+len(b.Sidecar)+len(b.Application)+len(rec))
	body = append(body, `{"sidecar":`...)
	body = appendJSONString(body, b.Sidecar)
	body = append(body, `,"application":`...)
	body = appendJSONString(body, b.Application)
	body = append(body, `,"spool_seq":`...)
	body = strconv.AppendUint(body, b.SpoolSeq, 10)
	body = append(body, `,"record":`...)
	body = append(body, rec...)
	body = append(body, '}')
	return CompactRecord(KindSidecar, id, t, body), nil
}

// compactJSON reports that data is valid JSON that json.Marshal of a
// json.RawMessage would copy unchanged: no whitespace outside strings, and
// nothing it escapes (<, >, &, U+2028, U+2029). A sidecar's records are
// written so (FuzzCompactJSON holds it to json.Marshal).
func compactJSON(data []byte) bool {
	inString := false
	for i := 0; i < len(data); i++ {
		switch c := data[i]; {
		case c == '<' || c == '>' || c == '&':
			return false
		case c == 0xE2 && i+2 < len(data) && data[i+1] == 0x80 && (data[i+2] == 0xA8 || data[i+2] == 0xA9):
			return false
		case inString:
			switch c {
			case '\\':
				i++
			case '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			return false
		}
	}
	return json.Valid(data)
}
