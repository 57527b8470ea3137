package server

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp/api"
	"github.com/ciampdp/pdp/pdp/policy"
)

// TestConfigValidate checks every section's Validate and the rule that
// spans sections (no API keys: loopback only).
func TestConfigValidate(t *testing.T) {
	t.Parallel()
	key := APIKey{Application: "app", SHA256: strings.Repeat("0f", 32)}
	tests := []struct {
		name   string
		change func(c *Config)
		want   error
	}{
		{"default", func(c *Config) {}, nil},
		{"IPv6 loopback", func(c *Config) { c.HTTP.Addr = "[::1]:8080" }, nil},
		{"localhost", func(c *Config) { c.HTTP.Addr = "localhost:0" }, nil},
		{"other loopback", func(c *Config) { c.HTTP.Addr = "127.0.0.53:80" }, nil},
		{"all interfaces without keys", func(c *Config) { c.HTTP.Addr = "0.0.0.0:8080" }, ErrInsecureAddr},
		{"empty host without keys", func(c *Config) { c.HTTP.Addr = ":8080" }, ErrInsecureAddr},
		{"a host name without keys", func(c *Config) { c.HTTP.Addr = "pdp.internal:8080" }, ErrInsecureAddr},
		{"all interfaces with keys", func(c *Config) { c.HTTP.Addr = "0.0.0.0:8080"; c.Auth.APIKeys = []APIKey{key} }, nil},
		{"no port", func(c *Config) { c.HTTP.Addr = "127.0.0.1" }, ErrAddr},
		{"bad base path", func(c *Config) { c.HTTP.BasePath = "stores/" }, api.ErrBasePath},
		{"bad public URL", func(c *Config) { c.HTTP.PublicURL = "ftp://pdp" }, api.ErrPublicURL},
		{"negative body limit", func(c *Config) { c.HTTP.BodyLimit = -1 }, api.ErrBodyLimit},
		{"negative timeout", func(c *Config) { c.HTTP.IdleTimeout = -time.Second }, api.ErrTimeout},
		{"no change lease", func(c *Config) { c.HTTP.ChangeLease = 0 }, ErrChangeLease},
		{"change lease over a minute", func(c *Config) { c.HTTP.ChangeLease = 2 * time.Minute }, ErrChangeLease},
		{"negative reload interval", func(c *Config) { c.Policy.ReloadInterval = -time.Second }, ErrReloadInterval},
		{"no reload", func(c *Config) { c.Policy.ReloadInterval = 0 }, nil},
		{"empty dir", func(c *Config) { c.Policy.Dir = "" }, ErrPolicyDir},
		{"git", func(c *Config) { c.Policy.Git.Remote = "https://git.example/p.git"; c.Policy.Dir = "" }, nil},
		{"git without checkout", func(c *Config) { c.Policy.Git.Remote = "/srv/p"; c.Policy.Git.Checkout = "" }, policy.ErrGitConfig},
		{"git negative pull", func(c *Config) { c.Policy.Git.Remote = "/srv/p"; c.Policy.Git.PullInterval = -1 }, policy.ErrGitConfig},
		{"git subdir outside", func(c *Config) { c.Policy.Git.Remote = "/srv/p"; c.Policy.Git.Subdir = "../etc" }, ErrGitSubdir},
		{"git subdir absolute", func(c *Config) { c.Policy.Git.Remote = "/srv/p"; c.Policy.Git.Subdir = "/etc" }, ErrGitSubdir},
		{"key without application", func(c *Config) { c.Auth.APIKeys = []APIKey{{SHA256: key.SHA256}} }, ErrAPIKeyApp},
		{"key not hex", func(c *Config) { c.Auth.APIKeys = []APIKey{{Application: "app", SHA256: strings.Repeat("zz", 32)}} }, ErrAPIKeyDigest},
		{"key too short", func(c *Config) { c.Auth.APIKeys = []APIKey{{Application: "app", SHA256: "abcd"}} }, ErrAPIKeyDigest},
		{"key twice", func(c *Config) {
			c.Auth.APIKeys = []APIKey{key, {Application: "other", SHA256: strings.ToUpper(key.SHA256)}}
		}, ErrAPIKeyDuplicate},
		{"log level", func(c *Config) { c.Log.Level = "loud" }, ErrLogLevel},
		{"log level upper case", func(c *Config) { c.Log.Level = "DEBUG" }, nil},
		{"log format", func(c *Config) { c.Log.Format = "xml" }, ErrLogFormat},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.change(&c)
			err := c.Validate()
			if tt.want == nil && err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("error = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestPprofAddrIsLoopbackOnly(t *testing.T) {
	for _, tc := range []struct {
		addr string
		ok   bool
	}{
		{"", true},
		{"127.0.0.1:6060", true},
		{"localhost:0", true},
		{"[::1]:6060", true},
		{"0.0.0.0:6060", false},
		{":6060", false},
		{"10.0.0.1:6060", false},
		{"127.0.0.1", false},
	} {
		h := DefaultHTTP()
		h.PprofAddr = tc.addr
		err := h.Validate()
		if (err == nil) != tc.ok {
			t.Errorf("pprof_addr %q: err = %v, want ok=%v", tc.addr, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrAddr) {
			t.Errorf("pprof_addr %q: err = %v, want ErrAddr", tc.addr, err)
		}
	}
}
