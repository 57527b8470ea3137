package server

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"testing"
)

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func TestDemoKeys(t *testing.T) {
	for _, c := range []struct {
		name string
		auth AuthConfig
		want []DemoKey
	}{
		{"no keys", AuthConfig{}, nil},
		{"own keys are not printed", AuthConfig{APIKeys: []APIKey{{"app", sha("s3cret")}}}, nil},
		{"a demo key of another application is not its demo key", AuthConfig{APIKeys: []APIKey{{"app", sha("demo-key-other")}}}, nil},
		{"demo keys, either case, auditors marked", AuthConfig{
			APIKeys:     []APIKey{{"mobile-banking", strings.ToUpper(sha("demo-key-mobile-banking"))}, {"app", sha("s3cret")}},
			AuditorKeys: []APIKey{{"internal-audit", sha("demo-key-auditor")}, {"audit-2", sha("demo-key-audit-2")}},
		}, []DemoKey{{"mobile-banking", "demo-key-mobile-banking", false}, {"internal-audit", "demo-key-auditor", true}, {"audit-2", "demo-key-audit-2", true}}},
		{"demo-key-auditor is an auditor's only", AuthConfig{APIKeys: []APIKey{{"internal-audit", sha("demo-key-auditor")}}}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := c.auth.DemoKeys(); !slices.Equal(got, c.want) {
				t.Errorf("DemoKeys() = %v, want %v", got, c.want)
			}
		})
	}
}

// TestDemoKeysStayOnLoopback: a configuration with a demo key validates on
// a loopback address only; keys of one's own listen anywhere.
func TestDemoKeysStayOnLoopback(t *testing.T) {
	demo := []APIKey{{"mobile-banking", sha("demo-key-mobile-banking")}}
	own := []APIKey{{"mobile-banking", sha("s3cret")}}
	for _, c := range []struct {
		addr    string
		keys    []APIKey
		auditor []APIKey
		want    error
	}{
		{"127.0.0.1:8080", demo, nil, nil},
		{"localhost:8080", demo, nil, nil},
		{"[::1]:8080", demo, nil, nil},
		{"0.0.0.0:8080", demo, nil, ErrDemoKeyAddr},
		{":8080", demo, nil, ErrDemoKeyAddr},
		{"10.0.0.1:8080", own, []APIKey{{"internal-audit", sha("demo-key-auditor")}}, ErrDemoKeyAddr},
		{"0.0.0.0:8080", own, nil, nil},
	} {
		cfg := DefaultConfig()
		cfg.HTTP.Addr = c.addr
		cfg.Auth.APIKeys, cfg.Auth.AuditorKeys = c.keys, c.auditor
		if err := cfg.Validate(); !errors.Is(err, c.want) || (c.want == nil && err != nil) {
			t.Errorf("addr %s, keys %v: Validate() = %v, want %v", c.addr, c.keys, err, c.want)
		}
	}
}
