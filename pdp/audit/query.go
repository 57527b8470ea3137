package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/recorder"
	"github.com/ciampdp/pdp/pdp/trail"
)

// Filter selects decision records. Empty fields match everything; entity
// references are "type:id" as in the AuthZEN request ("user:alice").
type Filter struct {
	Subject     string `json:"subject,omitempty"`
	OnBehalfOf  string `json:"on_behalf_of,omitempty"`
	Resource    string `json:"resource,omitempty"`
	Action      string `json:"action,omitempty"`
	Application string `json:"application,omitempty"`
	Result      string `json:"result,omitempty"` // "allow" or "deny"
	Reason      string `json:"reason,omitempty"`
	// Delegation and ConsentGrant select the decisions that relied on a
	// delegation record (in their chain) or a consent grant.
	Delegation   string    `json:"delegation,omitempty"`
	ConsentGrant string    `json:"consent_grant,omitempty"`
	Since        time.Time `json:"since,omitzero"` // inclusive
	Until        time.Time `json:"until,omitzero"` // exclusive
}

// ErrBadFilter is returned by Filter.Validate.
var ErrBadFilter = errors.New("audit: bad filter")

// Validate reports a filter that cannot match as meant.
func (f Filter) Validate() error {
	for name, ref := range map[string]string{"subject": f.Subject, "on_behalf_of": f.OnBehalfOf, "resource": f.Resource} {
		if ref != "" {
			if t, id, ok := strings.Cut(ref, ":"); !ok || t == "" || id == "" {
				return fmt.Errorf("%w: %s %q must be type:id, e.g. user:alice", ErrBadFilter, name, ref)
			}
		}
	}
	if f.Result != "" && f.Result != "allow" && f.Result != "deny" {
		return fmt.Errorf("%w: result %q must be allow or deny", ErrBadFilter, f.Result)
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		return fmt.Errorf("%w: since %s is not before until %s", ErrBadFilter, f.Since.Format(time.RFC3339), f.Until.Format(time.RFC3339))
	}
	return nil
}

// Entry is one matching decision, summarised.
type Entry struct {
	Seq           uint64    `json:"seq"`
	DecisionID    string    `json:"decision_id"`
	Time          time.Time `json:"time"`
	Application   string    `json:"application,omitempty"`
	Subject       string    `json:"subject"`
	OnBehalfOf    string    `json:"on_behalf_of,omitempty"`
	Action        string    `json:"action"`
	Resource      string    `json:"resource"`
	Allowed       bool      `json:"decision"`
	Reasons       []string  `json:"reasons"`
	Policies      []string  `json:"policies"`
	PolicyVersion string    `json:"policy_version"`
	Purpose       string    `json:"purpose,omitempty"`
	Delegations   []string  `json:"delegations,omitempty"`
	ConsentGrant  string    `json:"consent_grant,omitempty"`
	// Sidecar names the sidecar that gave this answer itself (from its
	// cache, degraded, or failing closed); empty for the PDP's decisions.
	Sidecar string `json:"sidecar,omitempty"`
}

// QueryResult is what Query found.
type QueryResult struct {
	Filter    Filter  `json:"filter"`
	Scanned   uint64  `json:"scanned"`
	Matched   uint64  `json:"matched"`
	Entries   []Entry `json:"entries"`
	Truncated bool    `json:"truncated,omitempty"`
}

// Query scans the trail for decisions matching f, listing at most limit
// (0: 1,000) of them; Matched counts all. The trail is scanned in order:
// an index is for later, when trails outgrow a scan (see the package
// notes in BENCHMARKS.md for the scan rate).
func Query(ctx context.Context, src Source, f Filter, limit int) (QueryResult, error) {
	if err := f.Validate(); err != nil {
		return QueryResult{}, err
	}
	if limit <= 0 {
		limit = 1000
	}
	res := QueryResult{Filter: f, Entries: []Entry{}}
	// Cheap pre-checks on the raw body spare decoding most records.
	var needles [][]byte
	for _, s := range []string{f.Subject, f.OnBehalfOf, f.Resource} {
		if _, id, ok := strings.Cut(s, ":"); ok {
			needles = append(needles, []byte(`"`+id+`"`))
		}
	}
	for _, s := range []string{f.Action, f.Application, f.Reason, f.Delegation, f.ConsentGrant} {
		if s != "" {
			needles = append(needles, []byte(`"`+s+`"`))
		}
	}
	err := src.Scan(0, src.Size(), func(rec trail.Record) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		res.Scanned++
		if rec.Kind != recorder.KindDecision && rec.Kind != trail.KindSidecar || rec.Pruned {
			return nil
		}
		if !f.Since.IsZero() && rec.Time.Before(f.Since) || !f.Until.IsZero() && !rec.Time.Before(f.Until) {
			return nil
		}
		for _, n := range needles {
			if !bytes.Contains(rec.Body, n) {
				return nil
			}
		}
		e, _, err := listedEntry(rec)
		if err != nil {
			return err
		}
		if !f.matches(e) {
			return nil
		}
		res.Matched++
		if len(res.Entries) < limit {
			res.Entries = append(res.Entries, e)
		} else {
			res.Truncated = true
		}
		return nil
	})
	return res, err
}

func (f Filter) matches(e Entry) bool {
	switch {
	case f.Subject != "" && e.Subject != f.Subject,
		f.OnBehalfOf != "" && e.OnBehalfOf != f.OnBehalfOf,
		f.Resource != "" && e.Resource != f.Resource,
		f.Action != "" && e.Action != f.Action,
		f.Application != "" && e.Application != f.Application,
		f.Result == "allow" && !e.Allowed,
		f.Result == "deny" && e.Allowed,
		f.Reason != "" && !slices.Contains(e.Reasons, f.Reason),
		f.Delegation != "" && !slices.Contains(e.Delegations, f.Delegation),
		f.ConsentGrant != "" && e.ConsentGrant != f.ConsentGrant:
		return false
	}
	return true
}

func entryOf(seq uint64, db recorder.DecisionBody) Entry {
	d, r := db.Decision, db.Request
	e := Entry{
		Seq: seq, DecisionID: d.ID, Time: d.Time, Application: d.Application,
		Subject: r.Subject.Type + ":" + r.Subject.ID, Action: r.Action.Name, Resource: r.Resource.Type + ":" + r.Resource.ID,
		Allowed: d.Allowed, Reasons: d.Reasons, Policies: d.Policies, PolicyVersion: d.PolicyVersion.Hash,
	}
	if p := d.Delegation; p != nil {
		e.OnBehalfOf = p.OnBehalfOf.String()
		e.Delegations = p.Chain
	} else if obo := onBehalfOf(r); obo != "" {
		e.OnBehalfOf = obo
	}
	if c := d.Consent; c != nil {
		e.Purpose, e.ConsentGrant = c.Purpose, c.GrantID
	}
	return e
}

// onBehalfOf reads context.on_behalf_of of a request the engine did not
// resolve (denied before), for filtering.
func onBehalfOf(r pdp.Request) string {
	m, ok := r.Context[pdp.ContextOnBehalfOf].(map[string]any)
	if !ok {
		return ""
	}
	t, _ := m["type"].(string)
	id, _ := m["id"].(string)
	if t == "" || id == "" {
		return ""
	}
	return t + ":" + id
}

// errFound stops a scan at the record looked for.
var errFound = errors.New("found")

// ErrNoSuchDecision is returned by Find for an id the trail does not hold.
var ErrNoSuchDecision = errors.New("audit: no such decision in the trail")

// Find returns the record of decision id (a scan; ids are UUIDv7, so the
// newest are at the end).
func Find(ctx context.Context, src Source, id string) (trail.Record, error) {
	var found trail.Record
	err := src.Scan(0, src.Size(), func(rec trail.Record) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if rec.ID == id {
			found = rec
			return errFound
		}
		return nil
	})
	switch {
	case errors.Is(err, errFound):
		return found, nil
	case err != nil:
		return found, err
	}
	return found, fmt.Errorf("%w: %s", ErrNoSuchDecision, id)
}
