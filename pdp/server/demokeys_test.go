package server

import (
	"crypto/sha256"
	"encoding/hex"
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
