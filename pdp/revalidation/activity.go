package revalidation

import (
	"context"
	"time"

	"github.com/ciampdp/pdp/pdp/consent"
)

// LedgerActivity is the consent ledger's activity (the PDP's one record
// of activity) as this package names identities.
type LedgerActivity struct{ Ledger *consent.Ledger }

var (
	_ Activity      = LedgerActivity{}
	_ ConsentReader = LedgerActivity{}
)

// LastActive implements Activity.
func (a LedgerActivity) LastActive(ctx context.Context, refs []Ref, now time.Time, horizon time.Duration) (map[Ref]time.Time, error) {
	cr := make([]consent.Ref, len(refs))
	for i, r := range refs {
		cr[i] = consent.Ref(r)
	}
	m, err := a.Ledger.LastActive(ctx, cr, now, horizon)
	if err != nil {
		return nil, err
	}
	out := make(map[Ref]time.Time, len(m))
	for k, v := range m {
		out[Ref(k)] = v
	}
	return out, nil
}

// Touch implements Activity.
func (a LedgerActivity) Touch(r Ref, at time.Time) { a.Ledger.Touch(consent.Ref(r), at) }

// ActivitySnapshot implements Activity.
func (a LedgerActivity) ActivitySnapshot(ctx context.Context) (map[Ref]time.Time, error) {
	m, err := a.Ledger.ActivitySnapshot(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[Ref]time.Time, len(m))
	for k, v := range m {
		out[Ref(k)] = v
	}
	return out, nil
}

// GrantsOf implements ConsentReader.
func (a LedgerActivity) GrantsOf(ctx context.Context, subject Ref) ([]string, error) {
	return a.Ledger.GrantsOf(ctx, consent.Ref(subject))
}
