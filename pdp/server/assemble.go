package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/adminlog"
	"github.com/ciampdp/pdp/pdp/api"
	"github.com/ciampdp/pdp/pdp/audit"
	"github.com/ciampdp/pdp/pdp/bundlecheck"
	"github.com/ciampdp/pdp/pdp/changefeed"
	"github.com/ciampdp/pdp/pdp/consent"
	"github.com/ciampdp/pdp/pdp/delegation"
	"github.com/ciampdp/pdp/pdp/ingest"
	"github.com/ciampdp/pdp/pdp/policy"
	"github.com/ciampdp/pdp/pdp/sources"
)

// assemble opens, in order, the policies (with their reloader), the
// relationship store, delegations, consent, the trail with its recorder,
// and the API; each pushes its closing on the cleanup stack. Background
// loops run under bg.
func (s *Server) assemble(ctx, bg context.Context, version string) error {
	cfg, log := s.cfg, s.log
	if s.keys == nil {
		log.Warn("authentication is off: no API keys are configured (auth.api_keys), so anyone who can reach the PDP may ask it; it listens on loopback only",
			"addr", cfg.HTTP.Addr)
	}
	for _, k := range cfg.Auth.DemoKeys() {
		log.Warn("demo key: anyone who reads the README knows it; configure keys of your own (pdp hash-key) before serving anyone",
			"application", k.Application, "auditor", k.Auditor, "key", k.Key)
	}

	// The sidecars' change feed: every policy version put into service,
	// delegation and consent change is published to it.
	changes := changefeed.NewChanges(cfg.HTTP.ChangeLease)
	// With the stores on PostgreSQL, changes go to the feed the replicas
	// share, which brings every replica's changes into changes.
	pub, err := s.openPublisher(ctx, changes, log)
	if err != nil {
		return err
	}
	policyChanged := make(chan struct{}, 1) // coalesces: one publish covers every version since the last
	// Relationship changes that are not this replica's own (another
	// replica's, an import's, an external writer's) arrive through
	// SpiceDB's Watch at every replica: each publishes them to its own
	// feed, coalesced.
	relationsChanged := make(chan struct{}, 1)
	onRelationsChange := func() {
		select {
		case relationsChanged <- struct{}{}:
		default:
		}
	}

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
	s.reloader = reloader
	if err := reloader.Load(ctx); err != nil {
		dirs := rc.Dirs
		if rc.Git != nil {
			dirs = rc.Git.Dirs()
		}
		return fmt.Errorf("policies from %s do not load:\n%w", reloader.Status().Source, Locate(dirs, err))
	}
	select { // the first version is no change to any sidecar
	case <-policyChanged:
	default:
	}
	warnUnknownReporters(reloader.Current(), cfg.Auth.APIKeys, log)
	rctx, stopReload := context.WithCancel(bg)
	var wg sync.WaitGroup
	s.push(wg.Wait)
	s.push(stopReload)
	wg.Go(func() { reloader.Run(rctx) })
	wg.Go(func() {
		for {
			select {
			case <-rctx.Done():
				return
			case <-policyChanged:
				warnUnknownReporters(reloader.Current(), cfg.Auth.APIKeys, log)
				if _, err := pub.Publish(rctx, "policy.activate"); err != nil && rctx.Err() == nil {
					log.Warn("policy change not acknowledged by every sidecar", "error", err)
				}
			case <-relationsChanged:
				if _, err := changes.Publish(rctx, "relations.change"); err != nil && rctx.Err() == nil {
					log.Warn("relationship change not acknowledged by every sidecar", "error", err)
				}
			}
		}
	})

	store, err := openRelations(ctx, cfg.Relations, reloader.Current(), onRelationsChange, log)
	if err != nil {
		return err
	}
	var facts pdp.FactSource
	reg := prometheus.NewRegistry()
	if store != nil {
		s.push(func() { _ = store.Close() })
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
	if auth.close != nil {
		s.push(auth.close)
	}
	for _, c := range auth.collectors() {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register metrics: %w", err)
		}
	}
	// Delegation and consent changes are recorded in the trail before they
	// are applied (the journal records once the trail is open), and
	// published to the change feed once applied.
	journal := &adminlog.Journal{}
	// The PDP's own changes go out as risk signals (signals.outgoing),
	// queued once stored and delivered in the background.
	outgoing, err := openOutgoing(cfg.Signals.Outgoing, cfg.Consent.Path, log)
	if err != nil {
		return err
	}
	var (
		delegationNote delegation.Notifier
		consentNote    consent.Notifier
	)
	if outgoing != nil {
		delegationNote, consentNote = outgoing, outgoing
		octx, stopOutgoing := context.WithCancel(bg)
		outgoingDone := make(chan struct{})
		s.push(func() { stopOutgoing(); <-outgoingDone; _ = outgoing.Close() })
		go func() {
			defer close(outgoingDone)
			outgoing.Run(octx)
		}()
		if err := reg.Register(outgoing.Collector()); err != nil {
			return fmt.Errorf("register metrics: %w", err)
		}
	}
	dsvc, closeDelegations, err := openDelegations(ctx, cfg.Delegations, reloader, store, auth, journal, pub, delegationNote, log)
	if err != nil {
		return err
	}
	s.push(closeDelegations)
	if outgoing != nil && dsvc != nil {
		// A receiver naming an application gets the delegation events
		// of the records it may read, by the rule of GET.
		outgoing.ScopeDelegations(dsvc)
	}
	var (
		delegations pdp.DelegationSource
		admin       api.Delegations
	)
	if dsvc != nil {
		delegations, admin = sources.Delegations{Service: dsvc}, dsvc
	}
	ledger, closeConsent, err := openConsent(ctx, cfg.Consent, reloader, dsvc, auth, journal, pub, consentNote, log)
	if err != nil {
		return err
	}
	s.push(closeConsent)
	if outgoing != nil {
		if ledger != nil {
			// A receiver naming an application gets the consent events
			// it may read, by the rule of the consent read API.
			outgoing.ScopeConsents(ledger, cfg.Consent.AdminApplications)
		}
		// The SETs left in the outbox for such receivers are checked
		// again against the records as they are now, then delivered.
		outgoing.Release(ctx)
	}
	var (
		consents     pdp.ConsentSource
		consentAdmin api.Consents
	)
	if ledger != nil {
		consents, consentAdmin = sources.Consent{Ledger: ledger}, ledger
	}
	dorm, closeDormancy, err := openDormancy(ctx, cfg.Dormancy, cfg.Consent, ledger, dsvc, auth, journal, log)
	if err != nil {
		return err
	}
	s.push(closeDormancy)
	var (
		dormant      pdp.DormancySource
		dormantAdmin api.Dormancy
	)
	if dorm != nil {
		dormant, dormantAdmin = dorm, dormancyAdmin{Service: dorm, bundles: reloader}
	}
	sigCfg := autoSignals(cfg.Signals, cfg.Consent)
	sigs, closeSignals, err := openSignals(ctx, sigCfg, reloader, journal, changes, revalidateOnSignal(reloader, dorm, log), log)
	if err != nil {
		return err
	}
	s.push(closeSignals)
	var (
		signalSource pdp.SignalSource
		signalAPI    api.Signals
	)
	if sigs != nil {
		signalSource, signalAPI = sigs.ledger, sigs
		if err := reg.Register(sigs.received); err != nil {
			return fmt.Errorf("register metrics: %w", err)
		}
		if cfg.Signals.Engine == SignalsPostgres {
			sctx, stopSync := context.WithCancel(bg)
			syncDone := make(chan struct{})
			s.push(func() { stopSync(); <-syncDone })
			go func() {
				defer close(syncDone)
				sigs.runSync(sctx, cfg.Signals.SyncInterval, log)
			}()
		}
	}
	// A block or hold that begins or ends goes to this replica's own feed
	// (the counters are this replica's): its sidecars drop their answers.
	velocity := &pdp.Velocity{MaxKeys: cfg.Signals.VelocityMaxKeys, Feed: changes}
	if err := reg.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "pdp_signals_velocity_dropped_total",
		Help: "Denied decisions velocity rules, and failed step-ups failed step-up rules, did not count because their bound (signals.velocity_max_keys) was reached.",
	}, func() float64 { return float64(velocity.Dropped()) })); err != nil {
		return fmt.Errorf("register metrics: %w", err)
	}
	engine := pdp.NewEngine(pdp.Components{Bundles: reloader, Facts: facts, Delegations: delegations, Consent: consents, Dormancy: dormant,
		Signals: signalSource, Velocity: velocity, Logger: log})
	var (
		decider  pdp.Decider  = engine
		searcher pdp.Searcher = engine
		trailKey string
		auditor  api.Auditor
		auditSvc audit.Service
		adminLog api.AdminRecorder
		ingest   *ingest.Ingest
		// trailHealth stays a nil interface without a trail.
		trailHealth api.TrailHealth
	)
	tr, err := openTrail(ctx, cfg.Trail, engine, version, log)
	if err != nil {
		return err
	}
	if tr != nil {
		// Runs once the server has answered its last request: stop the
		// checkpoint loop, then drain and close (final checkpoint).
		tctx, stopCheckpoints := context.WithCancel(bg)
		checkpointsDone, retentionDone := make(chan struct{}), make(chan struct{})
		s.push(func() {
			stopCheckpoints()
			<-checkpointsDone
			<-retentionDone
			tr.close(log)
		})
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
		if err := checkStores(ctx, tr.log, servedStores(dsvc, ledger, sigs, dorm), owedRevalidations(dorm), tr.recorder, log); err != nil {
			return err
		}
		journal.Set(tr.recorder)
		decider, searcher, trailKey, trailHealth = tr.recorder, tr.recorder, tr.verifier, tr.recorder
		if err := versions.set(ctx, tr.archive, tr.recorder, reloader); err != nil {
			return err
		}
		// The index is built now from the whole trail, then caught up with
		// the new records at each auditor read.
		auditSvc = audit.Service{Trail: tr.log, Archive: tr.archive, Index: audit.NewIndex()}
		if err := buildIndex(ctx, auditSvc, log); err != nil {
			return err
		}
		auditor, adminLog = auditSvc, tr.recorder
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
	if sigs != nil && sigs.background() {
		// After the trail: a polled SET is recorded before it is stored.
		pctx, stopPolls := context.WithCancel(bg)
		pollsDone := make(chan struct{})
		s.push(func() { stopPolls(); <-pollsDone })
		go func() {
			defer close(pollsDone)
			sigs.runPollers(pctx)
		}()
	}
	cons, err := openConsole(cfg, tr, auditSvc, dsvc, ledger, log)
	if err != nil {
		return err
	}
	apiCfg := cfg.HTTP.API(s.keys)
	apiCfg.ShutdownTimeout = DrainTimeout(cfg.HTTP.ShutdownLimit())
	apiCfg.DelegationAdmins = setOf(cfg.Delegations.AdminApplications)
	apiCfg.DelegationReaders = setOf(cfg.Delegations.ReaderApplications)
	apiCfg.ConsentAdmins = setOf(cfg.Consent.AdminApplications)
	apiCfg.SignalAdmins = setOf(cfg.Signals.AdminApplications)
	apiCfg.AuditorKeys = cfg.Auth.Auditors()
	deps := api.Deps{
		Decider: decider, Searcher: searcher, Policies: reloader, Logger: log, Registry: reg, Version: version,
		Delegations: admin,
		Consents:    consentAdmin,
		Dormancy:    dormantAdmin,
		Signals:     signalAPI,
		Transmitter: transmitterAPI(outgoing),
		TrailKey:    trailKey,
		Auditor:     auditor,
		AdminLog:    adminLog,
		Changes:     changes,
		Ingest:      ingest,
		Trail:       trailHealth,
	}
	if cons != nil {
		deps.Console = cons
	}
	srv, err := api.New(apiCfg, deps)
	if err != nil {
		return err
	}
	s.api = srv
	return nil
}

// openIngest readies the ingestion of sidecar records into the trail: it
// scans the trail for the spool positions already stored.
func openIngest(ctx context.Context, tr *openedTrail, log *slog.Logger) (*ingest.Ingest, error) {
	started := time.Now()
	opts := ingest.Options{Logger: log}
	if tr.redactor != nil {
		opts.Redact = tr.redactor.Redact
	}
	in, err := ingest.New(ctx, tr.log, tr.log, opts)
	if err != nil {
		return nil, err
	}
	log.Info("sidecar record ingestion ready", "trail_records", tr.log.Size(), "took", time.Since(started).Round(time.Millisecond))
	return in, nil
}

// Locate rewrites the file names of load errors, which are relative to the
// policies or schema folder, into paths from the working directory, so that
// editors and CI annotations find them. Other errors pass unchanged.
func Locate(d policy.Dirs, err error) error {
	var les policy.LoadErrors
	if !errors.As(err, &les) {
		return err
	}
	out := make(policy.LoadErrors, len(les))
	for i, le := range les {
		c := *le
		for _, root := range []string{d.Policies, d.Schema} {
			if p := filepath.Join(root, filepath.FromSlash(c.File)); c.File != "" && isFile(p) {
				c.File = p
				break
			}
		}
		out[i] = &c
	}
	return out
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}
