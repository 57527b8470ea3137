package server

import (
	"errors"
	"strings"
	"testing"
)

func TestSignalsConfigValidate(t *testing.T) {
	good := TransmitterConfig{Issuer: "https://risk.example/", Audience: []string{"https://pdp.example/"}, JWKSFile: "jwks.json"}
	with := func(f func(*SignalsConfig)) SignalsConfig {
		c := DefaultSignals()
		c.Transmitters = []TransmitterConfig{good}
		f(&c)
		return c
	}
	for _, tc := range []struct {
		name string
		cfg  SignalsConfig
		want error
	}{
		{"default", DefaultSignals(), nil},
		{"a transmitter", with(func(*SignalsConfig) {}), nil},
		{"a jwks url", with(func(c *SignalsConfig) {
			c.Transmitters[0].JWKSFile, c.Transmitters[0].JWKSURL = "", "https://risk.example/jwks"
		}), nil},
		{"unknown engine", with(func(c *SignalsConfig) { c.Engine = "cloud" }), ErrSignalsEngine},
		{"postgres without url", with(func(c *SignalsConfig) { c.Engine = SignalsPostgres }), nil},
		{"no issuer", with(func(c *SignalsConfig) { c.Transmitters[0].Issuer = "" }), ErrTransmitter},
		{"twice", with(func(c *SignalsConfig) { c.Transmitters = append(c.Transmitters, good) }), ErrTransmitter},
		{"no audience", with(func(c *SignalsConfig) { c.Transmitters[0].Audience = nil }), ErrTransmitter},
		{"no keys", with(func(c *SignalsConfig) { c.Transmitters[0].JWKSFile = "" }), ErrTransmitter},
		{"both keys", with(func(c *SignalsConfig) { c.Transmitters[0].JWKSURL = "https://risk.example/jwks" }), ErrTransmitter},
		{"http jwks url", with(func(c *SignalsConfig) {
			c.Transmitters[0].JWKSFile, c.Transmitters[0].JWKSURL = "", "http://risk.example/jwks"
		}), ErrTransmitter},
		{"push token", with(func(c *SignalsConfig) { c.Transmitters[0].PushTokenSHA256 = strings.Repeat("ab", 32) }), nil},
		{"bad push token", with(func(c *SignalsConfig) { c.Transmitters[0].PushTokenSHA256 = "secret" }), ErrTransmitter},
		{"poll without url", with(func(c *SignalsConfig) { c.Transmitters[0].Delivery = DeliveryPoll }), ErrTransmitter},
		{"poll", with(func(c *SignalsConfig) {
			c.Transmitters[0].Delivery, c.Transmitters[0].PollURL = DeliveryPoll, "https://risk.example/poll"
		}), nil},
		{"poll over http on loopback", with(func(c *SignalsConfig) {
			c.Transmitters[0].Delivery, c.Transmitters[0].PollURL = DeliveryPoll, "http://127.0.0.1:9/poll"
		}), nil},
		{"poll over http elsewhere", with(func(c *SignalsConfig) {
			c.Transmitters[0].Delivery, c.Transmitters[0].PollURL = DeliveryPoll, "http://risk.example/poll"
		}), ErrTransmitter},
		{"poll url for push", with(func(c *SignalsConfig) { c.Transmitters[0].PollURL = "https://risk.example/poll" }), ErrTransmitter},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			switch {
			case tc.name == "postgres without url":
				if err == nil {
					t.Fatal("accepted postgres without signals.postgres_url")
				}
			case tc.want == nil && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != nil && !errors.Is(err, tc.want):
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}
