package signalout

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ciampdp/pdp/pdp/consent"
	"github.com/ciampdp/pdp/pdp/delegation"
	"github.com/ciampdp/pdp/pdp/signals"
)

// ErrConfig: the transmitter's configuration is unusable.
var ErrConfig = errors.New("invalid outgoing signals configuration")

// Receiver is one application or identity provider the PDP pushes its
// signals to (RFC 8935).
type Receiver struct {
	Endpoint string
	Audience string
	// Application is the application the receiver is (a name of
	// auth.api_keys): it gets only the delegation events of records that
	// application may read (Readers.Sees, the rule of GET
	// /v1/delegations/{id}) and the consent events it may read
	// (ConsentReaders.Sees, the rule of the consent read API); the others
	// are not queued for it at all. Empty: every event (an operator's
	// SIEM or back office).
	Application string
	// Token is the bearer token the receiver wants ("" when none).
	Token string
	// Events are the event names it wants; empty: every one.
	Events []string
}

// Config of a Transmitter.
type Config struct {
	// Issuer is the SETs' iss, and the base of the event type URIs.
	Issuer string
	// Key is the private signing key (its alg and kid go in the header).
	Key jose.JSONWebKey
	// SubjectIssuer, when set, makes subjects iss_sub (with the entity's
	// id as sub); otherwise they are opaque ("type:id").
	SubjectIssuer string
	// OutboxPath is the persistent queue's file.
	OutboxPath string
	Receivers  []Receiver
	// RetryMin and RetryMax bound the backoff between attempts
	// (defaults 1s and 5m).
	RetryMin, RetryMax time.Duration
	Client             *http.Client
	Logger             *slog.Logger
	Now                func() time.Time
}

// Readers decides which application may read a delegation record: the
// delegation service's rule (delegation.Service.Sees); Get reads the
// current record when a queued SET is checked again (Release).
type Readers interface {
	Sees(r delegation.Reader, d delegation.Delegation) bool
	Get(ctx context.Context, id string) (delegation.Delegation, error)
}

// ConsentReaders decides which application may read a consent event: the
// consent ledger's rule (consent.Ledger.Sees, that of the read API); Event
// reads a stored event when a queued SET is checked again (Release).
type ConsentReaders interface {
	Sees(ctx context.Context, r consent.Reader, e consent.Event) (bool, error)
	Event(ctx context.Context, id string) (consent.Event, error)
}

var (
	_ Readers        = (*delegation.Service)(nil)
	_ ConsentReaders = (*consent.Ledger)(nil)
)

// consentScope is the consent rule and the consent administrators (who
// read every event: consent.admin_applications).
type consentScope struct {
	rule   ConsentReaders
	admins map[string]bool
}

// Transmitter signs the PDP's changes as SETs and delivers them.
type Transmitter struct {
	cfg      Config
	log      *slog.Logger
	readers  atomic.Pointer[Readers]      // set by ScopeDelegations
	consents atomic.Pointer[consentScope] // set by ScopeConsents
	// unchecked counts the SETs Release could not check (left in the
	// outbox for the next start): the outbox is not compacted under them.
	unchecked int
	box       *outbox
	queues    map[string]*queue // by receiver endpoint
	sent      *prometheus.CounterVec
	closeMu   sync.Once
	// qmu makes queueing (outbox line and queue) one step, so that
	// compaction never empties the file under a SET not yet delivered.
	qmu        sync.Mutex
	maxPending int
}

// MaxPending bounds the SETs waiting for one receiver: beyond it, new
// SETs for that receiver are not queued (logged and counted as
// outcome="dropped") until it takes some.
const MaxPending = 100_000

var (
	_ delegation.Notifier = (*Transmitter)(nil)
	_ consent.Notifier    = (*Transmitter)(nil)
)

// queue is one receiver's pending SETs, delivered in order.
type queue struct {
	r    Receiver
	mu   sync.Mutex
	sets []entry
	wake chan struct{}
	// held: SETs read from the outbox wait to be checked again against
	// the receiver's application (Release); nothing is delivered until
	// then.
	held bool
}

// removedReceiver is the receiver label of SETs dropped because their
// endpoint is no longer configured: one fixed label, not one per old URL.
const removedReceiver = "(removed)"

// Open checks cfg, reads the outbox and returns the transmitter; Run
// delivers.
func Open(cfg Config) (*Transmitter, error) {
	if cfg.Issuer == "" {
		return nil, fmt.Errorf("%w: issuer is required", ErrConfig)
	}
	if cfg.Key.Key == nil || cfg.Key.IsPublic() {
		return nil, fmt.Errorf("%w: a private signing key is required", ErrConfig)
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = time.Second
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 5 * time.Minute
	}
	cfg.RetryMax = max(cfg.RetryMax, cfg.RetryMin)
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	t := &Transmitter{cfg: cfg, log: cfg.Logger, queues: map[string]*queue{}, maxPending: MaxPending,
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pdp_signals_sent_total",
			Help: "Outgoing SETs by receiver and outcome: delivered, refused (the receiver's 400: dropped), retried (an attempt failed), dropped (not queued: the outbox failed or MaxPending SETs wait).",
		}, []string{"receiver", "outcome"})}
	for _, r := range cfg.Receivers {
		if r.Endpoint == "" || r.Audience == "" {
			return nil, fmt.Errorf("%w: a receiver needs endpoint and audience", ErrConfig)
		}
		for _, ev := range r.Events {
			if !slices.Contains(EventNames, ev) {
				return nil, fmt.Errorf("%w: receiver %s: unknown event %q (known: %v)", ErrConfig, r.Endpoint, ev, EventNames)
			}
		}
		if _, dup := t.queues[r.Endpoint]; dup {
			return nil, fmt.Errorf("%w: receiver %s is listed twice", ErrConfig, r.Endpoint)
		}
		t.queues[r.Endpoint] = &queue{r: r, wake: make(chan struct{}, 1)}
		if r.Application == "" {
			t.log.Warn("outgoing signals receiver names no application: it gets every delegation revoked, suspended or renounced and every consent withdrawn, whoever may read the record (set its application unless it is an operator's system)",
				"receiver", r.Endpoint)
		}
	}
	if len(cfg.Receivers) == 0 {
		return t, nil // nothing to deliver: no outbox
	}
	box, pending, err := openOutbox(cfg.OutboxPath)
	if err != nil {
		return nil, err
	}
	t.box = box
	var done []entry
	for _, e := range pending {
		q := t.queues[e.Receiver]
		switch {
		case q == nil:
			t.log.Warn("outgoing signal for a receiver no longer configured: dropped", "receiver", e.Receiver, "jti", e.JTI)
			t.sent.WithLabelValues(removedReceiver, "dropped").Inc()
			done = append(done, entry{Op: "done", JTI: e.JTI, Outcome: "dropped"})
		case q.r.Application != "":
			// Whoever it was queued for (no application, another one, or
			// this one when the record's readers may have changed since),
			// it goes out only if the application may read the record
			// now: Release checks it again.
			e.check, q.held = true, true
			q.sets = append(q.sets, e)
		default:
			q.sets = append(q.sets, e)
		}
	}
	if len(done) > 0 {
		if err := box.append(done...); err != nil {
			t.log.Warn("signal outbox: dropped signals not noted (dropped again at the next start)", "error", err)
		}
	}
	return t, nil
}

// Collector is the transmitter's metric.
func (t *Transmitter) Collector() prometheus.Collector { return t.sent }

// Close closes the outbox (after Run returned).
func (t *Transmitter) Close() error {
	var err error
	t.closeMu.Do(func() {
		if t.box != nil {
			err = t.box.close()
		}
	})
	return err
}

// ScopeDelegations gives the rule that decides which delegation events a
// receiver naming an application gets. Call it before any delegation
// change: until then such a receiver gets no delegation event (logged).
func (t *Transmitter) ScopeDelegations(r Readers) { t.readers.Store(&r) }

// ScopeConsents gives the rule that decides which consent events a
// receiver naming an application gets, and the consent administrators
// (consent.admin_applications), which read them all. Call it before any
// consent change: until then such a receiver gets no consent event
// (logged).
func (t *Transmitter) ScopeConsents(r ConsentReaders, admins []string) {
	sc := &consentScope{rule: r, admins: map[string]bool{}}
	for _, a := range admins {
		sc.admins[a] = true
	}
	t.consents.Store(sc)
}

// mayRead reports whether the receiver r may get the signal s: every
// signal when r names no application; otherwise only when r's application
// may read the delegation record as it is after the change, or the
// consent event, by the rule of the read API. When that cannot be decided
// it is not queued (fails closed: logged and counted as dropped).
func (t *Transmitter) mayRead(ctx context.Context, r Receiver, s signal) bool {
	if r.Application == "" {
		return true
	}
	switch {
	case s.delegation != nil:
		rd := t.readers.Load()
		if rd == nil || *rd == nil {
			t.log.ErrorContext(ctx, "outgoing signal not queued: no rule says who may read delegations", "event", s.name, "receiver", r.Endpoint)
			t.sent.WithLabelValues(r.Endpoint, "dropped").Inc()
			return false
		}
		return (*rd).Sees(delegation.Reader{Application: r.Application}, *s.delegation)
	case s.consent != nil:
		sc := t.consents.Load()
		if sc == nil || sc.rule == nil {
			t.log.ErrorContext(ctx, "outgoing signal not queued: no rule says who may read consents", "event", s.name, "receiver", r.Endpoint)
			t.sent.WithLabelValues(r.Endpoint, "dropped").Inc()
			return false
		}
		ok, err := sc.rule.Sees(ctx, consent.Reader{Application: r.Application, Admin: sc.admins[r.Application]}, *s.consent)
		if err != nil {
			t.log.ErrorContext(ctx, "outgoing signal not queued: who may read the consent event is unknown", "event", s.name,
				"receiver", r.Endpoint, "consent_event_id", s.consent.ID, "error", err)
			t.sent.WithLabelValues(r.Endpoint, "dropped").Inc()
			return false
		}
		return ok
	}
	return false
}

// DelegationChanged implements delegation.Notifier.
func (t *Transmitter) DelegationChanged(ctx context.Context, c delegation.Change) {
	if s, ok := fromDelegation(c); ok {
		t.enqueue(ctx, s)
	}
}

// ConsentChanged implements consent.Notifier.
func (t *Transmitter) ConsentChanged(ctx context.Context, c consent.Change) {
	for _, s := range fromConsent(c) {
		t.enqueue(ctx, s)
	}
}

// enqueue signs s for every receiver that wants it and queues it. It
// writes the outbox but does not wait for the disk or the network.
func (t *Transmitter) enqueue(ctx context.Context, s signal) {
	for _, r := range t.cfg.Receivers {
		if (len(r.Events) > 0 && !slices.Contains(r.Events, s.name)) || !t.mayRead(ctx, r, s) {
			continue
		}
		set, jti, err := t.sign(s, r.Audience)
		if err != nil {
			t.log.ErrorContext(ctx, "outgoing signal not signed", "event", s.name, "error", err)
			continue
		}
		e := entry{Op: "queue", JTI: jti, Receiver: r.Endpoint, SET: set, Application: r.Application}
		q := t.queues[r.Endpoint]
		if err := t.queue(q, e); err != nil {
			t.sent.WithLabelValues(r.Endpoint, "dropped").Inc()
			t.log.ErrorContext(ctx, "outgoing signal not queued", "event", s.name, "receiver", r.Endpoint, "error", err)
			continue
		}
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
}

// errFull: a receiver has MaxPending SETs waiting.
var errFull = errors.New("the receiver has too many SETs waiting")

// queue writes e to the outbox and appends it to q.
func (t *Transmitter) queue(q *queue, e entry) error {
	t.qmu.Lock()
	defer t.qmu.Unlock()
	q.mu.Lock()
	full := len(q.sets) >= t.maxPending
	q.mu.Unlock()
	if full {
		return errFull
	}
	if err := t.box.append(e); err != nil {
		return err
	}
	q.mu.Lock()
	q.sets = append(q.sets, e)
	q.mu.Unlock()
	return nil
}

// compact empties a grown outbox when no receiver has anything waiting.
func (t *Transmitter) compact() {
	t.qmu.Lock()
	defer t.qmu.Unlock()
	if t.unchecked > 0 {
		return
	}
	for _, q := range t.queues {
		q.mu.Lock()
		n := len(q.sets)
		q.mu.Unlock()
		if n > 0 {
			return
		}
	}
	if err := t.box.compact(); err != nil {
		t.log.Warn("signal outbox not compacted", "error", err)
	}
}

// sign makes the SET of s for one audience.
func (t *Transmitter) sign(s signal, aud string) (set, jti string, err error) {
	jti = uuid.Must(uuid.NewV7()).String()
	claims := map[string]any{
		"iss":    t.cfg.Issuer,
		"aud":    aud,
		"iat":    t.cfg.Now().Unix(),
		"jti":    jti,
		"sub_id": t.subject(s.subject),
		"events": map[string]any{EventURI(t.cfg.Issuer, s.name): s.payload},
	}
	set, err = signals.Sign(t.cfg.Key, claims)
	return set, jti, err
}

// subject is the RFC 9493 subject identifier of an entity.
func (t *Transmitter) subject(e entityRef) map[string]string {
	if t.cfg.SubjectIssuer != "" {
		return map[string]string{"format": "iss_sub", "iss": t.cfg.SubjectIssuer, "sub": e.ID}
	}
	return map[string]string{"format": "opaque", "id": e.Type + ":" + e.ID}
}

// JWKS is the public key set receivers verify the SETs with.
func (t *Transmitter) JWKS() jose.JSONWebKeySet {
	pub := t.cfg.Key.Public()
	pub.Use = "sig"
	return jose.JSONWebKeySet{Keys: []jose.JSONWebKey{pub}}
}

// Issuer is the SETs' iss.
func (t *Transmitter) Issuer() string { return t.cfg.Issuer }

// Pending is how many SETs wait for a receiver.
func (t *Transmitter) Pending(endpoint string) int {
	q := t.queues[endpoint]
	if q == nil {
		return 0
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.sets)
}

// Run delivers until ctx ends: one loop per receiver.
func (t *Transmitter) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, q := range t.queues {
		wg.Go(func() { t.deliver(ctx, q) })
	}
	wg.Wait()
}

// deliver pushes q's SETs in order; a failed attempt is retried after a
// backoff that doubles from RetryMin to RetryMax.
func (t *Transmitter) deliver(ctx context.Context, q *queue) {
	log := t.log.With("receiver", q.r.Endpoint)
	wait := t.cfg.RetryMin
	for {
		q.mu.Lock()
		var head *entry
		if len(q.sets) > 0 && !q.held {
			head = &q.sets[0]
		}
		q.mu.Unlock()
		if head == nil {
			select {
			case <-ctx.Done():
				return
			case <-q.wake:
				continue
			}
		}
		if err := t.box.sync(); err != nil {
			log.Warn("signal outbox not synced", "error", err)
		}
		outcome, err := t.push(ctx, q.r, head.SET)
		if outcome == "" {
			t.sent.WithLabelValues(q.r.Endpoint, "retried").Inc()
			log.Warn("outgoing signal not delivered; retrying", "jti", head.JTI, "in", wait, "error", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			wait = min(2*wait, t.cfg.RetryMax)
			continue
		}
		wait = t.cfg.RetryMin
		if outcome == "refused" {
			log.Error("receiver refused an outgoing signal; dropped", "jti", head.JTI, "error", err)
		}
		t.sent.WithLabelValues(q.r.Endpoint, outcome).Inc()
		if err := t.box.append(entry{Op: "done", JTI: head.JTI, Outcome: outcome}); err != nil {
			log.Warn("signal outbox: delivery not noted (it may be sent again after a restart)", "jti", head.JTI, "error", err)
		}
		q.mu.Lock()
		q.sets = q.sets[1:]
		empty := len(q.sets) == 0
		q.mu.Unlock()
		if empty {
			t.compact()
		}
	}
}

// push POSTs one SET (RFC 8935): "delivered" on 202 (or another 2xx),
// "refused" on a 400 (the receiver will never take it), "" (retry)
// otherwise.
func (t *Transmitter) push(ctx context.Context, r Receiver, set string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.Endpoint, bytes.NewBufferString(set))
	if err != nil {
		return "refused", err
	}
	req.Header.Set("Content-Type", "application/"+signals.SETType)
	req.Header.Set("Accept", "application/json")
	if r.Token != "" {
		req.Header.Set("Authorization", "Bearer "+r.Token)
	}
	res, err := t.cfg.Client.Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
	switch {
	case res.StatusCode >= 200 && res.StatusCode < 300:
		return "delivered", nil
	case res.StatusCode == http.StatusBadRequest:
		var e struct {
			Err         string `json:"err"`
			Description string `json:"description"`
		}
		_ = json.Unmarshal(body, &e)
		return "refused", fmt.Errorf("%s: %s", e.Err, e.Description)
	}
	return "", fmt.Errorf("%s answered %s", r.Endpoint, res.Status)
}
