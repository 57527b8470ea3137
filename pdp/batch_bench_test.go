package pdp_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/consent"
	"github.com/ciampdp/pdp/pdp/delegation"
	"github.com/ciampdp/pdp/pdp/policy"
	"github.com/ciampdp/pdp/pdp/revalidation"
	"github.com/ciampdp/pdp/pdp/sources"
)

// allFacts answers every relationship check with true, and the owner of
// an account from its id: a fake at the edge of SpiceDB, so that the benchmark measures the delegation records and
// the consent ledger, which are real.
type allFacts struct{}

func (allFacts) CheckFacts(_ context.Context, cs []pdp.FactCheck) ([]pdp.Fact, string, error) {
	out := make([]pdp.Fact, len(cs))
	for i, c := range cs {
		out[i] = pdp.Fact{FactCheck: c, Has: true}
	}
	return out, "", nil
}

func (allFacts) LookupResources(context.Context, string, string, string, string, map[string]any) ([]string, error) {
	return nil, nil
}

// LookupSubjects names the owner of account acc-X: X.
func (allFacts) LookupSubjects(_ context.Context, _, resourceID, _, _ string, _ map[string]any) ([]string, error) {
	return []string{strings.TrimPrefix(resourceID, "acc-")}, nil
}

// BenchmarkStoresBatch measures decisions of the Northbank example that
// read the delegation records (bob acting for alice) or the consent ledger
// (budget-app on alice's grant), with the stores in files and on
// PostgreSQL (PDP_TEST_POSTGRES_URL, a fresh database): one decision
// (decide-acting, decide-consent) and a batch of 100 of each kind
// (batch100-acting, batch100-consent).
func BenchmarkStoresBatch(b *testing.B) {
	const nb = "../examples/northbank"
	bundle, err := policy.Load(context.Background(), policy.DirsFor(nb))
	if err != nil {
		b.Fatal(err)
	}
	for _, engine := range []string{"file", "postgres"} {
		b.Run(engine, func(b *testing.B) {
			ctx := context.Background()
			var (
				ds delegation.Store
				cs consent.Store
			)
			if engine == "file" {
				dir := b.TempDir()
				ds, err = delegation.OpenFile(filepath.Join(dir, "d.jsonl"))
				if err == nil {
					cs, err = consent.OpenFile(filepath.Join(dir, "c.jsonl"))
				}
			} else {
				uri := benchDatabase(b)
				ds, err = delegation.OpenPostgres(ctx, uri)
				if err == nil {
					cs, err = consent.OpenPostgres(ctx, uri)
				}
			}
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = ds.Close(); _ = cs.Close() })
			now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
			clock := func() time.Time { return now }
			svc := delegation.NewService(delegation.Config{Store: ds, Now: clock})
			var recs []delegation.Delegation
			readJSON(b, filepath.Join(nb, "delegations.json"), &recs)
			if err := svc.Import(ctx, recs); err != nil {
				b.Fatal(err)
			}
			ledger, err := consent.NewLedger(consent.LedgerConfig{Store: cs, Registry: bundle.Purposes,
				SigningKey: ed25519.NewKeyFromSeed(make([]byte, 32)), Now: clock})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = ledger.Close() })
			var seed consent.Seed
			readJSON(b, filepath.Join(nb, "consents.json"), &seed)
			if err := ledger.ImportSeed(ctx, seed); err != nil {
				b.Fatal(err)
			}
			// Northbank has dormancy rules: the engine reads activity from
			// the ledger (and denies facts_unavailable without a source).
			rs, err := revalidation.OpenFile(filepath.Join(b.TempDir(), "r.jsonl"), slog.New(slog.DiscardHandler))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = rs.Close() })
			dormant, err := revalidation.NewService(ctx, revalidation.Config{Store: rs, Activity: revalidation.LedgerActivity{Ledger: ledger}, Now: clock})
			if err != nil {
				b.Fatal(err)
			}
			e := pdp.NewEngine(pdp.Components{Bundles: bundle, Facts: allFacts{}, Now: clock, Dormancy: dormant,
				Delegations: sources.Delegations{Service: svc}, Consent: sources.Consent{Ledger: ledger}})
			acting := pdp.Request{Application: "mobile-banking", Subject: pdp.Entity{Type: "user", ID: "bob"},
				Action: pdp.Action{Name: "view_statements"}, Resource: pdp.Entity{Type: "account", ID: "acc-alice"},
				Context: map[string]any{"purpose": "account_servicing", "on_behalf_of": map[string]any{"type": "user", "id": "alice"}}}
			sharing := pdp.Request{Application: "budget-app", Subject: pdp.Entity{Type: "user", ID: "alice"},
				Action: pdp.Action{Name: "share_account_information"}, Resource: pdp.Entity{Type: "account", ID: "acc-alice"},
				Context: map[string]any{"purpose": "account_information_sharing"}}
			for _, c := range []struct {
				name string
				req  pdp.Request
			}{{"acting", acting}, {"consent", sharing}} {
				b.Run("decide-"+c.name, func(b *testing.B) {
					b.ReportAllocs()
					for b.Loop() {
						d, err := e.Decide(ctx, c.req)
						if err != nil || !d.Allowed {
							b.Fatalf("%v %v %s", err, d.Reasons, d.Message)
						}
					}
				})
				batch := make([]pdp.Request, 100)
				for i := range batch {
					batch[i] = c.req
				}
				b.Run("batch100-"+c.name, func(b *testing.B) {
					b.ReportAllocs()
					for b.Loop() {
						ds, err := e.DecideBatch(ctx, batch)
						if err != nil || !ds[99].Allowed {
							b.Fatalf("%v %v %s", err, ds[99].Reasons, ds[99].Message)
						}
					}
				})
			}
		})
	}
}

func readJSON(b *testing.B, path string, v any) {
	b.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		b.Fatal(err)
	}
}
