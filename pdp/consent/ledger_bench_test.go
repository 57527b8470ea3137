package consent

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// benchSubjects is how many subjects BenchmarkCheck indexes.
const benchSubjects = 10000

// writeBenchLedger writes a ledger file as the FileStore would, without an
// fsync per event: every subject has a marketing grant, every third also a
// withdrawal, every fifth a financial_advice grant.
func writeBenchLedger(b *testing.B, path string) int {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	pos := int64(0)
	add := func(e Event) {
		pos++
		e.Position, e.RecordedAt = pos, e.At
		if err := enc.Encode(e); err != nil {
			b.Fatal(err)
		}
	}
	for i := range benchSubjects {
		u := Ref{"user", fmt.Sprintf("u%05d", i)}
		at := ymd(2026, 1, 1).Add(time.Duration(i) * time.Minute)
		g := storeEvent(fmt.Sprintf("cev-m-%d", i), u, EventGiven, "marketing", at)
		g.Applications, g.Expires = []string{"marketing-hub"}, nil
		add(g)
		if i%3 == 0 {
			add(Event{ID: fmt.Sprintf("cev-w-%d", i), Type: EventWithdrawn, Subject: u, Actor: u, Application: "marketing-hub",
				Purpose: "marketing", Jurisdiction: "DE", At: at.Add(time.Hour)})
		}
		if i%5 == 0 {
			a := storeEvent(fmt.Sprintf("cev-a-%d", i), u, EventGiven, "financial_advice", at)
			a.Expires = nil
			add(a)
		}
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return int(pos)
}

// BenchmarkCheck: the decision path on a file store with 10 000 subjects
// indexed. p50/p99 are of single Checks timed one by one.
func BenchmarkCheck(b *testing.B) {
	path := filepath.Join(b.TempDir(), "consent.jsonl")
	n := writeBenchLedger(b, path)
	t0 := time.Now()
	st, err := OpenFile(path)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	e := newLenv(b, st, "")
	b.Logf("%d events of %d subjects: open and index in %v", n, benchSubjects, time.Since(t0).Round(time.Millisecond))
	ctx := context.Background()
	born := ymd(1990, 1, 1)
	queries := make([]CheckQuery, 1024)
	for i := range queries {
		queries[i] = CheckQuery{
			Subject: Ref{"user", fmt.Sprintf("u%05d", (i*7919)%benchSubjects)}, Purpose: "marketing",
			Application: "marketing-hub", Jurisdiction: "DE", BirthDate: &born, Now: ledgerToday,
		}
	}
	durs := make([]time.Duration, 0, 1<<20)
	allowed := 0
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		q := queries[i%len(queries)]
		i++
		start := time.Now()
		res, err := e.l.Check(ctx, q)
		d := time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		if res.Allowed {
			allowed++
		}
		if len(durs) < cap(durs) {
			durs = append(durs, d)
		}
	}
	slices.Sort(durs)
	if len(durs) > 0 {
		b.ReportMetric(float64(durs[len(durs)/2].Nanoseconds()), "p50-ns")
		b.ReportMetric(float64(durs[len(durs)*99/100].Nanoseconds()), "p99-ns")
	}
	if i > 0 && (allowed == 0 || allowed == i) {
		b.Errorf("%d of %d allowed: the index is not what was written", allowed, i)
	}
}

// BenchmarkGive: durable appends per second through the Ledger (validate,
// append with fsync or commit, index, sign the receipt).
func BenchmarkGive(b *testing.B) {
	for _, k := range storeKinds {
		b.Run(k.name, func(b *testing.B) {
			st, sfx := k.open(b)
			e := newLenv(b, st, sfx)
			ctx := context.Background()
			i := 0
			start := time.Now()
			for b.Loop() {
				r := advice(Ref{"user", fmt.Sprintf("g%d%s", i%100, sfx)})
				i++
				if _, _, err := e.l.Give(ctx, r); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(i)/time.Since(start).Seconds(), "gives/s")
		})
	}
}
