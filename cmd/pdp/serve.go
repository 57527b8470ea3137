package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/adminlog"
	"github.com/ciampdp/pdp/pdp/api"
	"github.com/ciampdp/pdp/pdp/audit"
	"github.com/ciampdp/pdp/pdp/bundlecheck"
	"github.com/ciampdp/pdp/pdp/policy"
	"github.com/ciampdp/pdp/pdp/sources"
)

// listeningMsg is the log message that announces the bound address, once
// the server accepts connections: what scripts (and the tests) wait for.
const listeningMsg = "listening"

func serveCommand() *command {
	return &command{
		name:    "serve",
		summary: "serve the AuthZEN API over a policy bundle, hot-reloaded from a folder or a Git remote",
		flags:   addConfigFlags,
		run:     runServe,
	}
}

func runServe(ctx context.Context, std stdio, fs *pflag.FlagSet, args []string) error {
	if len(args) > 0 {
		return usagef("serve takes no arguments (the bundle root is --dir): %q", args)
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
	// SIGINT and SIGTERM stop serve within http.shutdown_timeout, whatever
	// hangs: in-flight requests get drainTimeout of it, closing the rest.
	return boundShutdown(ctx, cfg.HTTP.shutdownTimeout(), log, func() error { return serve(ctx, cfg, v, log) })
}

// serve runs the PDP until ctx is done.
func serve(ctx context.Context, cfg Config, v *viper.Viper, log *slog.Logger) error {
	build := readBuild()
	start := []any{"version", build.Version, "go", build.GoVersion}
	if build.Revision != "" {
		start = append(start, "revision", build.Revision, "modified", build.Modified)
	}
	log.Info("pdp starting", start...)
	keys := cfg.Auth.Keys()
	if keys == nil {
		log.Warn("authentication is off: no API keys are configured (auth.api_keys), so anyone who can reach the PDP may ask it; it listens on loopback only",
			"addr", cfg.HTTP.Addr)
	}
	if v.InConfig("policy.git.password") && cfg.Policy.Git.Password != "" {
		log.Warn("policy.git.password is set in the configuration file; prefer the environment variable " + envName("policy.git.password"))
	}

	// The sidecars' change feed: every policy version put into service,
	// delegation and consent change is published to it.
	changes := api.NewChanges(cfg.HTTP.ChangeLease)
	policyChanged := make(chan struct{}, 1) // coalesces: one publish covers every version since the last

	// Policies: the first version must load, later ones are hot-reloaded.
	var (
		schemaWriter zedWriter
		versions     policyRecorder
	)
	rc := policy.ReloaderConfig{Interval: cfg.Policy.ReloadInterval, Logger: log,
		// Called under the reloader's lock: everything it needs of the
		// reloader comes in c (calling back would deadlock).
		Prepare: func(ctx context.Context, b *policy.Bundle, c policy.Candidate) error {
			// The checks `pdp validate` makes: a version that fails them
			// never serves, at start or on a reload.
			if err := bundlecheck.Err(b); err != nil {
				return err
			}
			if err := schemaWriter.write(ctx, b); err != nil {
				return err
			}
			return versions.write(ctx, b, c.Source)
		},
		// Called under the reloader's lock: publish (which waits for the
		// sidecars) from a goroutine of its own.
		OnChange: func(policy.Version) {
			select {
			case policyChanged <- struct{}{}:
			default:
			}
		}}
	if cfg.Policy.Git.Enabled() {
		// The checkout changes only when the PDP pulls, and a pull reloads.
		rc.Git, rc.Interval = cfg.Policy.Git.Policy(), 0
	} else {
		rc.Dirs = policy.DirsFor(cfg.Policy.Dir)
	}
	reloader := policy.NewReloader(rc)
	if err := reloader.Load(ctx); err != nil {
		dirs := rc.Dirs
		if rc.Git != nil {
			dirs = rc.Git.Dirs()
		}
		return fmt.Errorf("policies from %s do not load:\n%w", reloader.Status().Source, locate(dirs, err))
	}
	select { // the first version is no change to any sidecar
	case <-policyChanged:
	default:
	}
	rctx, stopReload := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stopReload()
	wg.Go(func() { reloader.Run(rctx) })
	wg.Go(func() {
		for {
			select {
			case <-rctx.Done():
				return
			case <-policyChanged:
				if _, err := changes.Publish(rctx, "policy.activate"); err != nil && rctx.Err() == nil {
					log.Warn("policy change not acknowledged by every sidecar", "error", err)
				}
			}
		}
	})

	store, err := openRelations(ctx, cfg.Relations, reloader.Current(), log)
	if err != nil {
		return err
	}
	var facts pdp.FactSource
	reg := prometheus.NewRegistry()
	if store != nil {
		defer store.Close()
		schemaWriter.set(store, reloader, log)
		schemaWriter.sync(ctx)
		if err := bootstrapRelations(ctx, store, cfg.Relations.Bootstrap, log); err != nil {
			return err
		}
		facts = sources.Facts{Store: store}
		if c := store.Cache(); c != nil {
			if err := reg.Register(c); err != nil {
				return fmt.Errorf("register metrics: %w", err)
			}
		}
	}
	auth, err := openAuthority(ctx, cfg, log)
	if err != nil {
		return err
	}
	// Delegation and consent changes are recorded in the trail before they
	// are applied; the journal records once the trail is open.
	journal := &adminlog.Journal{}
	dsvc, closeDelegations, err := openDelegations(ctx, cfg.Delegations, reloader, store, auth, journal, log)
	if err != nil {
		return err
	}
	defer closeDelegations()
	var (
		delegations pdp.DelegationSource
		admin       api.Delegations
	)
	if dsvc != nil {
		delegations, admin = sources.Delegations{Service: dsvc}, dsvc
	}
	ledger, closeConsent, err := openConsent(ctx, cfg.Consent, reloader, dsvc, auth, journal, log)
	if err != nil {
		return err
	}
	defer closeConsent()
	var (
		consents     pdp.ConsentSource
		consentAdmin api.Consents
	)
	if ledger != nil {
		consents, consentAdmin = sources.Consent{Ledger: ledger}, ledger
	}
	engine := pdp.NewEngine(pdp.Components{Bundles: reloader, Facts: facts, Delegations: delegations, Consent: consents, Logger: log})
	var (
		decider  pdp.Decider  = engine
		searcher pdp.Searcher = engine
		trailKey string
		auditor  api.Auditor
		adminLog api.AdminRecorder
		ingest   *api.Ingest
		// trailHealth stays a nil interface without a trail.
		trailHealth api.TrailHealth
	)
	tr, err := openTrail(ctx, cfg.Trail, engine, build.Version, log)
	if err != nil {
		return err
	}
	if tr != nil {
		// Runs once the server has answered its last request: stop the
		// checkpoint loop, then drain and close (final checkpoint).
		tctx, stopCheckpoints := context.WithCancel(ctx)
		checkpointsDone, retentionDone := make(chan struct{}), make(chan struct{})
		defer func() {
			stopCheckpoints()
			<-checkpointsDone
			<-retentionDone
			tr.close(log)
		}()
		go func() {
			defer close(retentionDone)
			runRetention(tctx, cfg.Trail, tr, log)
		}()
		go func() {
			defer close(checkpointsDone)
			if err := tr.log.Run(tctx); err != nil {
				log.Error("decision trail: no more checkpoints until restart", "error", err)
			}
		}()
		if err := checkStores(ctx, tr.log, dsvc, ledger, log); err != nil {
			return err
		}
		journal.Set(tr.recorder)
		decider, searcher, trailKey, trailHealth = tr.recorder, tr.recorder, tr.verifier, tr.recorder
		if err := versions.set(ctx, tr.archive, tr.recorder, reloader); err != nil {
			return err
		}
		auditor, adminLog = audit.Service{Trail: tr.log, Archive: tr.archive}, tr.recorder
		if ingest, err = openIngest(ctx, tr, log); err != nil {
			return err
		}
		if err := reg.Register(tr.recorder); err != nil {
			return fmt.Errorf("register metrics: %w", err)
		}
		if err := reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pdp_trail_checkpoint_failing",
			Help: "1 while the latest periodic checkpoint of the decision trail failed (records stay unanchored), else 0.",
		}, func() float64 {
			if tr.log.LastCheckpointError() != nil {
				return 1
			}
			return 0
		})); err != nil {
			return fmt.Errorf("register metrics: %w", err)
		}
	}
	for _, c := range []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewBuildInfoCollector(),
	} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register metrics: %w", err)
		}
	}
	apiCfg := cfg.HTTP.API(keys)
	apiCfg.ShutdownTimeout = drainTimeout(cfg.HTTP.shutdownTimeout())
	apiCfg.DelegationAdmins = setOf(cfg.Delegations.AdminApplications)
	apiCfg.ConsentAdmins = setOf(cfg.Consent.AdminApplications)
	apiCfg.AuditorKeys = cfg.Auth.Auditors()
	srv, err := api.New(apiCfg, api.Deps{
		Decider: decider, Searcher: searcher, Policies: reloader, Logger: log, Registry: reg, Version: build.Version,
		Delegations: admin,
		Consents:    consentAdmin,
		TrailKey:    trailKey,
		Auditor:     auditor,
		AdminLog:    adminLog,
		Changes:     changes,
		Ingest:      ingest,
		Trail:       trailHealth,
	})
	if err != nil {
		return err
	}

	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.HTTP.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if keys == nil && !isLoopbackAddr(ln.Addr()) {
		// "localhost" resolved to something else: refuse all the same.
		_ = ln.Close()
		return fmt.Errorf("bound to %s: %w", ln.Addr(), ErrInsecureAddr)
	}
	st := reloader.Status()
	log.Info(listeningMsg,
		"addr", ln.Addr().String(),
		"url", serverURL(cfg.HTTP, ln.Addr()),
		"policy_version", st.Active.Hash,
		"policy_commit", st.Active.Commit,
		"policies", st.Policies,
		"source", st.Source,
		"authentication", len(keys) > 0)
	if err := srv.Serve(ctx, ln); err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}

// openIngest readies the ingestion of sidecar records into the trail: it
// scans the trail for the spool positions already stored.
func openIngest(ctx context.Context, tr *openedTrail, log *slog.Logger) (*api.Ingest, error) {
	started := time.Now()
	opts := api.IngestOptions{Logger: log}
	if tr.redactor != nil {
		opts.Redact = tr.redactor.Redact
	}
	in, err := api.NewIngest(ctx, tr.log, tr.log, opts)
	if err != nil {
		return nil, err
	}
	log.Info("sidecar record ingestion ready", "trail_records", tr.log.Size(), "took", time.Since(started).Round(time.Millisecond))
	return in, nil
}

// newLogger builds the process logger; the configuration is validated.
func newLogger(w io.Writer, c LogConfig) *slog.Logger {
	lv, _ := c.level()
	opts := &slog.HandlerOptions{Level: lv}
	if c.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func isLoopbackAddr(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// serverURL is where the AuthZEN endpoints are: the public URL when one is
// configured, else the bound address.
func serverURL(h HTTPConfig, a net.Addr) string {
	if h.PublicURL != "" {
		return h.PublicURL + h.BasePath
	}
	return "http://" + a.String() + h.BasePath
}

// locate rewrites the file names of load errors, which are relative to the
// policies or schema folder, into paths from the working directory, so that
// editors and CI annotations find them. Other errors pass unchanged.
func locate(d policy.Dirs, err error) error {
	var les policy.LoadErrors
	if !errors.As(err, &les) {
		return err
	}
	out := make(policy.LoadErrors, len(les))
	for i, le := range les {
		c := *le
		for _, root := range []string{d.Policies, d.Schema} {
			if p := joinPath(root, c.File); c.File != "" && isFile(p) {
				c.File = p
				break
			}
		}
		out[i] = &c
	}
	return out
}
