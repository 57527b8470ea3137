package server

import (
	"errors"
	"testing"
)

// TestReceiverApplicationIsAnAPIKeyApplication: a receiver of the outgoing
// signals may name only an application of auth.api_keys (with
// authentication off, none); naming none is allowed (every event).
func TestReceiverApplicationIsAnAPIKeyApplication(t *testing.T) {
	keys := AuthConfig{APIKeys: []APIKey{{Application: "mobile-banking"}, {Application: "advisor-portal"}}}
	tests := []struct {
		name string
		auth AuthConfig
		app  string
		ok   bool
	}{
		{"an application of auth.api_keys", keys, "advisor-portal", true},
		{"no application: every event", keys, "", true},
		{"an unknown application", keys, "advisor-portl", false},
		{"case differs", keys, "Mobile-Banking", false},
		{"authentication off", AuthConfig{}, "mobile-banking", false},
		{"authentication off, no application", AuthConfig{}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := OutgoingSignalsConfig{Issuer: "https://pdp.example/", Key: `{"kty":"EC"}`,
				Receivers: []SignalReceiverConfig{{Endpoint: "https://app.example/ssf/events", Audience: "https://app.example/", Application: tt.app}}}
			err := c.checkReceiverApplications(tt.auth)
			if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrOutgoing)) {
				t.Fatalf("checkReceiverApplications = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}
