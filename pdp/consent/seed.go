package consent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// Seed is the form of seed data (consent.seed of the PDP, consents: of a
// policy test suite): events appended when their ids are absent, and the
// last activity of subjects ("user:heidi" → time).
type Seed struct {
	Events   []Event              `json:"events"`
	Activity map[string]time.Time `json:"activity,omitempty"`
}

// DecodeSeed reads a seed strictly (unknown fields are errors).
func DecodeSeed(r io.Reader) (Seed, error) {
	var s Seed
	raw, err := io.ReadAll(r)
	if err != nil {
		return s, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return s, fmt.Errorf("consent seed: %w", err)
	}
	return s, nil
}

// ImportSeed imports a seed's events, then its activity.
func (l *Ledger) ImportSeed(ctx context.Context, s Seed) error {
	if err := l.Import(ctx, s.Events); err != nil {
		return err
	}
	if len(s.Activity) > 0 {
		return l.ImportActivity(ctx, s.Activity)
	}
	return nil
}
