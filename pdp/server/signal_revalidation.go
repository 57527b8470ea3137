package server

import (
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
	"strings"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/ciampdp/pdp/pdp/dormancy"
	"github.com/ciampdp/pdp/pdp/policy"
	"github.com/ciampdp/pdp/pdp/revalidation"
	"github.com/ciampdp/pdp/pdp/signals"
)

// revalidateOnSignal is told of every stored risk signal: an event the
// active bundle's dormancy rules name (a CAEP assurance-level-change to a
// listed level, or a listed event type) ends the dormancy of the identity
// it is about, as an administrator's revalidation would (recorded in the
// trail before it is stored). nil when dormancy is off.
func revalidateOnSignal(bundles interface{ Current() *policy.Bundle }, svc *revalidation.Service, log *slog.Logger) func(context.Context, []signals.Event) {
	if svc == nil {
		return nil
	}
	return func(ctx context.Context, events []signals.Event) {
		b := bundles.Current()
		if b == nil || b.Dormancy() == nil {
			return
		}
		for _, e := range events {
			if e.Entity == "" || !b.Dormancy().Revalidates(e.Type, currentLevel(e.Payload)) {
				continue
			}
			ref, ok := entityRef(b, e.Entity)
			if !ok {
				continue
			}
			if _, err := svc.RevalidateOnSignal(ctx, ref, e.Transmitter, e.Type, e.JTI); err != nil {
				log.ErrorContext(ctx, "a revalidating signal did not end the dormancy", "entity", e.Entity, "type", e.Type, "jti", e.JTI, "error", err)
				continue
			}
			log.InfoContext(ctx, "dormancy ended by a signal", "entity", e.Entity, "type", e.Type, "jti", e.JTI)
		}
	}
}

// currentLevel is the current_level of a CAEP assurance-level-change.
func currentLevel(payload json.RawMessage) string {
	var p struct {
		CurrentLevel string `json:"current_level"`
	}
	if len(payload) == 0 || json.Unmarshal(payload, &p) != nil {
		return ""
	}
	return p.CurrentLevel
}

// entityRef turns a Cedar entity (User::"heidi") into the dormancy
// records' reference (user:heidi).
func entityRef(b *policy.Bundle, entity string) (dormancy.Ref, bool) {
	i := strings.LastIndex(entity, `::"`)
	if i <= 0 {
		return dormancy.Ref{}, false
	}
	id, err := strconv.Unquote(entity[i+2:])
	if err != nil || id == "" {
		return dormancy.Ref{}, false
	}
	return dormancy.Ref{Type: b.ObjectType(types.EntityType(entity[:i])), ID: id}, true
}
