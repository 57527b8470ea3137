package server

import (
	"errors"
	"testing"
)

func TestOutgoingSignalsValidate(t *testing.T) {
	const key = `{"kty":"EC"}`
	rcv := SignalReceiverConfig{Endpoint: "https://app.example/ssf/events", Audience: "https://app.example/"}
	tests := []struct {
		name string
		cfg  OutgoingSignalsConfig
		ok   bool
	}{
		{"off", OutgoingSignalsConfig{}, true},
		{"on", OutgoingSignalsConfig{Issuer: "https://pdp.example/", Key: key, Receivers: []SignalReceiverConfig{rcv}}, true},
		{"http on loopback", OutgoingSignalsConfig{Issuer: "https://pdp.example/", KeyFile: "k.json",
			Receivers: []SignalReceiverConfig{{Endpoint: "http://127.0.0.1:9/e", Audience: "a"}}}, true},
		{"receivers without issuer", OutgoingSignalsConfig{Receivers: []SignalReceiverConfig{rcv}}, false},
		{"no key", OutgoingSignalsConfig{Issuer: "https://pdp.example/"}, false},
		{"two keys", OutgoingSignalsConfig{Issuer: "https://pdp.example/", Key: key, KeyFile: "k.json"}, false},
		{"relative issuer", OutgoingSignalsConfig{Issuer: "pdp", Key: key}, false},
		{"http receiver elsewhere", OutgoingSignalsConfig{Issuer: "https://pdp.example/", Key: key,
			Receivers: []SignalReceiverConfig{{Endpoint: "http://app.example/e", Audience: "a"}}}, false},
		{"receiver without audience", OutgoingSignalsConfig{Issuer: "https://pdp.example/", Key: key,
			Receivers: []SignalReceiverConfig{{Endpoint: "https://app.example/e"}}}, false},
		{"negative retry", OutgoingSignalsConfig{Issuer: "https://pdp.example/", Key: key, RetryMax: -1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrOutgoing)) {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}
