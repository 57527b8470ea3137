package server

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestSignalsEngine: serve and 'pdp repair' take the signal ledger's
// engine from one rule: a configured engine as it is; auto on with
// transmitters and a signals registry, on PostgreSQL when the resolved
// section has its URL (beside a PostgreSQL consent ledger), else the file.
func TestSignalsEngine(t *testing.T) {
	tx := []TransmitterConfig{{Issuer: "https://risk.example/"}}
	tests := []struct {
		name     string
		cfg      SignalsConfig
		consent  ConsentConfig
		registry bool
		want     string
	}{
		{"off", SignalsConfig{Engine: SignalsOff, Transmitters: tx}, ConsentConfig{Path: "d/c.jsonl"}, true, SignalsOff},
		{"file", SignalsConfig{Engine: SignalsFile}, ConsentConfig{Path: "d/c.jsonl"}, false, SignalsFile},
		{"postgres", SignalsConfig{Engine: SignalsPostgres, PostgresURL: "postgres://x"}, ConsentConfig{}, false, SignalsPostgres},
		{"auto without transmitters", SignalsConfig{Engine: SignalsAuto}, ConsentConfig{Path: "d/c.jsonl"}, true, SignalsOff},
		{"auto without registry", SignalsConfig{Engine: SignalsAuto, Transmitters: tx}, ConsentConfig{Path: "d/c.jsonl"}, false, SignalsOff},
		{"auto beside a file consent ledger", SignalsConfig{Engine: SignalsAuto, Transmitters: tx}, ConsentConfig{Engine: ConsentFile, Path: "d/c.jsonl"}, true, SignalsFile},
		{"auto beside a PostgreSQL consent ledger", SignalsConfig{Engine: SignalsAuto, Transmitters: tx},
			ConsentConfig{Engine: ConsentPostgres, PostgresURL: "postgres://x"}, true, SignalsPostgres},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := signalsEngine(autoSignals(tt.cfg, tt.consent), tt.registry); got != tt.want {
				t.Fatalf("engine %q, want %q", got, tt.want)
			}
		})
	}
}

// TestRevalidationStorePath: the revalidations are opened in
// dormancy.path, or beside the consent ledger's file — by serve and by
// 'pdp repair' through the same function.
func TestRevalidationStorePath(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name string
		cfg  DormancyConfig
		want string
	}{
		{"beside the consent ledger", DormancyConfig{}, filepath.Join(dir, "consent", "revalidations.jsonl")},
		{"dormancy.path", DormancyConfig{Path: filepath.Join(dir, "elsewhere", "rv.jsonl")}, filepath.Join(dir, "elsewhere", "rv.jsonl")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st, shared, err := openRevalidationStore(context.Background(), tt.cfg, ConsentConfig{Engine: ConsentFile, Path: filepath.Join(dir, "consent", "consent.jsonl")}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = st.Close() }()
			if _, err := os.Stat(tt.want); err != nil || shared {
				t.Fatalf("revalidations not at %s (shared %v): %v", tt.want, shared, err)
			}
		})
	}
}
