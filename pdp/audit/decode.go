package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/cedar-policy/cedar-go/types"
	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/dormancy"
	"github.com/ciampdp/pdp/pdp/policy"
	"github.com/ciampdp/pdp/pdp/recorder"
)

// replayDecoder decodes decision records for replay, faster than
// DecodeDecision: it skips what replay does not read (the facts' caveat
// context, the engine message) and keeps the Cedar entities and entity
// references it decoded, keyed by their JSON text, because a trail names
// the same customers, accounts and actions over and over. One decoder per
// goroutine; it is not safe for concurrent use.
type replayDecoder struct {
	uids   map[string]types.EntityUID
	ents   map[string]types.Entity
	values map[string]types.Value // context attributes (rel, delegation, consent records…)
}

// maxCached bounds each cache; a full cache starts again empty.
const maxCached = 1 << 16

func newReplayDecoder() *replayDecoder {
	return &replayDecoder{uids: map[string]types.EntityUID{}, ents: map[string]types.Entity{}, values: map[string]types.Value{}}
}

// replayRecord is the part of a decision record replay reads.
type replayRecord struct {
	Decision struct {
		ID            string               `json:"decision_id"`
		Time          time.Time            `json:"time"`
		Allowed       bool                 `json:"decision"`
		Application   string               `json:"application"`
		Policies      []string             `json:"policies"`
		Reasons       []string             `json:"reasons"`
		Obligations   []string             `json:"obligations"`
		Errors        []pdp.EvalError      `json:"errors"`
		PolicyVersion policy.Version       `json:"policy_version"`
		Facts         []replayFact         `json:"facts"`
		FactsRevision string               `json:"facts_revision"`
		Delegation    *pdp.DelegationProof `json:"delegation"`
		Consent       *pdp.ConsentFact     `json:"consent"`
		Dormancy      []dormancy.Finding   `json:"dormancy"`
		Signals       []pdp.SignalFact     `json:"signals"`
		Input         struct {
			Principal jsontext.Value   `json:"principal"`
			Action    jsontext.Value   `json:"action"`
			Resource  jsontext.Value   `json:"resource"`
			Context   jsontext.Value   `json:"context"`
			Entities  []jsontext.Value `json:"entities"`
		} `json:"input"`
	} `json:"decision"`
	Request jsontext.Value `json:"request"`
}

type replayFact struct {
	Has         bool `json:"has"`
	Conditional bool `json:"conditional"`
}

// decode returns the recorded request and decision of a decision record.
func (rd *replayDecoder) decode(body []byte) (recorder.DecisionBody, error) {
	var rr replayRecord
	// JSON v2 (cedar-go's own decoder) reads a record in one pass, where
	// encoding/json validates it first and then decodes it.
	if err := jsonv2.Unmarshal(body, &rr); err != nil {
		return recorder.DecisionBody{}, fmt.Errorf("audit: decision record: %w", err)
	}
	src := &rr.Decision
	d := pdp.Decision{
		ID: src.ID, Time: src.Time, Allowed: src.Allowed, Application: src.Application,
		Policies: src.Policies, Reasons: src.Reasons, Obligations: src.Obligations, Errors: src.Errors,
		PolicyVersion: src.PolicyVersion, FactsRevision: src.FactsRevision, Delegation: src.Delegation, Consent: src.Consent, Dormancy: src.Dormancy,
		Signals: src.Signals,
	}
	if len(src.Facts) > 0 {
		d.Facts = make([]pdp.Fact, len(src.Facts))
		for i, f := range src.Facts {
			d.Facts[i].Has, d.Facts[i].Conditional = f.Has, f.Conditional
		}
	}
	var err error
	in := &d.Input
	for _, u := range []struct {
		raw jsontext.Value
		dst *types.EntityUID
	}{{src.Input.Principal, &in.Principal}, {src.Input.Action, &in.Action}, {src.Input.Resource, &in.Resource}} {
		if *u.dst, err = rd.uid(u.raw); err != nil {
			return recorder.DecisionBody{}, fmt.Errorf("audit: decision record: input: %w", err)
		}
	}
	if len(src.Input.Context) > 0 && !bytes.Equal(src.Input.Context, []byte("{}")) {
		if in.Context, err = rd.context(src.Input.Context); err != nil {
			return recorder.DecisionBody{}, fmt.Errorf("audit: decision record: input context: %w", err)
		}
	}
	if len(src.Input.Entities) > 0 {
		in.Entities = make([]types.Entity, len(src.Input.Entities))
		for i, raw := range src.Input.Entities {
			if in.Entities[i], err = rd.entity(raw); err != nil {
				return recorder.DecisionBody{}, fmt.Errorf("audit: decision record: input entity %d: %w", i, err)
			}
		}
	}
	db := recorder.DecisionBody{Decision: d}
	if db.Request, err = decodeRequest(rr.Request); err != nil {
		return db, fmt.Errorf("audit: decision record: request: %w", err)
	}
	return db, nil
}

func (rd *replayDecoder) uid(raw jsontext.Value) (types.EntityUID, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return types.EntityUID{}, nil
	}
	if u, ok := rd.uids[string(raw)]; ok {
		return u, nil
	}
	var in pdp.Input // its decoder accepts the zero reference
	if err := json.Unmarshal([]byte(`{"principal":`+string(raw)+`}`), &in); err != nil {
		return types.EntityUID{}, err
	}
	if len(rd.uids) >= maxCached {
		clear(rd.uids)
	}
	rd.uids[string(raw)] = in.Principal
	return in.Principal, nil
}

func (rd *replayDecoder) entity(raw jsontext.Value) (types.Entity, error) {
	if e, ok := rd.ents[string(raw)]; ok {
		return e, nil
	}
	var e types.Entity
	if err := json.Unmarshal(raw, &e); err != nil {
		return e, err
	}
	if len(rd.ents) >= maxCached {
		clear(rd.ents)
	}
	rd.ents[string(raw)] = e
	return e, nil
}

// context decodes the Cedar context record attribute by attribute, each
// attribute's value cached by its JSON text: the relationship, delegation
// and consent records of a trail repeat, only a few values (now, amounts)
// vary.
func (rd *replayDecoder) context(raw jsontext.Value) (types.Record, error) {
	var fields map[string]jsontext.Value
	if err := jsonv2.Unmarshal(raw, &fields); err != nil {
		return types.Record{}, err
	}
	m := make(types.RecordMap, len(fields))
	for k, v := range fields {
		val, ok := rd.values[string(v)]
		if !ok {
			var one types.Record
			if err := json.Unmarshal([]byte(`{"v":`+string(v)+`}`), &one); err != nil {
				return types.Record{}, fmt.Errorf("%s: %w", k, err)
			}
			val, _ = one.Get("v")
			if len(rd.values) >= maxCached {
				clear(rd.values)
			}
			rd.values[string(v)] = val
		}
		m[types.String(k)] = val
	}
	return types.NewRecord(m), nil
}
