package server

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/ciampdp/pdp/pdp/consent"
	"github.com/ciampdp/pdp/pdp/delegation"
	"github.com/ciampdp/pdp/pdp/policy"
	"github.com/ciampdp/pdp/pdp/revalidation"
)

// DormancyConfig configures the revalidations that end dormancy (the
// rules are in the bundle, schema/dormancy.yaml; the activity is the
// consent ledger's). The revalidations live where the consent ledger
// does: in a file beside it (Path), or in its PostgreSQL database.
type DormancyConfig struct {
	// Path of the revalidations file; empty: revalidations.jsonl in the
	// consent ledger's folder.
	Path string `mapstructure:"path"`
	// AdminApplications may revalidate identities (POST
	// /v1/dormancy/identities/{subject}/revalidate) and read the report.
	AdminApplications []string `mapstructure:"admin_applications"`
	// ReconfirmApplications may carry a delegation's re-confirmation by
	// its principal (POST /v1/dormancy/delegations/{id}/reconfirm).
	ReconfirmApplications []string `mapstructure:"reconfirm_applications"`
}

// DefaultDormancy: the file beside the consent ledger, no application
// may revalidate until configured.
func DefaultDormancy() DormancyConfig { return DormancyConfig{} }

// Validate checks the section.
func (c DormancyConfig) Validate() error { return nil }

// openRevalidationStore opens the revalidations where the consent ledger
// is (serve and 'pdp repair' both): in its PostgreSQL database (shared by
// the replicas), or in dormancy.path, by default revalidations.jsonl
// beside its file.
func openRevalidationStore(ctx context.Context, cfg DormancyConfig, ccfg ConsentConfig, log *slog.Logger) (st revalidation.Store, shared bool, err error) {
	if ccfg.Engine == ConsentPostgres {
		st, err = revalidation.OpenPostgres(ctx, ccfg.PostgresURL)
		shared = true
	} else {
		path := cfg.Path
		if path == "" {
			path = filepath.Join(filepath.Dir(ccfg.Path), "revalidations.jsonl")
		}
		st, err = revalidation.OpenFile(path, log)
	}
	if err != nil {
		return nil, false, fmt.Errorf("open the revalidations: %w", err)
	}
	return st, shared, nil
}

// openDormancy opens the revalidations and the dormancy service over the
// consent ledger's activity; nil when the ledger is off (then a bundle
// with dormancy rules denies what they cover with facts_unavailable).
func openDormancy(ctx context.Context, cfg DormancyConfig, ccfg ConsentConfig, ledger *consent.Ledger, dsvc *delegation.Service, auth authority, journal revalidation.Journal, log *slog.Logger) (*revalidation.Service, func(), error) {
	if ledger == nil {
		return nil, func() {}, nil
	}
	st, shared, err := openRevalidationStore(ctx, cfg, ccfg, log)
	if err != nil {
		return nil, nil, err
	}
	c := revalidation.Config{
		Store: st, Activity: revalidation.LedgerActivity{Ledger: ledger}, Journal: journal, Shared: shared, Logger: log,
		AdminApplications: cfg.AdminApplications, ReconfirmApplications: cfg.ReconfirmApplications,
	}
	if dsvc != nil {
		c.Delegations = dsvc
	}
	if auth.actors != nil {
		c.Actors = auth.actors
	}
	svc, err := revalidation.NewService(ctx, c)
	if err != nil {
		_ = st.Close()
		return nil, nil, err
	}
	return svc, func() { _ = st.Close() }, nil
}

// dormancyAdmin serves the admin API with the active bundle's rules.
type dormancyAdmin struct {
	*revalidation.Service
	bundles *policy.Reloader
}

// Report implements api.Dormancy.
func (d dormancyAdmin) Report(ctx context.Context, o revalidation.ReportOptions) (revalidation.Report, error) {
	if b := d.bundles.Current(); b != nil {
		o.Rules = b.Dormancy()
	}
	return d.Service.Report(ctx, o)
}
