package recorder

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/ciampdp/pdp/internal/jsonenc"
	"github.com/ciampdp/pdp/pdp"
)

// The decision record's encoder, written by hand for the hot path: no
// reflection, one pass into a pooled buffer, and output that is byte for
// byte what encoding/json's Marshal writes for the same DecisionBody
// (compact, HTML-escaped strings, sorted map keys). The trail's record
// format is therefore unchanged (format 1, canonical JSON): every record
// ever written keeps its bytes and its Merkle leaf hash, and every reader
// (verify, replay, explain, audit query, redaction, retention) reads old
// and new records alike. TestEncoderCoversEveryField fails when a field
// is added to the record's types and not here; TestEncoderMatchesJSON
// compares the two encoders on a corpus of records.

// errReservedKey is Cedar's rule: a record may not have the keys
// "__entity" or "__extn" (they would read back as an escaped value).
var errReservedKey = errors.New("record has a reserved key")

// bufPool holds encoding buffers; a record body is copied out of one (the
// trail keeps the body), so a buffer is reused at once.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// maxPooled is the largest buffer put back into the pool: a rare huge
// record should not pin its buffer.
const maxPooled = 64 << 10

// encodeDecisionBody returns the canonical JSON of b in a new slice sized
// to fit.
func encodeDecisionBody(b *DecisionBody) ([]byte, error) {
	p := bufPool.Get().(*[]byte)
	buf, err := appendDecisionBody((*p)[:0], b)
	var out []byte
	if err == nil {
		out = make([]byte, len(buf))
		copy(out, buf)
	}
	if cap(buf) <= maxPooled {
		*p = buf[:0]
		bufPool.Put(p)
	}
	return out, err
}

// appendDecisionBody appends the canonical JSON of b to dst.
func appendDecisionBody(dst []byte, b *DecisionBody) ([]byte, error) {
	var err error
	dst = append(dst, `{"decision":`...)
	if dst, err = appendDecision(dst, &b.Decision); err != nil {
		return dst, err
	}
	dst = append(dst, `,"request":`...)
	if dst, err = jsonenc.Request(dst, &b.Request); err != nil {
		return dst, err
	}
	dst = append(dst, `,"instance":`...)
	dst = jsonenc.String(dst, b.Instance)
	dst = append(dst, `,"build":`...)
	dst = jsonenc.String(dst, b.Build)
	return append(dst, '}'), nil
}

func appendDecision(dst []byte, d *pdp.Decision) ([]byte, error) {
	var err error
	dst = append(dst, `{"decision_id":`...)
	dst = jsonenc.String(dst, d.ID)
	dst = append(dst, `,"time":`...)
	if dst, err = jsonenc.Time(dst, d.Time); err != nil {
		return dst, err
	}
	dst = append(dst, `,"decision":`...)
	dst = strconv.AppendBool(dst, d.Allowed)
	if d.Application != "" {
		dst = append(dst, `,"application":`...)
		dst = jsonenc.String(dst, d.Application)
	}
	dst = append(dst, `,"policies":`...)
	dst = jsonenc.Strings(dst, d.Policies)
	dst = append(dst, `,"reasons":`...)
	dst = jsonenc.Strings(dst, d.Reasons)
	dst = append(dst, `,"obligations":`...)
	dst = jsonenc.Strings(dst, d.Obligations)
	if len(d.Errors) > 0 {
		dst = append(dst, `,"errors":[`...)
		for i, e := range d.Errors {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"policy":`...)
			dst = jsonenc.String(dst, e.PolicyID)
			dst = append(dst, `,"message":`...)
			dst = jsonenc.String(dst, e.Message)
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
	}
	dst = append(dst, `,"policy_version":{"hash":`...)
	dst = jsonenc.String(dst, d.PolicyVersion.Hash)
	if d.PolicyVersion.Commit != "" {
		dst = append(dst, `,"commit":`...)
		dst = jsonenc.String(dst, d.PolicyVersion.Commit)
	}
	dst = append(dst, '}')
	if len(d.Facts) > 0 {
		dst = append(dst, `,"facts":[`...)
		for i := range d.Facts {
			if i > 0 {
				dst = append(dst, ',')
			}
			if dst, err = appendFact(dst, &d.Facts[i]); err != nil {
				return dst, err
			}
		}
		dst = append(dst, ']')
	}
	if d.FactsRevision != "" {
		dst = append(dst, `,"facts_revision":`...)
		dst = jsonenc.String(dst, d.FactsRevision)
	}
	if d.Delegation != nil {
		dst = append(dst, `,"delegation":`...)
		if dst, err = appendDelegation(dst, d.Delegation); err != nil {
			return dst, err
		}
	}
	if d.Consent != nil {
		dst = append(dst, `,"consent":`...)
		dst = appendConsent(dst, d.Consent)
	}
	// Dormancy findings and risk signals are in few decisions: encoded by
	// encoding/json (the same bytes), not by hand.
	if len(d.Dormancy) > 0 {
		dst = append(dst, `,"dormancy":`...)
		if dst, err = appendJSON(dst, d.Dormancy); err != nil {
			return dst, err
		}
	}
	if len(d.Signals) > 0 {
		dst = append(dst, `,"signals":`...)
		if dst, err = appendJSON(dst, d.Signals); err != nil {
			return dst, err
		}
	}
	dst = append(dst, `,"input":`...)
	if dst, err = appendInput(dst, &d.Input); err != nil {
		return dst, err
	}
	dst = append(dst, `,"duration_ns":`...)
	dst = strconv.AppendInt(dst, int64(d.Duration), 10)
	if d.Message != "" {
		dst = append(dst, `,"message":`...)
		dst = jsonenc.String(dst, d.Message)
	}
	return append(dst, '}'), nil
}

func appendFact(dst []byte, f *pdp.Fact) ([]byte, error) {
	var err error
	dst = append(dst, `{"resource_type":`...)
	dst = jsonenc.String(dst, f.ResourceType)
	dst = append(dst, `,"resource_id":`...)
	dst = jsonenc.String(dst, f.ResourceID)
	dst = append(dst, `,"permission":`...)
	dst = jsonenc.String(dst, f.Permission)
	dst = append(dst, `,"subject_type":`...)
	dst = jsonenc.String(dst, f.SubjectType)
	dst = append(dst, `,"subject_id":`...)
	dst = jsonenc.String(dst, f.SubjectID)
	if len(f.Context) > 0 {
		dst = append(dst, `,"context":`...)
		if dst, err = jsonenc.AnyMap(dst, f.Context); err != nil {
			return dst, err
		}
	}
	dst = append(dst, `,"has":`...)
	dst = strconv.AppendBool(dst, f.Has)
	if f.Conditional {
		dst = append(dst, `,"conditional":true`...)
	}
	if len(f.MissingContext) > 0 {
		dst = append(dst, `,"missing_context":`...)
		dst = jsonenc.Strings(dst, f.MissingContext)
	}
	return append(dst, '}'), nil
}

func appendObjectRef(dst []byte, o pdp.ObjectRef) []byte {
	dst = append(dst, `{"type":`...)
	dst = jsonenc.String(dst, o.Type)
	dst = append(dst, `,"id":`...)
	dst = jsonenc.String(dst, o.ID)
	return append(dst, '}')
}

func appendDelegation(dst []byte, p *pdp.DelegationProof) ([]byte, error) {
	dst = append(dst, `{"on_behalf_of":`...)
	dst = appendObjectRef(dst, p.OnBehalfOf)
	dst = append(dst, `,"status":`...)
	dst = jsonenc.String(dst, p.Status)
	if len(p.Chain) > 0 {
		dst = append(dst, `,"chain":`...)
		dst = jsonenc.Strings(dst, p.Chain)
	}
	if len(p.Considered) > 0 {
		dst = append(dst, `,"considered":`...)
		dst = jsonenc.Strings(dst, p.Considered)
	}
	if p.Basis != "" {
		dst = append(dst, `,"basis":`...)
		dst = jsonenc.String(dst, p.Basis)
	}
	if !p.Since.IsZero() {
		dst = append(dst, `,"since":`...)
		var err error
		if dst, err = jsonenc.Time(dst, p.Since); err != nil {
			return dst, err
		}
	}
	return append(dst, '}'), nil
}

// appendJSON appends v as encoding/json writes it.
func appendJSON(dst []byte, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return dst, err
	}
	return append(dst, b...), nil
}

func appendConsent(dst []byte, c *pdp.ConsentFact) []byte {
	dst = append(dst, `{"subject":`...)
	dst = appendObjectRef(dst, c.Subject)
	dst = append(dst, `,"purpose":`...)
	dst = jsonenc.String(dst, c.Purpose)
	dst = append(dst, `,"allowed":`...)
	dst = strconv.AppendBool(dst, c.Allowed)
	dst = append(dst, `,"status":`...)
	dst = jsonenc.String(dst, c.Status)
	for _, f := range [...]struct{ key, v string }{{`,"reason":`, c.Reason}, {`,"basis":`, c.Basis}, {`,"grant_id":`, c.GrantID}} {
		if f.v != "" {
			dst = append(dst, f.key...)
			dst = jsonenc.String(dst, f.v)
		}
	}
	dst = append(dst, `,"position":`...)
	dst = strconv.AppendInt(dst, c.Position, 10)
	if c.Detail != "" {
		dst = append(dst, `,"detail":`...)
		dst = jsonenc.String(dst, c.Detail)
	}
	return append(dst, '}')
}

// appendInput writes the Cedar input in Cedar's JSON formats, as the
// types' own MarshalJSON methods do.
func appendInput(dst []byte, in *pdp.Input) ([]byte, error) {
	var err error
	dst = append(dst, `{"principal":`...)
	dst = appendExplicitUID(dst, in.Principal)
	dst = append(dst, `,"action":`...)
	dst = appendExplicitUID(dst, in.Action)
	dst = append(dst, `,"resource":`...)
	dst = appendExplicitUID(dst, in.Resource)
	dst = append(dst, `,"context":`...)
	if dst, err = appendCedarRecord(dst, in.Context); err != nil {
		return dst, err
	}
	dst = append(dst, `,"entities":`...)
	if in.Entities == nil {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, '[')
		for i := range in.Entities {
			if i > 0 {
				dst = append(dst, ',')
			}
			if dst, err = appendCedarEntity(dst, &in.Entities[i]); err != nil {
				return dst, err
			}
		}
		dst = append(dst, ']')
	}
	return append(dst, '}'), nil
}

// appendExplicitUID writes {"__entity":{"type":…,"id":…}}.
func appendExplicitUID(dst []byte, u types.EntityUID) []byte {
	dst = append(dst, `{"__entity":`...)
	return append(appendImplicitUID(dst, u), '}')
}

// appendImplicitUID writes {"type":…,"id":…}.
func appendImplicitUID(dst []byte, u types.EntityUID) []byte {
	dst = append(dst, `{"type":`...)
	dst = jsonenc.String(dst, string(u.Type))
	dst = append(dst, `,"id":`...)
	dst = jsonenc.String(dst, string(u.ID))
	return append(dst, '}')
}

func appendCedarEntity(dst []byte, e *types.Entity) ([]byte, error) {
	var err error
	dst = append(dst, `{"uid":`...)
	dst = appendImplicitUID(dst, e.UID)
	dst = append(dst, `,"parents":[`...)
	if n := e.Parents.Len(); n > 0 {
		parents := make([]types.EntityUID, 0, n)
		for p := range e.Parents.All() {
			parents = append(parents, p)
		}
		slices.SortFunc(parents, func(a, b types.EntityUID) int {
			if c := strings.Compare(string(a.Type), string(b.Type)); c != 0 {
				return c
			}
			return strings.Compare(string(a.ID), string(b.ID))
		})
		for i, p := range parents {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendImplicitUID(dst, p)
		}
	}
	dst = append(dst, `],"attrs":`...)
	if dst, err = appendCedarRecord(dst, e.Attributes); err != nil {
		return dst, err
	}
	dst = append(dst, `,"tags":`...)
	if dst, err = appendCedarRecord(dst, e.Tags); err != nil {
		return dst, err
	}
	return append(dst, '}'), nil
}

// appendCedarRecord writes a record's attributes in bytewise order of
// their names, every value in Cedar's explicit JSON form.
func appendCedarRecord(dst []byte, r types.Record) ([]byte, error) {
	n := r.Len()
	if n == 0 {
		return append(dst, "{}"...), nil
	}
	var small [16]types.String
	keys := small[:0]
	for k := range r.Keys() {
		if k == "__entity" || k == "__extn" {
			return dst, fmt.Errorf("%w %q", errReservedKey, string(k))
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	dst = append(dst, '{')
	var err error
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = jsonenc.String(dst, string(k))
		dst = append(dst, ':')
		v, _ := r.Get(k)
		if dst, err = appendCedarValue(dst, v); err != nil {
			return dst, err
		}
	}
	return append(dst, '}'), nil
}

func appendCedarValue(dst []byte, v types.Value) ([]byte, error) {
	switch v := v.(type) {
	case types.String:
		return jsonenc.String(dst, string(v)), nil
	case types.Long:
		return strconv.AppendInt(dst, int64(v), 10), nil
	case types.Boolean:
		return strconv.AppendBool(dst, bool(v)), nil
	case types.EntityUID:
		return appendExplicitUID(dst, v), nil
	case types.Record:
		return appendCedarRecord(dst, v)
	case types.Datetime:
		return appendExtension(dst, "datetime", v.String()), nil
	case types.Decimal:
		return appendExtension(dst, "decimal", v.String()), nil
	case types.Duration:
		return appendExtension(dst, "duration", v.String()), nil
	case types.IPAddr:
		return appendExtension(dst, "ip", v.String()), nil
	case types.Set:
		// Ordered by Cedar's internal hashes, which only its encoder knows.
		b, err := v.MarshalJSON()
		if err != nil {
			return dst, err
		}
		return appendCompactEscaped(dst, b), nil
	default:
		// A value type this encoder does not know: encoding/json writes it.
		b, err := json.Marshal(v)
		if err != nil {
			return dst, err
		}
		return append(dst, b...), nil
	}
}

// appendExtension writes {"__extn":{"fn":…,"arg":…}}.
func appendExtension(dst []byte, fn, arg string) []byte {
	dst = append(dst, `{"__extn":{"fn":`...)
	dst = jsonenc.String(dst, fn)
	dst = append(dst, `,"arg":`...)
	dst = jsonenc.String(dst, arg)
	return append(dst, "}}"...)
}

// appendCompactEscaped appends compact JSON b as encoding/json embeds a
// Marshaler's output: with < > & and U+2028, U+2029 escaped.
func appendCompactEscaped(dst, b []byte) []byte {
	if !bytes.ContainsAny(b, "<>&\u2028\u2029") {
		return append(dst, b...)
	}
	var buf bytes.Buffer
	json.HTMLEscape(&buf, b)
	return append(dst, buf.Bytes()...)
}
