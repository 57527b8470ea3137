package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	pdpserver "github.com/ciampdp/pdp/pdp/server"
)

// load resolves the configuration of `pdp serve flags…` with the file
// content (none when empty) and the environment variables.
func load(t *testing.T, file string, env map[string]string, flags ...string) (pdpserver.Config, error) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	fs := newFlagSet(serveCommand())
	if file != "" {
		path := filepath.Join(t.TempDir(), "pdp.yaml")
		writeFile(t, path, file)
		flags = append([]string{"--config", path}, flags...)
	}
	if err := fs.Parse(flags); err != nil {
		t.Fatal(err)
	}
	c, _, err := loadConfig(fs)
	return c, err
}

// yamlFor is a configuration file setting one dotted key.
func yamlFor(t *testing.T, key string, value any) string {
	t.Helper()
	parts := strings.Split(key, ".")
	var doc any = value
	for i := len(parts) - 1; i >= 0; i-- {
		doc = map[string]any{parts[i]: doc}
	}
	out, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// TestConfigPrecedence checks flag > environment > file > default, for keys
// of each type and depth.
func TestConfigPrecedence(t *testing.T) {
	keys := []struct {
		key, flag              string // flag "" when the key has none
		file, env, flagV, want any    // want: the default
		get                    func(pdpserver.Config) any
	}{
		{"http.addr", "addr", "127.0.0.2:1", "127.0.0.3:2", "127.0.0.4:3", "127.0.0.1:8080",
			func(c pdpserver.Config) any { return c.HTTP.Addr }},
		{"policy.dir", "dir", "from-file", "from-env", "from-flag", ".",
			func(c pdpserver.Config) any { return c.Policy.Dir }},
		{"policy.reload_interval", "reload-interval", "1s", "2m", "3h", 2 * time.Second,
			func(c pdpserver.Config) any { return c.Policy.ReloadInterval }},
		{"log.level", "log-level", "debug", "warn", "error", "info",
			func(c pdpserver.Config) any { return c.Log.Level }},
		{"policy.git.pull_interval", "", "5s", "6m", nil, time.Minute,
			func(c pdpserver.Config) any { return c.Policy.Git.PullInterval }},
		{"http.compact_batch", "", true, "false", nil, false,
			func(c pdpserver.Config) any { return c.HTTP.CompactBatch }},
		{"http.body_limit", "", 2048, "4096", nil, int64(1 << 20),
			func(c pdpserver.Config) any { return c.HTTP.BodyLimit }},
	}
	layers := []struct {
		name             string
		file, env, flag  bool
		want             string // which layer wins: default, file, env or flag
		skipWithoutFlags bool
	}{
		{name: "default", want: "default"},
		{name: "file", file: true, want: "file"},
		{name: "env", env: true, want: "env"},
		{name: "file and env", file: true, env: true, want: "env"},
		{name: "flag", flag: true, want: "flag", skipWithoutFlags: true},
		{name: "file and flag", file: true, flag: true, want: "flag", skipWithoutFlags: true},
		{name: "env and flag", env: true, flag: true, want: "flag", skipWithoutFlags: true},
		{name: "all", file: true, env: true, flag: true, want: "flag", skipWithoutFlags: true},
	}
	for _, k := range keys {
		for _, l := range layers {
			if l.skipWithoutFlags && k.flag == "" {
				continue
			}
			t.Run(k.key+"/"+l.name, func(t *testing.T) {
				var file string
				env := map[string]string{}
				var flags []string
				if l.file {
					file = yamlFor(t, k.key, k.file)
				}
				if l.env {
					env[envName(k.key)] = k.env.(string)
				}
				if l.flag {
					flags = []string{"--" + k.flag, k.flagV.(string)}
				}
				c, err := load(t, file, env, flags...)
				if err != nil {
					t.Fatal(err)
				}
				want := map[string]any{"default": k.want, "file": k.file, "env": k.env, "flag": k.flagV}[l.want]
				got := k.get(c)
				if !sameValue(got, want) {
					t.Errorf("%s = %v (%T), want the %s value %v", k.key, got, got, l.want, want)
				}
			})
		}
	}
}

// sameValue compares a decoded value with the value of a layer as written
// (a string for the environment and flags).
func sameValue(got, want any) bool {
	if s, ok := want.(string); ok {
		switch g := got.(type) {
		case time.Duration:
			d, err := time.ParseDuration(s)
			return err == nil && d == g
		case bool:
			return strconv.FormatBool(g) == s
		case int64:
			return strconv.FormatInt(g, 10) == s
		}
		return got == s
	}
	if w, ok := want.(int); ok {
		g, ok := got.(int64)
		return ok && g == int64(w)
	}
	return got == want
}

func TestConfigDefaults(t *testing.T) {
	t.Setenv("PDP_TRAIL_DIR", "") // TestMain points the trail at a throwaway folder; empty means unset
	c, err := load(t, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, pdpserver.DefaultConfig()) {
		t.Errorf("with no configuration:\n got %+v\nwant %+v", c, pdpserver.DefaultConfig())
	}
	if err := c.Validate(); err != nil {
		t.Errorf("the default configuration is invalid: %v", err)
	}
	if c.HTTP.Addr != "127.0.0.1:8080" || c.Policy.Dir != "." || c.Policy.ReloadInterval != 2*time.Second ||
		c.Log.Level != "info" || c.Log.Format != "json" || c.Policy.Git.Checkout != filepath.Join(".data", "policies-git") {
		t.Errorf("defaults differ from the documented ones: %+v", c)
	}
}

func TestConfigSources(t *testing.T) {
	digest := strings.Repeat("ab", 32)
	tests := []struct {
		name    string
		file    string
		env     map[string]string
		check   func(t *testing.T, c pdpserver.Config)
		wantErr string
	}{
		{
			name: "API keys from the file",
			file: "auth:\n  api_keys:\n    - application: mobile-banking\n      sha256: " + digest + "\n",
			check: func(t *testing.T, c pdpserver.Config) {
				if want := []pdpserver.APIKey{{Application: "mobile-banking", SHA256: digest}}; !reflect.DeepEqual(c.Auth.APIKeys, want) {
					t.Errorf("api keys = %+v", c.Auth.APIKeys)
				}
			},
		},
		{
			name: "API keys from the environment",
			env:  map[string]string{"PDP_AUTH_API_KEYS": "mobile-banking=" + digest + ", budget-app=" + strings.ToUpper(digest[:62]) + "cd"},
			check: func(t *testing.T, c pdpserver.Config) {
				if len(c.Auth.APIKeys) != 2 || c.Auth.APIKeys[1].Application != "budget-app" {
					t.Errorf("api keys = %+v", c.Auth.APIKeys)
				}
				if k := c.Auth.Keys(); k[digest] != "mobile-banking" || k[digest[:62]+"cd"] != "budget-app" {
					t.Errorf("keys = %v", k)
				}
			},
		},
		{
			name: "the file named by PDP_CONFIG",
			env:  map[string]string{"PDP_CONFIG": "WRITE:http:\n  base_path: /stores/abc\n"},
			check: func(t *testing.T, c pdpserver.Config) {
				if c.HTTP.BasePath != "/stores/abc" {
					t.Errorf("base_path = %q", c.HTTP.BasePath)
				}
			},
		},
		{
			name: "Git from the environment",
			env:  map[string]string{"PDP_POLICY_GIT_REMOTE": "https://git.example/policies.git", "PDP_POLICY_GIT_PASSWORD": "token"},
			check: func(t *testing.T, c pdpserver.Config) {
				if !c.Policy.Git.Enabled() || c.Policy.Git.Password != "token" || c.Policy.Git.Branch != "main" {
					t.Errorf("git = %+v", c.Policy.Git)
				}
			},
		},
		{name: "an unknown key", file: "http:\n  adress: 0.0.0.0:80\n", wantErr: "adress"},
		{name: "a bad duration", env: map[string]string{"PDP_HTTP_READ_TIMEOUT": "10"}, wantErr: "with a unit"},
		{name: "a bad API key list", env: map[string]string{"PDP_AUTH_API_KEYS": digest}, wantErr: "application=sha256"},
		{name: "a file that is not YAML", file: "http: [\n", wantErr: "pdp.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				if content, ok := strings.CutPrefix(v, "WRITE:"); ok {
					path := filepath.Join(t.TempDir(), "from-env.yml")
					writeFile(t, path, content)
					tt.env[k] = path
				}
			}
			c, err := load(t, tt.file, tt.env)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
	t.Run("a missing file", func(t *testing.T) {
		fs := newFlagSet(serveCommand())
		if err := fs.Parse([]string{"--config", filepath.Join(t.TempDir(), "none.yaml")}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := loadConfig(fs); err == nil {
			t.Fatal("no error for a missing config file")
		}
	})
}

// TestREADMEDocumentsConfiguration keeps the configuration reference
// complete: every key, its environment variable and every flag.
func TestREADMEDocumentsConfiguration(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(data)
	for key := range settings(pdpserver.DefaultConfig()) {
		for _, want := range []string{"`" + key + "`", "`" + envName(key) + "`"} {
			if !strings.Contains(readme, want) {
				t.Errorf("README.md does not document %s", want)
			}
		}
	}
	for _, f := range configFlags {
		if !strings.Contains(readme, "`--"+f.flag+"`") {
			t.Errorf("README.md does not document the flag --%s", f.flag)
		}
	}
	if !strings.Contains(readme, "`"+configFileEnv+"`") || !strings.Contains(readme, "`--config`") {
		t.Errorf("README.md does not document --config and %s", configFileEnv)
	}
}
