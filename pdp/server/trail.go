package server

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/audit"
	"github.com/ciampdp/pdp/pdp/policy"
	"github.com/ciampdp/pdp/pdp/recorder"
	"github.com/ciampdp/pdp/pdp/trail"
	"github.com/ciampdp/pdp/pdp/trail/pgtrail"
)

// Modes of the decision trail (trail.mode).
const (
	TrailSync  = recorder.ModeSync
	TrailAsync = recorder.ModeAsync
	TrailOff   = "off"
)

// Stores of the decision trail (trail.store).
const (
	TrailFile     = "file"
	TrailPostgres = "postgres"
)

// Sentinel errors of TrailConfig.Validate.
var (
	ErrTrailMode     = errors.New("trail.mode must be sync, async or off")
	ErrTrailWhenFull = errors.New("trail.when_full must be block or deny")
	ErrTrailDir      = errors.New("trail.dir must not be empty")
	ErrTrailStore    = errors.New("trail.store must be file, or postgres with trail.postgres_url")
	ErrTrailBuffer   = errors.New("trail.buffer must be positive")
	ErrTrailFlush    = errors.New("must be between 0 and 1s")
	ErrTrailInterval = errors.New("trail.checkpoint_interval must be positive")
	ErrTrailOrigin   = errors.New("trail.origin must be one line without '+' or white space")
	// ErrTrailCompression: trail.compression is not s2, zstd or off.
	ErrTrailCompression = errors.New("trail.compression must be s2, zstd or off")
	// ErrTrailLocked: another process (or server) has the trail directory
	// open; the FileLog's opener takes the lock.
	ErrTrailLocked = trail.ErrLocked
)

// archiveDirName is the policy archive's folder inside a trail directory.
const archiveDirName = "policies"

// TrailKeyFile is the generated signing key, next to the log.
const TrailKeyFile = "trail.key"

// TrailConfig is the decision trail: where records go and how durably.
type TrailConfig struct {
	Mode string `mapstructure:"mode"`
	// Store is where records go: file (Dir, one process) or postgres (one
	// chain that every replica appends to).
	Store          string `mapstructure:"store"`
	PostgresURL    string `mapstructure:"postgres_url"`
	PostgresSchema string `mapstructure:"postgres_schema"`
	Dir            string `mapstructure:"dir"`
	Buffer         int    `mapstructure:"buffer"`
	// FlushInterval (async) is how long the trail's writer gathers
	// buffered records into one write and fsync after the first of them.
	FlushInterval      time.Duration `mapstructure:"flush_interval"`
	WhenFull           string        `mapstructure:"when_full"`
	CheckpointInterval time.Duration `mapstructure:"checkpoint_interval"`
	// Compression is how either store keeps new records: s2 (the
	// default) or zstd (each record compressed on its own with a
	// dictionary the trail gathers from its first records and stores as a
	// record; zstd is smaller, s2 several times cheaper in CPU) or off.
	// The Merkle tree is of the uncompressed records either way, and
	// records stored any way stay readable. The PostgreSQL trail has one
	// dictionary, made by the first replica to gather one, whatever the
	// codec of the others.
	Compression string `mapstructure:"compression"`
	// SigningKeyFile holds a signed-note Ed25519 private key
	// ("PRIVATE+KEY+…", as note.GenerateKey writes it); without one, Dir's
	// trail.key is used, made at the first start.
	SigningKeyFile string `mapstructure:"signing_key_file"`
	Origin         string `mapstructure:"origin"`
	// WitnessFile, if set, is a file the PDP appends each new checkpoint
	// to, for 'pdp log verify --witness' (witness.go).
	WitnessFile string `mapstructure:"witness_file"`
	// Retention is how long records of each kind (decision, search, admin)
	// are kept; a kind absent or at 0 is kept forever. Older records become
	// tombstones that keep their place in the Merkle tree, so what remains
	// still verifies. RetentionInterval is how often it is applied.
	Retention         map[string]time.Duration `mapstructure:"retention"`
	RetentionInterval time.Duration            `mapstructure:"retention_interval"`
	// Redact lists fields stored as keyed hashes (method hash, under the
	// key in RedactKeyFile, made at first start when absent) or encrypted
	// to the auditors (method encrypt, to AuditorRecipients, age X25519).
	Redact            []trail.RedactionRule `mapstructure:"redact"`
	RedactKeyFile     string                `mapstructure:"redact_key_file"`
	AuditorRecipients []string              `mapstructure:"auditor_recipients"`
}

// Record kinds a retention rule may name.
var retentionKinds = []string{recorder.KindDecision, recorder.KindSearch, recorder.KindAdmin}

// ErrTrailRetention: a retention rule names an unknown kind or a negative time.
var ErrTrailRetention = errors.New("trail.retention maps decision, search or admin to a duration (0: forever)")

// redactKeyFile is the generated redaction hash key, next to the log.
const redactKeyFile = "redact.key"

// retentionRules is the Retention map as the trail takes it.
func (c TrailConfig) retentionRules() []trail.RetentionRule {
	var rules []trail.RetentionRule
	for _, kind := range retentionKinds {
		if keep := c.Retention[kind]; keep > 0 {
			rules = append(rules, trail.RetentionRule{Kind: kind, Keep: keep})
		}
	}
	return rules
}

// DefaultTrail is sync, in ./pdp-data/trail, a checkpoint every second
// while the trail grows (records stay unanchored about a second).
func DefaultTrail() TrailConfig {
	return TrailConfig{
		Mode: TrailSync, Store: TrailFile, PostgresSchema: "public", Dir: filepath.Join("pdp-data", "trail"), Buffer: recorder.DefaultBuffer,
		FlushInterval: recorder.DefaultFlushInterval,
		WhenFull:      recorder.FullBlock, CheckpointInterval: trail.DefaultCheckpointInterval, Origin: "pdp/trail",
		RetentionInterval: time.Hour, Compression: trail.CompressionS2,
	}
}

// Validate checks the section.
func (c TrailConfig) Validate() error {
	switch c.Mode {
	case TrailOff:
		return nil
	case TrailSync, TrailAsync:
	default:
		return fmt.Errorf("%q: %w", c.Mode, ErrTrailMode)
	}
	switch {
	case c.Store != TrailFile && c.Store != TrailPostgres:
		return fmt.Errorf("%q: %w", c.Store, ErrTrailStore)
	case c.Store == TrailPostgres && c.PostgresURL == "":
		return fmt.Errorf("trail.postgres_url: %w", ErrTrailStore)
	case c.Store == TrailPostgres && c.SigningKeyFile == "":
		return fmt.Errorf("trail.signing_key_file must be set with trail.store postgres: every replica signs the shared chain's checkpoints with the same key: %w", ErrTrailStore)
	case c.Dir == "":
		return ErrTrailDir
	case c.WhenFull != recorder.FullBlock && c.WhenFull != recorder.FullDeny:
		return fmt.Errorf("%q: %w", c.WhenFull, ErrTrailWhenFull)
	case c.Buffer <= 0:
		return fmt.Errorf("%d: %w", c.Buffer, ErrTrailBuffer)
	case c.FlushInterval < 0 || c.FlushInterval > time.Second:
		return fmt.Errorf("trail.flush_interval %v: %w", c.FlushInterval, ErrTrailFlush)
	case c.CheckpointInterval <= 0:
		return fmt.Errorf("%v: %w", c.CheckpointInterval, ErrTrailInterval)
	case c.Origin == "" || strings.ContainsAny(c.Origin, "+\n\r\t "):
		return fmt.Errorf("%q: %w", c.Origin, ErrTrailOrigin)
	case c.Compression != trail.CompressionS2 && c.Compression != trail.CompressionZstd && c.Compression != trail.CompressionOff:
		return fmt.Errorf("%q: %w", c.Compression, ErrTrailCompression)
	case len(c.Retention) > 0 && c.RetentionInterval <= 0:
		return fmt.Errorf("trail.retention_interval %v: %w", c.RetentionInterval, ErrTrailInterval)
	}
	for kind, keep := range c.Retention {
		if !slices.Contains(retentionKinds, kind) || keep < 0 {
			return fmt.Errorf("%s: %v: %w", kind, keep, ErrTrailRetention)
		}
	}
	return nil
}

// TrailStore is what serve and the auditor commands need of a trail
// store: *trail.FileLog or *pgtrail.Log.
type TrailStore interface {
	recorder.Appender
	Size() uint64
	Scan(from, to uint64, fn func(trail.Record) error) error
	Run(ctx context.Context) error
	LastCheckpointError() error
	Close() error
	Checkpoints() [][]byte
	Verify(ctx context.Context, verifierKey string, from, to uint64) (trail.Report, error)
	Prove(seq uint64, checkpoint []byte) (trail.Proof, error)
	// CheckWitnessed checks checkpoints kept outside the trail (a witness
	// file) against it: one error per checkpoint, nil for one that holds.
	CheckWitnessed(ctx context.Context, verifierKey string, witnessed [][]byte) ([]error, error)
	ApplyRetention(ctx context.Context, rules []trail.RetentionRule, now time.Time) (map[string]int, error)
}

// PolicyArchive keeps every served policy version: *audit.DirArchive or
// *audit.PostgresArchive.
type PolicyArchive interface {
	Put(b *policy.Bundle) error
	Get(hash string) (*policy.Bundle, error)
}

var (
	_ TrailStore = (*trail.FileLog)(nil)
	_ TrailStore = (*pgtrail.Log)(nil)
)

// openedTrail is the running trail of 'pdp serve'.
type openedTrail struct {
	log      TrailStore
	archive  PolicyArchive
	recorder *recorder.Recorder
	redactor *trail.Redactor // nil without trail.redact
	verifier string          // the checkpoints' verifier key
	unlock   func()
}

// close drains the recorder, then closes the log (writing a final
// checkpoint) and so releases the directory.
func (t *openedTrail) close(log *slog.Logger) {
	if err := t.recorder.Close(); err != nil {
		log.Error("decision trail: records were lost", "error", err)
	}
	if err := t.log.Close(); err != nil {
		log.Error("decision trail: close", "error", err)
	}
	t.unlock()
}

// reservingDecider is what the Recorder wraps when serving: a decider
// whose changes to the velocity and step-up counts wait for the records
// (a wrapper put between the engine and the trail must pass them on, or
// this does not compile, rather than counting at once unnoticed).
type reservingDecider interface {
	pdp.Decider
	pdp.Reserver
}

// openTrail opens the trail for serving and wraps inner in a Recorder;
// nil when the trail is off.
func openTrail(ctx context.Context, cfg TrailConfig, inner reservingDecider, build string, log *slog.Logger) (_ *openedTrail, err error) {
	if cfg.Mode == TrailOff {
		log.Warn("decision trail off (trail.mode: off): decisions are not recorded")
		return nil, nil
	}
	var closers []func()
	defer func() {
		if err != nil {
			for i := len(closers) - 1; i >= 0; i-- {
				closers[i]()
			}
		}
	}()
	if cfg.Store != TrailPostgres {
		// The signing key may be generated into the directory; the
		// FileLog's opener locks it.
		if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
			return nil, fmt.Errorf("trail: %w", err)
		}
	}
	skey, generated, err := trailSigningKey(cfg)
	if err != nil {
		return nil, err
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		return nil, fmt.Errorf("trail signing key: %w", err)
	}
	vkey, err := VerifierKey(skey)
	if err != nil {
		return nil, err
	}
	t := &openedTrail{verifier: vkey, unlock: func() {}}
	where := cfg.Dir
	if cfg.Store == TrailPostgres {
		where = "postgres schema " + cfg.PostgresSchema
		pl, err := pgtrail.Open(ctx, cfg.PostgresURL, pgtrail.Options{Origin: cfg.Origin, Signer: signer, VerifierKey: vkey,
			CheckpointInterval: cfg.CheckpointInterval, Schema: cfg.PostgresSchema, Compression: cfg.Compression, Logger: log})
		if err != nil {
			return nil, err
		}
		closers = append(closers, func() { _ = pl.Close() })
		ar, err := audit.OpenPostgresArchive(ctx, cfg.PostgresURL, cfg.PostgresSchema)
		if err != nil {
			return nil, err
		}
		closers = append(closers, ar.Close)
		t.log, t.archive = pl, ar
		t.unlock = ar.Close
	} else {
		fl, err := trail.OpenFile(cfg.Dir, trail.FileOptions{Origin: cfg.Origin, Signer: signer, CheckpointInterval: cfg.CheckpointInterval,
			Compression: cfg.Compression})
		if err != nil {
			return nil, err
		}
		closers = append(closers, func() { _ = fl.Close() })
		if err := fl.Damaged(); err != nil {
			return nil, fmt.Errorf("the decision trail in %s fails its checks (run 'pdp log verify --dir %s'): %w", cfg.Dir, cfg.Dir, err)
		}
		rc := fl.Recovery()
		if rc.TruncatedBytes > 0 || rc.RebuiltHashes > 0 {
			log.Info("decision trail repaired on open", "truncated_bytes", rc.TruncatedBytes, "rebuilt_hashes", rc.RebuiltHashes)
		}
		ar, err := audit.OpenDirArchive(filepath.Join(cfg.Dir, archiveDirName))
		if err != nil {
			return nil, err
		}
		t.log, t.archive = fl, ar
	}
	host, _ := os.Hostname()
	instance := fmt.Sprintf("%s-%d-%s", host, os.Getpid(), instanceSuffix())
	redactor, err := openRedactor(cfg)
	if err != nil {
		return nil, err
	}
	t.redactor = redactor
	t.recorder, err = recorder.NewRecorder(inner, t.log, recorder.RecorderOptions{
		Mode: cfg.Mode, Buffer: cfg.Buffer, WhenFull: cfg.WhenFull, FlushInterval: flushInterval(cfg.FlushInterval),
		Instance: instance, Build: build, Logger: log, Redactor: redactor,
	})
	if err != nil {
		return nil, err
	}
	// After the recorder, which takes the store itself.
	if t.log, err = witnessStore(t.log, cfg, vkey, log); err != nil {
		return nil, err
	}
	log.Info("decision trail open", "mode", cfg.Mode, "store", cfg.Store, "at", where, "records", t.log.Size(),
		"verifier_key", vkey, "generated_key", generated, "instance", instance)
	return t, nil
}

// trailSigningKey reads the configured key, else Dir/trail.key, made (0600)
// when absent.
func trailSigningKey(cfg TrailConfig) (skey string, generated bool, err error) {
	path := cfg.SigningKeyFile
	if path == "" {
		path = filepath.Join(cfg.Dir, TrailKeyFile)
	}
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		return strings.TrimSpace(string(data)), false, nil
	case !errors.Is(err, os.ErrNotExist) || cfg.SigningKeyFile != "":
		return "", false, fmt.Errorf("trail signing key: %w", err)
	}
	skey, _, err = note.GenerateKey(rand.Reader, cfg.Origin)
	if err != nil {
		return "", false, fmt.Errorf("trail signing key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", false, fmt.Errorf("trail signing key: %w", err)
	}
	_, err = f.WriteString(skey + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", false, fmt.Errorf("trail signing key: %w", err)
	}
	return skey, true, nil
}

// VerifierKey derives the verifier key of a signed-note Ed25519 private key
// ("PRIVATE+KEY+name+hash+base64(0x01 seed)").
func VerifierKey(skey string) (string, error) {
	parts := strings.SplitN(skey, "+", 5) // the key data is base64: it may hold "+"
	if len(parts) != 5 || parts[0] != "PRIVATE" || parts[1] != "KEY" {
		return "", errors.New("trail signing key: not a signed-note private key (PRIVATE+KEY+…)")
	}
	raw, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return "", errors.New("trail signing key: not an Ed25519 signed-note key")
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	return note.NewEd25519VerifierKey(parts[2], pub)
}

func instanceSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%x", b)
}

// policyRecorder archives every policy version before it serves, so that
// replay never misses one, and records its activation in the trail. Until
// the trail is open (the first version loads before it) it does nothing;
// set then archives and records the version already active.
//
// write runs as the reloader's Prepare step, under the reloader's lock: it
// must never call the reloader (the source comes as an argument).
type policyRecorder struct {
	mu      sync.Mutex
	archive PolicyArchive
	rec     *recorder.Recorder
}

// set is called outside the reloader's lock, so it may ask r.
func (p *policyRecorder) set(ctx context.Context, ar PolicyArchive, rec *recorder.Recorder, r *policy.Reloader) error {
	p.mu.Lock()
	p.archive, p.rec = ar, rec
	p.mu.Unlock()
	if b := r.Current(); b != nil {
		return p.write(ctx, b, r.Status().Source)
	}
	return nil
}

// write is the reloader's Prepare step: a version that cannot be archived
// or recorded is rejected, and the active one keeps serving.
func (p *policyRecorder) write(ctx context.Context, b *policy.Bundle, source string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.archive == nil {
		return nil
	}
	if err := p.archive.Put(b); err != nil {
		return fmt.Errorf("archive policy version %s: %w", b.Version().Hash, err)
	}
	v := b.Version()
	return p.rec.RecordAdmin(ctx, "policy.activate", "", v.Hash, map[string]any{
		"version": v, "source": source, "policies": len(b.Policies()), "files": b.Files(),
	})
}

// openRedactor builds the redactor of trail.redact; nil without rules.
func openRedactor(cfg TrailConfig) (*trail.Redactor, error) {
	if len(cfg.Redact) == 0 {
		return nil, nil
	}
	var key []byte
	for _, r := range cfg.Redact {
		if r.Method == trail.RedactHash {
			k, err := redactKey(cfg)
			if err != nil {
				return nil, err
			}
			key = k
			break
		}
	}
	red, err := trail.NewRedactor(cfg.Redact, key, cfg.AuditorRecipients)
	if err != nil {
		return nil, fmt.Errorf("trail.redact: %w", err)
	}
	return red, nil
}

// redactKey reads trail.redact_key_file, else Dir/redact.key, made (32
// random bytes, hex, 0600) when absent. Auditors who must confirm a
// hashed value need it; it never leaves the PDP otherwise.
func redactKey(cfg TrailConfig) ([]byte, error) {
	path := cfg.RedactKeyFile
	if path == "" {
		path = filepath.Join(cfg.Dir, redactKeyFile)
	}
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		key, err := hex.DecodeString(strings.TrimSpace(string(data)))
		if err != nil || len(key) < trail.MinHashKey {
			return nil, fmt.Errorf("trail redaction key %s: want at least %d bytes in hex", path, trail.MinHashKey)
		}
		return key, nil
	case !errors.Is(err, os.ErrNotExist) || cfg.RedactKeyFile != "":
		return nil, fmt.Errorf("trail redaction key: %w", err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("trail redaction key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("trail redaction key: %w", err)
	}
	_, err = f.WriteString(hex.EncodeToString(key) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("trail redaction key: %w", err)
	}
	return key, nil
}

// runRetention applies trail.retention now and then every interval until
// ctx ends, and records each run that pruned something in the trail.
func runRetention(ctx context.Context, cfg TrailConfig, t *openedTrail, log *slog.Logger) {
	rules := cfg.retentionRules()
	if len(rules) == 0 {
		return
	}
	tick := time.NewTicker(cfg.RetentionInterval)
	defer tick.Stop()
	for {
		now := time.Now().UTC()
		counts, err := t.log.ApplyRetention(ctx, rules, now)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			log.Error("decision trail: retention failed", "error", err)
		default:
			total := 0
			for _, n := range counts {
				total += n
			}
			if total > 0 {
				log.Info("decision trail: retention pruned records", "counts", counts)
				if err := t.recorder.RecordAdmin(ctx, "trail.retention", "", "", map[string]any{"at": now, "rules": rules, "pruned": counts}); err != nil {
					log.Error("decision trail: retention run not recorded", "error", err)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// flushInterval maps trail.flush_interval to the recorder's option: 0
// there means "write at once", which the recorder spells negative.
func flushInterval(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
