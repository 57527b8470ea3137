package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/spf13/pflag"

	pdpserver "github.com/ciampdp/pdp/pdp/server"
)

// listeningMsg announces the bound address (pdpserver.ListeningMsg).
const listeningMsg = pdpserver.ListeningMsg

func serveCommand() *command {
	return &command{
		name:    "serve",
		summary: "serve the AuthZEN API over a policy bundle, hot-reloaded from a folder or a Git remote",
		flags:   addConfigFlags,
		run:     runServe,
	}
}

// runServe loads the configuration, opens the server and runs it until ctx
// is done; whatever hangs then is abandoned after http.shutdown_timeout.
func runServe(ctx context.Context, std stdio, fs *pflag.FlagSet, args []string) error {
	if len(args) > 0 {
		return usagef("serve takes no arguments (the bundle root is --dir): %q", args)
	}
	story, err := storyConfigFile(fs)
	if err != nil {
		return err
	}
	if story != "" {
		if err := fs.Set("config", story); err != nil {
			return err
		}
	}
	cfg, v, warnings, err := loadConfigWarn(fs)
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid configuration: %w", err)
	}
	log := newLogger(std.err, cfg.Log)
	warnDeprecated(log, warnings)
	build := readBuild()
	start := []any{"version", build.Version, "go", build.GoVersion}
	if build.Revision != "" {
		start = append(start, "revision", build.Revision, "modified", build.Modified)
	}
	log.Info("pdp starting", start...)
	if story != "" {
		log.Info("no configuration given: serving the Northbank example, "+story+" (--config, --dir or --git-remote serves something else)",
			"config", story)
	}
	if v.InConfig("policy.git.password") && cfg.Policy.Git.Password != "" {
		log.Warn("policy.git.password is set in the configuration file; prefer the environment variable " + envName("policy.git.password"))
	}
	return pdpserver.BoundShutdown(ctx, cfg.HTTP.ShutdownLimit(), log, func() error {
		s, err := pdpserver.Open(ctx, cfg, pdpserver.Options{Logger: log, Version: build.Version})
		if err != nil {
			return err
		}
		return s.Run(ctx)
	})
}

// newLogger builds the process logger; the configuration is validated.
func newLogger(w io.Writer, c pdpserver.LogConfig) *slog.Logger {
	lv, _ := c.SlogLevel()
	opts := &slog.HandlerOptions{Level: lv}
	if c.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
