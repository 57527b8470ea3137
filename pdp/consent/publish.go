package consent

import (
	"context"

	"github.com/ciampdp/pdp/pdp/changefeed"
)

// Publisher is told of a change (reason: consent.give, consent.refuse,
// consent.withdraw, consent.renew) after it was appended and before the
// method that made it returns; it may wait (the sidecars' change feed
// waits until no sidecar serves an answer cached before the change). An
// error is logged: the change stands.
type Publisher interface {
	Publish(ctx context.Context, reason string) (uint64, error)
}

// publishing is called before a change of reason is made: with an outbox
// (changefeed.Outbox) it records the change as coming, so that another
// replica publishes it if this process dies in between. The function it
// returns publishes the change when it was made (stored, even when the
// method then failed: a receipt not signed, a later append of a
// withdrawal), and passes err on.
func (l *Ledger) publishing(ctx context.Context, reason string) func(made bool, err error) error {
	finish, berr := changefeed.Begin(ctx, l.publisher, reason)
	if berr != nil {
		l.log.WarnContext(ctx, "change feed: publishing the change after it is made only", "reason", reason, "error", berr.Error())
	}
	return func(made bool, err error) error {
		if _, perr := finish(ctx, made); perr != nil {
			l.log.WarnContext(ctx, "change not acknowledged by every sidecar; their leases bound it",
				"reason", reason, "error", perr.Error())
		}
		return err
	}
}
