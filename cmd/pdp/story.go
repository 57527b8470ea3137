package main

import (
	"errors"
	"io/fs"
	"os"

	"github.com/spf13/pflag"
)

// StoryConfig is the configuration `pdp serve` runs when it is given none,
// found relative to the working folder: from the repository root, the
// README's first command serves the Northbank story in full (SpiceDB in
// memory with its relationships, delegation records, the consent ledger,
// the decision trail, demo keys).
const storyConfig = "examples/northbank/pdp.yaml"

// storyConfigFile returns storyConfig when serve should run it: no
// configuration file is named (--config, $PDP_CONFIG), no bundle is chosen
// (--dir, --git-remote or their environment variables), and the file
// exists. Otherwise it returns "" and serve runs on the embedded defaults
// (the bundle in --dir, authentication off, loopback only).
func storyConfigFile(flags *pflag.FlagSet) (string, error) {
	if file, _ := flags.GetString("config"); file != "" || os.Getenv(configFileEnv) != "" {
		return "", nil
	}
	for _, f := range []struct{ flag, key string }{{"dir", "policy.dir"}, {"git-remote", "policy.git.remote"}} {
		if flags.Changed(f.flag) || os.Getenv(envName(f.key)) != "" {
			return "", nil
		}
	}
	if _, err := os.Stat(storyConfig); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", nil
		}
		return "", err
	}
	return storyConfig, nil
}
