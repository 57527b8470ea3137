package consent

import "context"

// Publisher is told of a change (reason: consent.give, consent.refuse,
// consent.withdraw, consent.renew) after it was appended and before the
// method that made it returns; it may wait (the sidecars' change feed
// waits until no sidecar serves an answer cached before the change). An
// error is logged: the change stands.
type Publisher interface {
	Publish(ctx context.Context, reason string) (uint64, error)
}

// published publishes a change whose method ended with err, when it was
// applied (err nil), and passes err on.
func (l *Ledger) published(ctx context.Context, reason string, err error) error {
	if err != nil || l.publisher == nil {
		return err
	}
	if _, perr := l.publisher.Publish(ctx, reason); perr != nil {
		l.log.WarnContext(ctx, "change not acknowledged by every sidecar; their leases bound it",
			"reason", reason, "error", perr.Error())
	}
	return nil
}
