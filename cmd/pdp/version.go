package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
	"unicode"

	"github.com/spf13/pflag"
)

// build is what the binary knows about its own build.
type build struct {
	Version   string // module version: v1.2.3 when installed from a tag, (devel) from a checkout
	Revision  string // VCS commit, when the build recorded it
	Modified  bool   // the work tree had uncommitted changes
	GoVersion string
}

func readBuild() build {
	b := build{Version: "(devel)", GoVersion: runtime.Version()}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	if v := info.Main.Version; v != "" {
		b.Version = v
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

func versionCommand() *command {
	return &command{
		name:    "version",
		summary: "print the build version, commit and Go version",
		run: func(_ context.Context, std stdio, _ *pflag.FlagSet, args []string) error {
			if len(args) > 0 {
				return usagef("version takes no arguments")
			}
			b := readBuild()
			fmt.Fprintf(std.out, "pdp %s\n", b.Version)
			if b.Revision != "" {
				mod := ""
				if b.Modified {
					mod = " (modified)"
				}
				fmt.Fprintf(std.out, "commit: %s%s\n", b.Revision, mod)
			}
			fmt.Fprintf(std.out, "go: %s %s/%s\n", b.GoVersion, runtime.GOOS, runtime.GOARCH)
			return nil
		},
	}
}

// maxKeyLen bounds what hash-key reads.
const maxKeyLen = 4096

// minKeyLen is the shortest key hash-key accepts without a warning.
const minKeyLen = 32

func hashKeyCommand() *command {
	return &command{
		name:    "hash-key",
		summary: "read an API key from stdin and print its hex SHA-256, the form auth.api_keys holds",
		flags: func(fs *pflag.FlagSet) {
			fs.String("application", "", "print a ready auth.api_keys entry for this application id instead")
		},
		run: runHashKey,
	}
}

func runHashKey(_ context.Context, std stdio, fs *pflag.FlagSet, args []string) error {
	if len(args) > 0 {
		return usagef("hash-key reads the key from stdin and takes no arguments (a key on the command line ends up in shell history)")
	}
	data, err := io.ReadAll(io.LimitReader(std.in, maxKeyLen+1))
	if err != nil {
		return fmt.Errorf("read key: %w", err)
	}
	if len(data) > maxKeyLen {
		return fmt.Errorf("the key is longer than %d bytes", maxKeyLen)
	}
	// The server trims the Authorization header the same way.
	key := strings.TrimSpace(string(data))
	switch {
	case key == "":
		return errors.New("no key on stdin; for example: openssl rand -hex 32 | tee key.txt | pdp hash-key")
	case strings.IndexFunc(key, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		return errors.New("the key contains white space or control characters; an API key is one token")
	}
	if len(key) < minKeyLen {
		fmt.Fprintf(std.err, "warning: the key has only %d characters; use at least %d random ones (openssl rand -hex 32)\n", len(key), minKeyLen)
	}
	sum := sha256.Sum256([]byte(key))
	digest := hex.EncodeToString(sum[:])
	if app, _ := fs.GetString("application"); app != "" {
		fmt.Fprintf(std.out, "- {application: %q, sha256: %s}\n", app, digest)
		return nil
	}
	fmt.Fprintln(std.out, digest)
	return nil
}
