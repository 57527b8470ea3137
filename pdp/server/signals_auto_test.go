package server

import "testing"

// TestAutoSignalsFollowsTheConsentLedger: with signals.engine auto, the
// signal ledger lives where the consent ledger does — in its PostgreSQL
// database (so replicas share what any of them receives) or in a file
// beside it — unless the signals section says otherwise.
func TestAutoSignalsFollowsTheConsentLedger(t *testing.T) {
	pg := "postgres://db/pdp"
	tests := []struct {
		name     string
		signals  SignalsConfig
		consent  ConsentConfig
		wantURL  string
		wantPath string
	}{
		{"file consent: a file beside it", SignalsConfig{Engine: SignalsAuto}, ConsentConfig{Engine: ConsentFile, Path: "data/consent.jsonl"}, "", "data/signals.jsonl"},
		{"postgres consent: its database", SignalsConfig{Engine: SignalsAuto}, ConsentConfig{Engine: ConsentPostgres, PostgresURL: pg, Path: "data/consent.jsonl"}, pg, "data/signals.jsonl"},
		{"a path of its own", SignalsConfig{Engine: SignalsAuto, Path: "s.jsonl"}, ConsentConfig{Engine: ConsentFile, Path: "data/consent.jsonl"}, "", "s.jsonl"},
		{"a database of its own", SignalsConfig{Engine: SignalsAuto, PostgresURL: "postgres://other"}, ConsentConfig{Engine: ConsentPostgres, PostgresURL: pg}, "postgres://other", "signals.jsonl"},
		{"file asked for: no database", SignalsConfig{Engine: SignalsFile}, ConsentConfig{Engine: ConsentPostgres, PostgresURL: pg, Path: "c/consent.jsonl"}, "", "c/signals.jsonl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := autoSignals(tt.signals, tt.consent)
			if got.PostgresURL != tt.wantURL || got.Path != tt.wantPath {
				t.Errorf("postgres_url %q path %q, want %q %q", got.PostgresURL, got.Path, tt.wantURL, tt.wantPath)
			}
		})
	}
}
