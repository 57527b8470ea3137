package server

import (
	"errors"
	"testing"
)

// TestTransmitterStreamValidate: the stream management keys of a
// transmitter.
func TestTransmitterStreamValidate(t *testing.T) {
	base := TransmitterConfig{Issuer: "https://risk.example/", Audience: []string{"https://pdp.example/"}, JWKS: `{"keys":[]}`}
	with := func(f func(*TransmitterConfig)) TransmitterConfig { c := base; f(&c); return c }
	tests := []struct {
		name string
		t    TransmitterConfig
		ok   bool
	}{
		{"poll through the stream, no poll_url", with(func(c *TransmitterConfig) {
			c.Delivery, c.ConfigurationURL = DeliveryPoll, "https://risk.example/.well-known/ssf-configuration"
		}), true},
		{"push through the stream", with(func(c *TransmitterConfig) {
			c.ConfigurationURL, c.PushURL, c.StreamTokenFile = "https://risk.example/.well-known/ssf-configuration", "https://pdp.example/ssf/events", "tok"
		}), true},
		{"push without push_url", with(func(c *TransmitterConfig) { c.ConfigurationURL = "https://risk.example/.well-known/ssf-configuration" }), false},
		{"poll without poll_url or configuration_url", with(func(c *TransmitterConfig) { c.Delivery = DeliveryPoll }), false},
		{"push_url without configuration_url", with(func(c *TransmitterConfig) { c.PushURL = "https://pdp.example/ssf/events" }), false},
		{"http configuration_url elsewhere", with(func(c *TransmitterConfig) {
			c.Delivery, c.ConfigurationURL = DeliveryPoll, "http://risk.example/.well-known/ssf-configuration"
		}), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultSignals()
			c.Transmitters = []TransmitterConfig{tt.t}
			err := c.Validate()
			if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrTransmitter)) {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}
