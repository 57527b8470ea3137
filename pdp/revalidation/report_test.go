package revalidation

import (
	"bytes"
	"context"
	"fmt"
	"github.com/ciampdp/pdp/pdp/dormancy"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp/consent"
)

const reportRules = `
identities:
  - {id: short, after: 365d, step_up: [view], revalidate: [pay]}
  - {id: long, after: 730d, revalidate: ["*"]}
delegations:
  - {id: poa, basis: power_of_attorney, unused_after: 730d}
`

// TestReport lists exactly the identities dormant past each rule (not the
// revalidated, not the roles' activity, not other types), the delegations
// in force unused past their rule, and the revalidations of the period.
func TestReport(t *testing.T) {
	svc, _ := fileSetup(t, nil)
	ctx := context.Background()
	ledger := svc.c.Activity.(LedgerActivity).Ledger
	if err := ledger.ImportActivity(ctx, map[string]time.Time{
		"user:heidi":             time.Date(2023, 1, 10, 9, 0, 0, 0, time.UTC),
		"user:alice":             testNow.AddDate(0, -14, 0),
		"user:fresh":             testNow.Add(-time.Hour),
		"user:zed":               time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC),
		"user#subject:heidi":     time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC),
		"application:old":        time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC),
		"delegation#agent:poa-o": time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC),
	}); err != nil {
		t.Fatal(err)
	}
	rv, err := svc.RevalidateIdentity(ctx, RevalidateRequest{Subject: Ref{Type: "user", ID: "zed"}, By: Actor{Application: "backoffice", Subject: Ref{Type: "staff", ID: "kim"}}})
	if err != nil {
		t.Fatal(err)
	}
	rules, err := dormancy.ParseRules([]byte(reportRules))
	if err != nil {
		t.Fatal(err)
	}
	var progress []int
	rep, err := svc.Report(ctx, ReportOptions{Rules: rules, Now: testNow, Progress: func(n, total int) { progress = append(progress, n, total) }})
	if err != nil {
		t.Fatal(err)
	}
	got := []string{}
	for _, i := range rep.Identities {
		got = append(got, fmt.Sprintf("%s %v given=%v", i.Subject, i.Rules, i.DelegationsGiven))
	}
	want := []string{"user:heidi [short long] given=[]", "user:alice [short] given=[poa-v]"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("identities:\n%v\nwant\n%v", got, want)
	}
	if len(rep.Thresholds) != 2 || rep.Thresholds[0].Rule != "short" || rep.Thresholds[0].Identities != 2 || rep.Thresholds[1].Identities != 1 {
		t.Fatalf("thresholds %+v", rep.Thresholds)
	}
	if len(rep.Delegations) != 1 || rep.Delegations[0].ID != "poa-v" || rep.Delegations[0].Rule != "poa" || !rep.Delegations[0].LastUsed.IsZero() {
		t.Fatalf("delegations %+v", rep.Delegations)
	}
	if len(rep.Revalidations) != 1 || rep.Revalidations[0].ID != rv.ID || len(progress) != 2 || progress[0] != 7 {
		t.Fatalf("revalidations %+v progress %v", rep.Revalidations, progress)
	}
	if rep, _ := svc.Report(ctx, ReportOptions{Rules: rules, Now: testNow, From: testNow.Add(time.Second)}); len(rep.Revalidations) != 0 {
		t.Fatalf("period: %+v", rep.Revalidations)
	}
	var csv bytes.Buffer
	if err := rep.WriteCSV(&csv); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(csv.String()), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[1], "identity,user:heidi,") || !strings.HasPrefix(lines[3], "delegation,poa-v,user:alice,") ||
		!strings.HasPrefix(lines[4], "revalidation,"+rv.ID+",user:zed,") {
		t.Fatalf("csv:\n%s", csv.String())
	}
}

// BenchmarkReport1M reports on 1,000,000 identities with activity in the
// real consent ledger (file store, in memory), one in ten dormant past
// the long rule and one in ten past the short one only.
func BenchmarkReport1M(b *testing.B) {
	const n = 1_000_000
	st, err := consent.OpenFile(filepath.Join(b.TempDir(), "c.jsonl"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	ledger := openLedger(b, st)
	act := make(map[string]time.Time, n)
	for i := range n {
		at := testNow.Add(-time.Duration(i%300) * 24 * time.Hour)
		switch i % 10 {
		case 0:
			at = testNow.AddDate(-3, 0, -i%100)
		case 1:
			at = testNow.AddDate(-1, -2, -i%100)
		}
		act[fmt.Sprintf("user:u%07d", i)] = at
	}
	if err := ledger.ImportActivity(context.Background(), act); err != nil {
		b.Fatal(err)
	}
	rs, err := OpenFile(filepath.Join(b.TempDir(), "r.jsonl"), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer rs.Close()
	svc, err := NewService(context.Background(), Config{Store: rs, Activity: LedgerActivity{ledger}})
	if err != nil {
		b.Fatal(err)
	}
	rules, _ := dormancy.ParseRules([]byte(reportRules))
	b.ReportAllocs()
	for b.Loop() {
		rep, err := svc.Report(context.Background(), ReportOptions{Rules: rules, Now: testNow})
		if err != nil || rep.Scanned != n || len(rep.Identities) != 2*n/10 {
			b.Fatalf("%v %d %d", err, rep.Scanned, len(rep.Identities))
		}
		var csv bytes.Buffer
		if err := rep.WriteCSV(&csv); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(csv.Len()), "csv-bytes")
	}
}
