package server

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/ciampdp/pdp/pdp/actorproof"
	"github.com/ciampdp/pdp/pdp/api"
	"github.com/ciampdp/pdp/pdp/jwtverify"
)

// authority is who may change delegation and consent records, beyond the
// admin API's own checks: the register applications, and the actor proof
// (nil without auth.actor_tokens: applications are trusted to
// authenticate their users).
type authority struct {
	registers []string
	actors    *actorproof.Prover
}

// openAuthority builds the authority of cfg. With authentication off, the
// local caller speaks for the registers too (as it may do everything
// else). A JWKS URL is fetched once now; when that fails the PDP starts
// anyway and every change is refused (503) until the keys load.
func openAuthority(ctx context.Context, cfg Config, log *slog.Logger) (authority, error) {
	a := authority{registers: cfg.Delegations.RegisterApplications}
	if len(cfg.Auth.APIKeys) == 0 {
		a.registers = append(a.registers, api.LocalApplication)
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
	a.actors = actorproof.New(v)
	log.Info("actor tokens on: every delegation and consent change must carry the actor's token", "header", actorproof.Header, "issuer", at.Issuer)
	return a, nil
}
