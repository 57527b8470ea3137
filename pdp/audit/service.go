package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/ciampdp/pdp/pdp/trail"
)

// Service answers the auditor endpoints of a running PDP over its trail
// and archive.
type Service struct {
	Trail   Source
	Archive Bundles
	// Reveal opens redacted values (nil: they stay hidden). A running PDP
	// holds no auditor identity, so it is normally nil.
	Reveal Revealer
	// Index, when set, finds decisions without a scan of the trail (the
	// running PDP's; the command line reads a trail once and scans).
	Index *Index
}

// find returns the record of decision id, through the index when there is
// one.
func (s Service) find(ctx context.Context, id string) (trail.Record, error) {
	if s.Index == nil {
		return Find(ctx, s.Trail, id)
	}
	seq, ok, err := s.Index.Seq(ctx, s.Trail, id)
	if err != nil {
		return trail.Record{}, err
	}
	if !ok {
		return trail.Record{}, fmt.Errorf("%w: %s", ErrNoSuchDecision, id)
	}
	var rec trail.Record
	if err := s.Trail.Scan(seq, seq+1, func(r trail.Record) error { rec = r; return nil }); err != nil {
		return trail.Record{}, err
	}
	if rec.ID != id {
		return Find(ctx, s.Trail, id)
	}
	return rec, nil
}

// Explain finds decision id and explains it. An answer a sidecar gave
// from its cache is explained through the central decision it repeats.
func (s Service) Explain(ctx context.Context, id string) (Explanation, error) {
	rec, err := s.find(ctx, id)
	if err != nil {
		return Explanation{}, err
	}
	if rec.Kind != trail.KindSidecar {
		return Explain(rec, s.Archive, s.Reveal)
	}
	return s.explainSidecar(ctx, rec)
}

// sidecarAnswer is the part of a sidecar's record an explanation reads.
type sidecarAnswer struct {
	DecisionID string    `json:"decision_id"`
	Time       time.Time `json:"time"`
	Decision   bool      `json:"decision"`
	Reasons    []string  `json:"reasons"`
	CachedFrom string    `json:"cached_from"`
	Degraded   bool      `json:"degraded"`
	Source     string    `json:"source"`
	ChangeSeq  uint64    `json:"change_seq"`
}

func (s Service) explainSidecar(ctx context.Context, rec trail.Record) (Explanation, error) {
	var b trail.SidecarBody
	var a sidecarAnswer
	if err := json.Unmarshal(rec.Body, &b); err != nil {
		return Explanation{}, fmt.Errorf("audit: sidecar record %d: %w", rec.Seq, err)
	}
	if err := json.Unmarshal(b.Record, &a); err != nil {
		return Explanation{}, fmt.Errorf("audit: sidecar record %d: %w", rec.Seq, err)
	}
	verdict := "DENIED"
	if a.Decision {
		verdict = "ALLOWED"
	}
	head := []string{fmt.Sprintf("Decision %s (trail record %d): %s by sidecar %s of application %s at %s (%s, change %d).",
		a.DecisionID, rec.Seq, verdict, b.Sidecar, orDash(b.Application), a.Time.UTC().Format("2006-01-02 15:04:05.000 MST"), a.Source, a.ChangeSeq)}
	if a.Degraded {
		head = append(head, "Degraded answer: the central PDP was unreachable; the sidecar repeated an earlier answer for an action configured for it.")
	}
	if a.CachedFrom == "" {
		head = append(head, "Reason codes: "+strings.Join(a.Reasons, ", ")+".")
		return Explanation{Seq: rec.Seq, Words: head, Record: rec, Policies: []PolicyRef{}}, nil
	}
	head = append(head, "It repeats central decision "+a.CachedFrom+":")
	orig, err := s.find(ctx, a.CachedFrom)
	if err != nil {
		return Explanation{Seq: rec.Seq, Words: append(head, "(not in this trail: "+err.Error()+")"), Record: rec, Policies: []PolicyRef{}}, nil
	}
	ex, err := Explain(orig, s.Archive, s.Reveal)
	if err != nil {
		return Explanation{}, err
	}
	ex.Words = append(head, ex.Words...)
	return ex, nil
}

// Query lists the decisions matching f.
func (s Service) Query(ctx context.Context, f Filter, limit int) (QueryResult, error) {
	if s.Index != nil {
		return s.Index.Query(ctx, s.Trail, f, limit)
	}
	return Query(ctx, s.Trail, f, limit)
}
