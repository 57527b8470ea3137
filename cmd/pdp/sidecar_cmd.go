package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	pdpserver "github.com/ciampdp/pdp/pdp/server"
	"github.com/ciampdp/pdp/sidecar"
)

// sidecarEnvPrefix starts the sidecar's environment variables.
const sidecarEnvPrefix = "PDP_SIDECAR"

// sidecarListeningMsg announces the sidecar's bound address in its log.
const sidecarListeningMsg = "sidecar listening"

// ErrSidecarAddr: the sidecar listens on loopback or a Unix socket only.
var ErrSidecarAddr = errors.New("the sidecar listens on a loopback address or a Unix socket (unix:/path) only: it asks the central PDP with its application's key on behalf of whoever reaches it")

func sidecarCommand() *command {
	return &command{
		name:    "sidecar",
		summary: "run beside an application: the AuthZEN API and gateway adapters on localhost, a cache that never outlives a change, answers spooled to the central trail",
		flags: func(fs *pflag.FlagSet) {
			fs.String("config", "", "the sidecar's YAML configuration (env "+sidecarEnvPrefix+"_CONFIG)")
			fs.String("listen", "", "listen address, 127.0.0.1:8181 or unix:/path (key listen)")
			fs.String("central-url", "", "the central PDP's URL, or a comma-separated list of its replicas (key central_url)")
			fs.String("log-format", "json", "log format: json or text")
		},
		run: runSidecar,
	}
}

// loadSidecarConfig resolves the sidecar's configuration: defaults, the
// file, PDP_SIDECAR_* environment variables (PDP_SIDECAR_API_KEY, …), flags.
func loadSidecarConfig(fs *pflag.FlagSet) (sidecar.Config, error) {
	v := viper.New()
	for key, def := range settings(sidecar.DefaultConfig()) {
		v.SetDefault(key, def)
	}
	v.SetEnvPrefix(sidecarEnvPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	file, _ := fs.GetString("config")
	if file == "" {
		file = os.Getenv(sidecarEnvPrefix + "_CONFIG")
	}
	if file != "" {
		v.SetConfigFile(file)
		if ext := strings.ToLower(strings.TrimPrefix(filepath.Ext(file), ".")); !slices.Contains(viper.SupportedExts, ext) {
			v.SetConfigType("yaml")
		}
		if err := v.ReadInConfig(); err != nil {
			return sidecar.Config{}, fmt.Errorf("read config %s: %w", file, err)
		}
	}
	for flag, key := range map[string]string{"listen": "listen", "central-url": "central_url"} {
		if f := fs.Lookup(flag); f != nil && f.Changed {
			v.Set(key, f.Value.String())
		}
	}
	var c sidecar.Config
	if err := v.UnmarshalExact(&c, viper.DecodeHook(decodeHook)); err != nil {
		return c, fmt.Errorf("sidecar configuration: %w", err)
	}
	return c, c.Validate()
}

func runSidecar(ctx context.Context, std stdio, fs *pflag.FlagSet, args []string) error {
	if len(args) > 0 {
		return usagef("sidecar takes no arguments: %q", args)
	}
	cfg, err := loadSidecarConfig(fs)
	if err != nil {
		return err
	}
	format, _ := fs.GetString("log-format")
	log := newLogger(std.err, pdpserver.LogConfig{Format: format, Level: "info"})
	// SIGINT and SIGTERM stop the sidecar within shutdown_timeout, whatever
	// hangs (a central PDP that stopped answering, say).
	return pdpserver.BoundShutdown(ctx, cfg.ShutdownTimeout, log, func() error { return serveSidecar(ctx, cfg, log) })
}

// serveSidecar runs the sidecar until ctx is done.
func serveSidecar(ctx context.Context, cfg sidecar.Config, log *slog.Logger) error {
	ln, err := listenSidecar(ctx, cfg.Listen)
	if err != nil {
		return err
	}
	sc, err := sidecar.New(cfg, log)
	if err != nil {
		_ = ln.Close()
		return err
	}
	defer func() {
		if err := sc.Close(); err != nil {
			log.Error("sidecar spool: close", "error", err)
		}
	}()
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	if cfg.PprofAddr != "" {
		if err := pdpserver.ServeProfiles(rctx, cfg.PprofAddr, log); err != nil {
			_ = ln.Close()
			return fmt.Errorf("sidecar: %w", err)
		}
	}
	runDone := make(chan struct{})
	go func() { defer close(runDone); sc.Run(rctx) }()
	// Requests run under base, cancelled when their share of the shutdown
	// timeout is over: one waiting on the central PDP then fails closed.
	base, cancelBase := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelBase()
	srv := &http.Server{Handler: sc.Handler(), ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 90 * time.Second,
		BaseContext: func(net.Listener) context.Context { return base }}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	log.Info(sidecarListeningMsg, "addr", ln.Addr().String(), "central", cfg.CentralURL, "sidecar", sc.ID(),
		"cache_size", cfg.CacheSize, "spool", cfg.SpoolDir, "gateway_routes", len(cfg.Gateway.Routes))
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		stop()
		<-runDone
		return fmt.Errorf("sidecar: %w", err)
	}
	stop() // the change feed and the shipper stop now
	sctx, cancel := context.WithTimeout(context.Background(), pdpserver.DrainTimeout(cfg.ShutdownTimeout))
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		cancelBase()
		_ = srv.Close()
		log.Warn("sidecar: requests still in flight at the shutdown timeout were cut", "error", err)
	}
	<-runDone
	return nil
}

func listenSidecar(ctx context.Context, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		_ = os.Remove(path) // a stale socket from a previous run
		ln, err := lc.Listen(ctx, "unix", path)
		if err != nil {
			return nil, fmt.Errorf("listen %s: %w", addr, err)
		}
		// The socket's permissions are its access control (no credential
		// is asked on it): the sidecar's user and group only.
		if err := os.Chmod(path, 0o660); err != nil {
			_ = ln.Close()
			return nil, fmt.Errorf("listen %s: restrict the socket to its user and group: %w", addr, err)
		}
		return ln, nil
	}
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	if !pdpserver.IsLoopbackAddr(ln.Addr()) {
		_ = ln.Close()
		return nil, fmt.Errorf("bound to %s: %w", ln.Addr(), ErrSidecarAddr)
	}
	return ln, nil
}
