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

// signalRevalidation is what the signal ledger is given of the dormancy
// rules: which events of a SET end a dormancy (recorded with the SET in
// the trail), and the hook that ends it once the SET is stored. Both nil
// when dormancy is off.
type signalRevalidation struct {
	revalidates func([]signals.Event) []dormancy.SignalRevalidation
	onStored    func(context.Context, []signals.Event, []dormancy.SignalRevalidation)
}

// revalidateOnSignal: an event the active bundle's dormancy rules name (a
// CAEP assurance-level-change to a listed level, or a listed event type)
// ends the dormancy of the identity it is about, as an administrator's
// revalidation would (recorded in the trail before it is stored), once
// per SET event (its source names the SET).
func revalidateOnSignal(bundles interface{ Current() *policy.Bundle }, svc *revalidation.Service, log *slog.Logger) signalRevalidation {
	if svc == nil {
		return signalRevalidation{}
	}
	revalidates := func(events []signals.Event) []dormancy.SignalRevalidation {
		b := bundles.Current()
		if b == nil || b.Dormancy() == nil {
			return nil
		}
		var out []dormancy.SignalRevalidation
		for _, e := range events {
			if e.Entity == "" || !b.Dormancy().Revalidates(e.Type, currentLevel(e.Payload)) {
				continue
			}
			if ref, ok := entityRef(b, e.Entity); ok {
				out = append(out, dormancy.SignalRevalidation{Type: e.Type, Subject: ref})
			}
		}
		return out
	}
	// onStored makes exactly the revalidations recorded with the SET (not
	// recomputed: the bundle may have changed since it was recorded).
	onStored := func(ctx context.Context, events []signals.Event, recorded []dormancy.SignalRevalidation) {
		if len(events) == 0 {
			return
		}
		for _, r := range recorded {
			if ctx.Err() != nil {
				log.ErrorContext(ctx, "a revalidating signal's revalidations were not all made in time (the start-up check makes them)",
					"transmitter", events[0].Transmitter, "jti", events[0].JTI, "error", ctx.Err())
				return
			}
			e := events[0]
			if _, err := svc.RevalidateOnSignal(ctx, r.Subject, e.Transmitter, r.Type, e.JTI); err != nil {
				log.ErrorContext(ctx, "a revalidating signal did not end the dormancy (fail closed: the next start makes it, or 'pdp repair')",
					"subject", r.Subject.String(), "type", r.Type, "transmitter", e.Transmitter, "jti", e.JTI, "error", err)
				continue
			}
			log.InfoContext(ctx, "dormancy ended by a signal", "subject", r.Subject.String(), "type", r.Type, "transmitter", e.Transmitter, "jti", e.JTI)
		}
	}
	return signalRevalidation{revalidates: revalidates, onStored: onStored}
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
