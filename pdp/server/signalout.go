package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/ciampdp/pdp/pdp/api"
	"github.com/ciampdp/pdp/pdp/signalout"
)

// ErrOutgoing: the signals.outgoing section is unusable.
var ErrOutgoing = errors.New("invalid signals.outgoing")

// OutgoingSignalsConfig makes the PDP an SSF transmitter of its own
// changes (a delegation revoked, suspended or renounced; a consent
// withdrawn): off while Issuer is empty.
type OutgoingSignalsConfig struct {
	// Issuer is the SETs' iss and the base of the event type URIs
	// (Issuer + "/events/" + name).
	Issuer string `mapstructure:"issuer"`
	// Key (a private JWK, inline) or KeyFile (a file holding one) signs
	// the SETs.
	Key     string `mapstructure:"key"`
	KeyFile string `mapstructure:"key_file"`
	// SubjectIssuer makes subjects iss_sub (sub: the entity's id); empty:
	// opaque ("type:id").
	SubjectIssuer string `mapstructure:"subject_issuer"`
	// OutboxPath is the persistent queue; empty: signals-outbox.jsonl
	// beside the consent ledger's file.
	OutboxPath string `mapstructure:"outbox_path"`
	// RetryMax caps the backoff between delivery attempts (from 1s).
	RetryMax  time.Duration          `mapstructure:"retry_max"`
	Receivers []SignalReceiverConfig `mapstructure:"receivers"`
}

// SignalReceiverConfig is one receiver of the outgoing signals.
type SignalReceiverConfig struct {
	Endpoint  string   `mapstructure:"endpoint"`
	Audience  string   `mapstructure:"audience"`
	TokenFile string   `mapstructure:"token_file"`
	Events    []string `mapstructure:"events"`
	// Application is the application the receiver is (of
	// auth.api_keys): it gets only the delegation events of records that
	// application may read and the consent withdrawals it may read.
	// Empty: every event (an operator's system).
	Application string `mapstructure:"application"`
}

// Validate checks the section.
func (c OutgoingSignalsConfig) Validate() error {
	if c.Issuer == "" {
		if len(c.Receivers) > 0 || c.Key != "" || c.KeyFile != "" {
			return fmt.Errorf("%w: issuer is required with key, key_file or receivers", ErrOutgoing)
		}
		return nil
	}
	if u, err := url.Parse(c.Issuer); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return fmt.Errorf("%w: issuer must be an absolute URL", ErrOutgoing)
	}
	if countSet(c.Key, c.KeyFile) != 1 {
		return fmt.Errorf("%w: set one of key or key_file (a private JWK)", ErrOutgoing)
	}
	if c.RetryMax < 0 {
		return fmt.Errorf("%w: retry_max must not be negative", ErrOutgoing)
	}
	for i, r := range c.Receivers {
		u, err := url.Parse(r.Endpoint)
		if err != nil || u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && isLoopbackHost(u.Hostname()))) {
			return fmt.Errorf("%w: receivers[%d]: endpoint must be an absolute https URL (http only on loopback)", ErrOutgoing, i)
		}
		if r.Audience == "" {
			return fmt.Errorf("%w: receivers[%d]: audience is required", ErrOutgoing, i)
		}
	}
	return nil
}

// checkReceiverApplications refuses a receiver naming an application that
// auth.api_keys does not hold (with authentication off none may be named:
// the only caller, the local one, reads every record).
func (c OutgoingSignalsConfig) checkReceiverApplications(a AuthConfig) error {
	for i, r := range c.Receivers {
		if r.Application == "" {
			continue
		}
		if !slices.ContainsFunc(a.APIKeys, func(k APIKey) bool { return k.Application == r.Application }) {
			return fmt.Errorf("%w: receivers[%d]: application %q is not an application of auth.api_keys", ErrOutgoing, i, r.Application)
		}
	}
	return nil
}

// openOutgoing opens the transmitter of the PDP's own changes, or returns
// nil when signals.outgoing.issuer is empty.
func openOutgoing(cfg OutgoingSignalsConfig, consentPath string, log *slog.Logger) (*signalout.Transmitter, error) {
	if cfg.Issuer == "" {
		return nil, nil
	}
	raw := []byte(cfg.Key)
	if cfg.KeyFile != "" {
		var err error
		if raw, err = os.ReadFile(cfg.KeyFile); err != nil {
			return nil, fmt.Errorf("signals.outgoing.key_file: %w", err)
		}
	}
	var key jose.JSONWebKey
	if err := json.Unmarshal(raw, &key); err != nil {
		return nil, fmt.Errorf("signals.outgoing key: %w", err)
	}
	c := signalout.Config{Issuer: cfg.Issuer, Key: key, SubjectIssuer: cfg.SubjectIssuer, OutboxPath: cfg.OutboxPath,
		RetryMax: cfg.RetryMax, Logger: log.With("component", "signals.outgoing")}
	if c.OutboxPath == "" {
		c.OutboxPath = filepath.Join(filepath.Dir(consentPath), "signals-outbox.jsonl")
	}
	for _, r := range cfg.Receivers {
		rc := signalout.Receiver{Endpoint: r.Endpoint, Audience: r.Audience, Events: r.Events, Application: r.Application}
		if r.TokenFile != "" {
			tok, err := os.ReadFile(r.TokenFile)
			if err != nil {
				return nil, fmt.Errorf("signals.outgoing.receivers %s: token_file: %w", r.Endpoint, err)
			}
			rc.Token = strings.TrimSpace(string(tok))
		}
		c.Receivers = append(c.Receivers, rc)
	}
	t, err := signalout.Open(c)
	if err != nil {
		return nil, err
	}
	log.Info("outgoing signals on", "issuer", cfg.Issuer, "receivers", len(c.Receivers), "outbox", c.OutboxPath)
	return t, nil
}

// transmitterAPI is t as the API's Transmitter, a nil interface when off.
func transmitterAPI(t *signalout.Transmitter) api.Transmitter {
	if t == nil {
		return nil
	}
	return t
}
