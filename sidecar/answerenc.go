package sidecar

import (
	"strconv"

	"github.com/ciampdp/pdp/internal/jsonenc"
)

// The sidecar's records, encoded by hand (no reflection): an answer
// record is what encoding/json writes for answerRecord, byte for byte
// (TestAnswerEncoderMatchesJSON), so the spool and the central trail hold
// the same bytes as before. A cache hit's record is a few hundred bytes:
// the request, the answer and the id of the central decision it repeats
// (cached_from), which holds the full Cedar input and facts.

// appendAnswerRecord appends the JSON of a; reqJSON is a.Request's (the
// request's cache key: jsonenc.Request's encoding of the pdp.Request
// there, the only type a sidecar puts there).
func appendAnswerRecord(dst []byte, a *answerRecord, reqJSON string) ([]byte, error) {
	var err error
	dst = append(dst, `{"decision_id":`...)
	dst = jsonenc.String(dst, a.DecisionID)
	dst = append(dst, `,"time":`...)
	if dst, err = jsonenc.Time(dst, a.Time); err != nil {
		return dst, err
	}
	dst = append(dst, `,"sidecar":`...)
	dst = jsonenc.String(dst, a.Sidecar)
	dst = append(dst, `,"request":`...)
	dst = append(dst, reqJSON...)
	dst = append(dst, `,"decision":`...)
	dst = strconv.AppendBool(dst, a.Decision)
	dst = append(dst, `,"reasons":`...)
	dst = jsonenc.Strings(dst, a.Reasons)
	if len(a.Policies) > 0 {
		dst = append(dst, `,"policies":`...)
		dst = jsonenc.Strings(dst, a.Policies)
	}
	if len(a.Obligations) > 0 {
		dst = append(dst, `,"obligations":`...)
		dst = jsonenc.Strings(dst, a.Obligations)
	}
	for _, f := range [...]struct{ key, v string }{{`,"cached_from":`, a.CachedFrom}, {`,"policy_version":`, a.PolicyVersion}} {
		if f.v != "" {
			dst = append(dst, f.key...)
			dst = jsonenc.String(dst, f.v)
		}
	}
	dst = append(dst, `,"change_seq":`...)
	dst = strconv.AppendUint(dst, a.ChangeSeq, 10)
	if a.Epoch != "" {
		dst = append(dst, `,"epoch":`...)
		dst = jsonenc.String(dst, a.Epoch)
	}
	if a.Degraded {
		dst = append(dst, `,"degraded":true`...)
	}
	dst = append(dst, `,"source":`...)
	dst = jsonenc.String(dst, a.Source)
	return append(dst, '}'), nil
}

// appendIngestBatch appends the body of a POST /v1/trail/ingest:
// {"records":[{"seq":…,"id":…,"time":…,"body":…},…]}. Each body is
// copied as the spool holds it (canonical JSON, checked by its frame's
// CRC), not compacted again.
func appendIngestBatch(dst []byte, recs []ingestRecord) ([]byte, error) {
	var err error
	dst = append(dst, `{"records":[`...)
	for i := range recs {
		r := &recs[i]
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"seq":`...)
		dst = strconv.AppendUint(dst, r.Seq, 10)
		dst = append(dst, `,"id":`...)
		dst = jsonenc.String(dst, r.ID)
		dst = append(dst, `,"time":`...)
		if dst, err = jsonenc.Time(dst, r.Time); err != nil {
			return dst, err
		}
		dst = append(dst, `,"body":`...)
		if len(r.Body) == 0 {
			dst = append(dst, "null"...)
		} else {
			dst = append(dst, r.Body...)
		}
		dst = append(dst, '}')
	}
	return append(dst, "]}"...), nil
}
