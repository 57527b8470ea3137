package audit

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/ciampdp/pdp/pdp/recorder"
	"github.com/ciampdp/pdp/pdp/trail"
)

// sidecarListed is the part of a sidecar's answer record a listing reads.
type sidecarListed struct {
	DecisionID    string          `json:"decision_id"`
	Time          time.Time       `json:"time"`
	Request       json.RawMessage `json:"request"`
	Decision      bool            `json:"decision"`
	Reasons       []string        `json:"reasons"`
	Policies      []string        `json:"policies"`
	PolicyVersion string          `json:"policy_version"`
}

// sidecarEntry summarises an answer a sidecar gave itself (a trail record
// of kind trail.KindSidecar) as a listed decision.
func sidecarEntry(rec trail.Record) (Entry, error) {
	var b trail.SidecarBody
	var a sidecarListed
	if err := json.Unmarshal(rec.Body, &b); err != nil {
		return Entry{}, fmt.Errorf("audit: sidecar record %d: %w", rec.Seq, err)
	}
	if err := json.Unmarshal(b.Record, &a); err != nil {
		return Entry{}, fmt.Errorf("audit: sidecar record %d: %w", rec.Seq, err)
	}
	e := Entry{Seq: rec.Seq, DecisionID: a.DecisionID, Time: a.Time, Application: b.Application, Allowed: a.Decision,
		Reasons: a.Reasons, Policies: a.Policies, PolicyVersion: a.PolicyVersion, Sidecar: b.Sidecar}
	if e.Reasons == nil {
		e.Reasons = []string{}
	}
	if len(a.Request) > 0 {
		r, err := decodeRequest(a.Request)
		if err != nil {
			return Entry{}, fmt.Errorf("audit: sidecar record %d: request: %w", rec.Seq, err)
		}
		e.Subject, e.Action, e.Resource = r.Subject.Type+":"+r.Subject.ID, r.Action.Name, r.Resource.Type+":"+r.Resource.ID
		e.OnBehalfOf = onBehalfOf(r)
	}
	return e, nil
}

// listedEntry is the listing of a decision record or a sidecar's answer;
// ok is false for other records and tombstones.
func listedEntry(rec trail.Record) (Entry, bool, error) {
	if rec.Pruned {
		return Entry{}, false, nil
	}
	switch rec.Kind {
	case recorder.KindDecision:
		db, err := DecodeDecision(rec.Body)
		if err != nil {
			return Entry{}, false, fmt.Errorf("audit: record %d: %w", rec.Seq, err)
		}
		return entryOf(rec.Seq, db), true, nil
	case trail.KindSidecar:
		e, err := sidecarEntry(rec)
		return e, err == nil, err
	}
	return Entry{}, false, nil
}
