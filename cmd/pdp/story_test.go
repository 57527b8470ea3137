package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/spf13/pflag"
)

// TestStoryConfigFile: `pdp serve` given no configuration and no bundle
// runs the Northbank example when it is there (the repository root), and
// anything the user chose wins.
func TestStoryConfigFile(t *testing.T) {
	repo := t.TempDir()
	if err := os.MkdirAll(filepath.Join(repo, "examples", "northbank"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, storyConfig), []byte("log: {format: text}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	elsewhere := t.TempDir()
	for _, c := range []struct {
		name string
		dir  string
		args []string
		env  map[string]string
		want string
	}{
		{"the repository root, nothing chosen", repo, nil, nil, storyConfig},
		{"elsewhere: the embedded defaults", elsewhere, nil, nil, ""},
		{"--config", repo, []string{"--config", "other.yaml"}, nil, ""},
		{"PDP_CONFIG", repo, nil, map[string]string{"PDP_CONFIG": "other.yaml"}, ""},
		{"--dir", repo, []string{"--dir", "examples/authzen-todo"}, nil, ""},
		{"--dir .", repo, []string{"--dir", "."}, nil, ""},
		{"--git-remote", repo, []string{"--git-remote", "https://example.com/p.git"}, nil, ""},
		{"PDP_POLICY_DIR", repo, nil, map[string]string{"PDP_POLICY_DIR": "."}, ""},
		{"PDP_POLICY_GIT_REMOTE", repo, nil, map[string]string{"PDP_POLICY_GIT_REMOTE": "x"}, ""},
		{"other flags do not matter", repo, []string{"--addr", "127.0.0.1:0", "--log-level", "debug"}, nil, storyConfig},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, k := range []string{"PDP_CONFIG", "PDP_POLICY_DIR", "PDP_POLICY_GIT_REMOTE"} {
				t.Setenv(k, c.env[k])
			}
			t.Chdir(c.dir)
			fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
			addConfigFlags(fs)
			if err := fs.Parse(c.args); err != nil {
				t.Fatal(err)
			}
			got, err := storyConfigFile(fs)
			if err != nil || got != c.want {
				t.Errorf("storyConfigFile = %q, %v; want %q", got, err, c.want)
			}
		})
	}
}
