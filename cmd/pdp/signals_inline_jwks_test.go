package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestNorthbankInlineJWKSMatchesTheFile: pdp.yaml carries the demo
// transmitter's JWKS inline (so the PDP finds it from any folder); it must
// stay the public half of signals/transmitter-jwks.json, which `pdp
// signals push --key` signs with.
func TestNorthbankInlineJWKSMatchesTheFile(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(northbank, "pdp.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := load(t, string(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Signals.Transmitters) != 1 || cfg.Signals.Transmitters[0].JWKS == "" {
		t.Fatalf("pdp.yaml's transmitters: %+v, want one with an inline jwks", cfg.Signals.Transmitters)
	}
	file, err := os.ReadFile(nbTransmitterJWKS)
	if err != nil {
		t.Fatal(err)
	}
	var inline, onDisk any
	if err := json.Unmarshal([]byte(cfg.Signals.Transmitters[0].JWKS), &inline); err != nil {
		t.Fatalf("pdp.yaml's jwks: %v", err)
	}
	if err := json.Unmarshal(file, &onDisk); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(inline, onDisk) {
		t.Errorf("pdp.yaml's jwks %v differs from %s %v", inline, nbTransmitterJWKS, onDisk)
	}
}
