package authzen

import (
	"encoding/json"
	"unicode/utf8"
)

// AppendJSON appends the JSON encoding of r to dst: the same bytes as
// json.Marshal(r) (see TestAppendJSONMatchesMarshal), without reflection,
// because every answer of the PDP goes through it.
func (r DecisionResponse) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"decision":`...)
	if r.Decision {
		dst = append(dst, "true"...)
	} else {
		dst = append(dst, "false"...)
	}
	if c := r.Context; c != nil {
		dst = append(dst, `,"context":{"decision_id":`...)
		dst = appendString(dst, c.DecisionID)
		dst = append(dst, `,"policy_version":`...)
		dst = appendString(dst, c.PolicyVersion)
		dst = append(dst, `,"policies":`...)
		dst = appendStrings(dst, c.Policies)
		dst = append(dst, `,"reasons":`...)
		dst = appendStrings(dst, c.Reasons)
		dst = append(dst, `,"obligations":`...)
		dst = appendStrings(dst, c.Obligations)
		if c.Message != "" {
			dst = append(dst, `,"message":`...)
			dst = appendString(dst, c.Message)
		}
		if len(c.Errors) > 0 {
			dst = append(dst, `,"errors":[`...)
			for i, e := range c.Errors {
				if i > 0 {
					dst = append(dst, ',')
				}
				dst = append(dst, `{"policy":`...)
				dst = appendString(dst, e.PolicyID)
				dst = append(dst, `,"message":`...)
				dst = appendString(dst, e.Message)
				dst = append(dst, '}')
			}
			dst = append(dst, ']')
		}
		if len(c.Delegations) > 0 {
			dst = append(dst, `,"delegations":`...)
			dst = appendStrings(dst, c.Delegations)
		}
		if c.DelegationStatus != "" {
			dst = append(dst, `,"delegation_status":`...)
			dst = appendString(dst, c.DelegationStatus)
		}
		if c.CachedFrom != "" {
			dst = append(dst, `,"cached_from":`...)
			dst = appendString(dst, c.CachedFrom)
		}
		if c.Degraded {
			dst = append(dst, `,"degraded":true`...)
		}
		dst = append(dst, '}')
	}
	return append(dst, '}')
}

// AppendJSON appends the JSON encoding of r to dst, as json.Marshal would.
func (r EvaluationsResponse) AppendJSON(dst []byte) []byte {
	if r.Evaluations == nil {
		return append(dst, `{"evaluations":null}`...)
	}
	dst = append(dst, `{"evaluations":[`...)
	for i, e := range r.Evaluations {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = e.AppendJSON(dst)
	}
	return append(dst, "]}"...)
}

func appendStrings(dst []byte, ss []string) []byte {
	if ss == nil {
		return append(dst, "null"...)
	}
	dst = append(dst, '[')
	for i, s := range ss {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, s)
	}
	return append(dst, ']')
}

// appendString quotes s as encoding/json does; strings that need escaping
// (rare here: ids, hashes, reason codes) go through encoding/json itself.
func appendString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' || c >= utf8.RuneSelf {
			b, _ := json.Marshal(s)
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}
