package audit

import (
	"context"
	"testing"

	"github.com/ciampdp/pdp/pdp/recorder"
	"github.com/ciampdp/pdp/pdp/trail"
)

// benchDecisions is the trail size the console must answer on in < 200 ms.
const benchDecisions = 100_000

// BenchmarkAuditLookups compares the auditor's lookups on a trail of
// 100,000 Northbank decisions through the index and by a scan: a page of
// the decisions list (all, and one subject's denials), and explaining one
// decision by id (with its replay). index-build is the index's start.
//
//	go test ./pdp/audit -run '^$' -bench BenchmarkAuditLookups -benchtime 20x
func BenchmarkAuditLookups(b *testing.B) {
	ctx := context.Background()
	rc := record(b)
	per := 0
	_ = rc.log.Scan(0, rc.log.Size(), func(r trail.Record) error {
		if r.Kind == recorder.KindDecision {
			per++
		}
		return nil
	})
	l := trailOf(b, rc.log, (benchDecisions+per-1)/per)
	var mid trail.Record
	_ = l.Scan(l.Size()/2, l.Size(), func(r trail.Record) error {
		if mid.ID == "" && r.Kind == recorder.KindDecision {
			mid = r
		}
		return nil
	})
	all, err := Query(ctx, l, Filter{}, 1)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("trail: %d records, %d decisions", l.Size(), all.Matched)
	e, ok, err := read(l, mid.Seq)
	if err != nil || !ok {
		b.Fatal(err)
	}
	oneSubject := Filter{Subject: e.Subject, Result: "deny"}
	indexed := Service{Trail: l, Archive: rc.archive, Index: NewIndex()}
	if err := indexed.Index.Sync(ctx, l); err != nil {
		b.Fatal(err)
	}
	scan := Service{Trail: l, Archive: rc.archive}
	for _, bc := range []struct {
		name string
		run  func() error
	}{
		{"index-build", func() error { return NewIndex().Sync(ctx, l) }},
		{"index/page-all", func() error { _, err := indexed.QueryPage(ctx, Filter{}, 0, 50); return err }},
		{"index/page-subject-denied", func() error { _, err := indexed.QueryPage(ctx, oneSubject, 0, 50); return err }},
		{"index/explain", func() error { _, err := indexed.Explain(ctx, mid.ID); return err }},
		{"scan/page-all", func() error { _, err := scan.QueryPage(ctx, Filter{}, 0, 50); return err }},
		{"scan/page-subject-denied", func() error { _, err := scan.QueryPage(ctx, oneSubject, 0, 50); return err }},
		{"scan/explain", func() error { _, err := scan.Explain(ctx, mid.ID); return err }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := bc.run(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
