package server

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ciampdp/pdp/pdp/actorproof"
	"github.com/ciampdp/pdp/pdp/api"
	"github.com/ciampdp/pdp/pdp/jwtverify"
)

// authority is who may change delegation and consent records, beyond the
// admin API's own checks: the register applications, the applications
// that read every delegation record, and the actor proof
// (nil without auth.actor_tokens: applications are trusted to
// authenticate their users).
type authority struct {
	registers []string
	readers   []string // delegations.reader_applications
	actors    *actorproof.Prover
	close     func()                  // the single-use store's, or nil
	memory    *actorproof.MemorySpent // the single-use store in this process, or nil
}

// openAuthority builds the authority of cfg. With authentication off, the
// local caller speaks for the registers too (as it may do everything
// else). A JWKS URL is fetched once now; when that fails the PDP starts
// anyway and every change is refused (503) until the keys load.
func openAuthority(ctx context.Context, cfg Config, log *slog.Logger) (authority, error) {
	a := authority{registers: cfg.Delegations.RegisterApplications, readers: cfg.Delegations.ReaderApplications}
	if len(cfg.Auth.APIKeys) == 0 {
		a.registers = append(a.registers, api.LocalApplication)
		a.readers = append(a.readers, api.LocalApplication)
	}
	at := cfg.Auth.ActorTokens
	if !at.Enabled() {
		log.Info("actor tokens off: applications are trusted to name the actor of delegation and consent changes (auth.actor_tokens)")
		return a, nil
	}
	v, err := jwtverify.New(at.Verification(), jwtverify.Deps{Logger: log})
	if err != nil {
		return a, fmt.Errorf("auth.actor_tokens: %w", err)
	}
	if at.JWKSURL != "" {
		if err := v.Load(ctx); err != nil {
			log.Warn("auth.actor_tokens: the JWKS cannot be loaded yet; delegation and consent changes are refused until it is", "error", err)
		}
	}
	clients, err := cfg.Auth.ActorTokenClients()
	if err != nil {
		return a, err
	}
	opts := actorproof.Options{Clients: clients, Leeway: at.Verification().WithDefaults().Leeway}
	spentIn := "off"
	if at.SingleUse {
		if opts.Spent, a.close, spentIn, err = openSpent(ctx, cfg); err != nil {
			return a, err
		}
		a.memory, _ = opts.Spent.(*actorproof.MemorySpent)
	}
	a.actors = actorproof.New(v, opts)
	log.Info("actor tokens on: every delegation and consent change must carry the actor's token", "header", actorproof.Header, "issuer", at.Issuer,
		"bound_to_clients", clients != nil, "single_use", spentIn)
	return a, nil
}

// openSpent opens where single-use tokens are remembered: where the
// delegation or consent records live, so that it holds for the whole
// deployment — PostgreSQL (shared by the replicas) when either is there,
// else this process's memory. It returns the store, its close (or nil)
// and a word for the log.
func openSpent(ctx context.Context, cfg Config) (actorproof.Spent, func(), string, error) {
	url := ""
	switch {
	case cfg.Delegations.Engine == DelegationsPostgres:
		url = cfg.Delegations.PostgresURL
	case cfg.Consent.Engine == ConsentPostgres:
		url = cfg.Consent.PostgresURL
	}
	if url == "" {
		return actorproof.NewMemorySpent(cfg.Auth.ActorTokens.SingleUseCapacity, nil), nil, "memory", nil
	}
	st, err := actorproof.OpenPostgresSpent(ctx, url, nil)
	if err != nil {
		return nil, nil, "", fmt.Errorf("auth.actor_tokens.single_use: %w", err)
	}
	return st, st.Close, "postgres", nil
}

// collectors are the metrics of the single-use store in this process
// (none on PostgreSQL, whose table is the deployment's).
func (a authority) collectors() []prometheus.Collector {
	m := a.memory
	if m == nil {
		return nil
	}
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pdp_actor_token_uses_remembered",
			Help: "Used actor token ids this process remembers (auth.actor_tokens.single_use), expired ones until the next use.",
		}, func() float64 { return float64(m.Len()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "pdp_actor_token_uses_full_total",
			Help: "Changes refused (503 actor_replay_unavailable) because auth.actor_tokens.single_use_capacity unexpired uses were remembered.",
		}, func() float64 { return float64(m.Full()) }),
	}
}
