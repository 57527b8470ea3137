package sidecar

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/ciampdp/pdp/internal/jsonenc"
	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/authzen"
	"github.com/ciampdp/pdp/pdp/reason"
	"github.com/ciampdp/pdp/pdp/trail"
	"github.com/ciampdp/pdp/sidecar/gateway"
)

// Reason codes the sidecar gives itself.
const (
	// ReasonPDPUnreachable: the central PDP could not be asked and no
	// degraded answer was allowed: fail closed.
	ReasonPDPUnreachable = reason.PDPUnreachable
)

// Headers of the sidecar protocol.
const (
	HeaderSidecarID        = "PDP-Sidecar-Id"
	HeaderConsistencyToken = "PDP-Consistency-Token"
)

// Sidecar is a running sidecar: Handler serves it, Run keeps its change
// feed and spool shipping going.
type Sidecar struct {
	cfg      Config
	centrals []string      // the central PDP's replicas (one when load-balanced)
	cur      atomic.Uint32 // the index of the replica followed now
	hc       *http.Client
	log      *slog.Logger
	cache    *cache
	decoded  *decodedBodies
	spool    *spool
	breaker  *breaker
	gw       *gateway.Gateway
	mux      *http.ServeMux
	shipNow  chan struct{}

	hits, misses, degraded, failClosed, pollFailures, shipFailures atomic.Uint64
	shippedRecords, unauthorized, failovers                        atomic.Uint64
	shipRefused                                                    atomic.Pointer[error]
	closeOnce                                                      sync.Once
}

// New builds a sidecar from cfg (validated), opening its spool.
func New(cfg Config, log *slog.Logger) (*Sidecar, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.ID == "" {
		host, _ := os.Hostname()
		cfg.ID = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), uuid.NewString()[:8])
	}
	sp, err := openSpool(cfg.SpoolDir, cfg.SpoolMode, cfg.SpoolSegmentBytes, log)
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{MaxIdleConns: 512, MaxIdleConnsPerHost: 512, IdleConnTimeout: 90 * time.Second,
		DialContext: (&net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}).DialContext}
	s := &Sidecar{
		cfg: cfg, centrals: cfg.Centrals(), hc: &http.Client{Transport: tr},
		log: log, cache: newCache(cfg.CacheSize, cfg.CacheTTL, cfg.Degraded.MaxStaleness), spool: sp,
		decoded: newDecodedBodies(cfg.CacheSize),
		breaker: &breaker{failures: cfg.Breaker.Failures, cooldown: cfg.Breaker.Cooldown},
		shipNow: make(chan struct{}, 1),
	}
	s.shippedRecords.Store(sp.shipped())
	s.mux = http.NewServeMux()
	s.mux.Handle("POST /access/v1/evaluation", s.authenticated(s.evaluation))
	s.mux.Handle("POST /access/v1/evaluations", s.authenticated(s.evaluations))
	for _, kind := range []string{"subject", "resource", "action"} {
		s.mux.Handle("POST /access/v1/search/"+kind, s.authenticated(s.forwardRaw))
	}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	s.mux.HandleFunc("GET /readyz", s.ready)
	metrics, err := s.metricsHandler()
	if err != nil {
		_ = sp.close()
		return nil, fmt.Errorf("sidecar: metrics: %w", err)
	}
	s.mux.Handle("GET /metrics", metrics)
	if len(cfg.Gateway.Routes) > 0 {
		gw, err := gateway.New(cfg.Gateway, gateway.Deps{Logger: log, Evaluator: gateway.EvaluatorFunc(
			func(ctx context.Context, req pdp.Request) (authzen.DecisionResponse, error) {
				return s.Evaluate(ctx, req, "")
			})})
		if err != nil {
			_ = sp.close()
			return nil, err
		}
		s.gw = gw
		s.mux.Handle("/authz/", gw.Handler())
	}
	return s, nil
}

// ID is the sidecar's id at the central PDP.
func (s *Sidecar) ID() string { return s.cfg.ID }

// Handler serves the AuthZEN API, the gateway adapters and health.
func (s *Sidecar) Handler() http.Handler { return s.mux }

// Run follows the change feed and ships the spool until ctx ends.
func (s *Sidecar) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { s.poll(ctx) })
	wg.Go(func() { s.ship(ctx) })
	wg.Wait()
}

// Close flushes the spool (async mode) and closes it. Records not yet
// shipped stay in the spool and go out at the next start.
func (s *Sidecar) Close() error {
	var err error
	s.closeOnce.Do(func() { err = s.spool.close() })
	return err
}

func (s *Sidecar) headers(r *http.Request) {
	if s.cfg.APIKey != "" {
		r.Header.Set("Authorization", "Bearer "+s.cfg.APIKey)
	}
	r.Header.Set(HeaderSidecarID, s.cfg.ID)
}

// httpError is an answer of the central PDP relayed as it is (4xx).
type httpError struct {
	status int
	body   []byte
}

func (e *httpError) Error() string { return fmt.Sprintf("central PDP: %d %s", e.status, e.body) }

// errUnreachable: no answer from the central PDP (transport error, 5xx,
// breaker open).
var errUnreachable = errors.New("central PDP unreachable")

func (s *Sidecar) evaluation(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	req, key, err := s.decoded.decode(body)
	if err != nil {
		badRequest(w, err)
		return
	}
	ans, err := s.evaluate(r.Context(), req, key, body, r.Header.Get(HeaderConsistencyToken))
	var he *httpError
	switch {
	case errors.As(err, &he):
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(he.status)
		_, _ = w.Write(he.body)
		return
	case err != nil:
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(ans.AppendJSON(make([]byte, 0, 256)))
}

// Evaluate answers one evaluation (the gateway adapters' entry): from the
// cache when it may, else from the central PDP, else fail closed.
func (s *Sidecar) Evaluate(ctx context.Context, req pdp.Request, token string) (authzen.DecisionResponse, error) {
	key, err := cacheKey(req)
	if err != nil {
		return authzen.DecisionResponse{}, err
	}
	return s.evaluate(ctx, req, key, nil, token)
}

// evaluate answers req, whose cache key is key; body is its JSON when the
// caller has it (else it is encoded for a miss).
func (s *Sidecar) evaluate(ctx context.Context, req pdp.Request, key string, body []byte, token string) (authzen.DecisionResponse, error) {
	var err error
	now := time.Now()
	// A step-up outcome reported (context.step_up) is an event the central
	// PDP must count each time: never answered from the cache, nor cached.
	_, report := req.Context[pdp.ContextStepUp]
	if token == "" && !report {
		if e, ok := s.cache.lookup(key, now); ok {
			s.hits.Add(1)
			return s.local(ctx, req, key, e, "cache")
		}
	}
	s.misses.Add(1)
	st := s.cache.state.Load()
	if body == nil {
		if body, err = json.Marshal(req); err != nil {
			return authzen.DecisionResponse{}, err
		}
	}
	if report {
		ctx = sendOnce(ctx)
	}
	ans, from, err := s.forward(ctx, body, token)
	var he *httpError
	switch {
	case errors.As(err, &he):
		return ans, err
	case err != nil:
		return s.unreachable(ctx, req, key, err)
	}
	// Cached only when decided by the replica whose feed the cache
	// follows: another replica's feed would not wait for this sidecar.
	if ans.Context != nil && from == st.from && !report {
		s.cache.add(key, entry{answer: ans, action: req.Action.Name, stored: now}, st)
	}
	return ans, nil
}

// central is the base URL of the replica followed now.
func (s *Sidecar) central() string {
	return s.centrals[int(s.cur.Load())%len(s.centrals)]
}

// failover moves to the next replica when the one followed is still
// from, which did not answer (a no-op with one central URL).
func (s *Sidecar) failover(from string) {
	if len(s.centrals) < 2 {
		return
	}
	cur := s.cur.Load()
	if s.centrals[int(cur)%len(s.centrals)] != from {
		return // moved already
	}
	if s.cur.CompareAndSwap(cur, (cur+1)%uint32(len(s.centrals))) {
		s.failovers.Add(1)
		s.log.Warn("central PDP replica does not answer: moving to the next", "from", from, "to", s.central())
	}
}

// forward asks the central PDP; from is the replica that answered.
func (s *Sidecar) forward(ctx context.Context, body []byte, token string) (_ authzen.DecisionResponse, from string, _ error) {
	ans, err := s.forwardFrom(ctx, body, token, &from)
	return ans, from, err
}

func (s *Sidecar) forwardFrom(ctx context.Context, body []byte, token string, from *string) (authzen.DecisionResponse, error) {
	if !s.breaker.allow(time.Now()) {
		return authzen.DecisionResponse{}, fmt.Errorf("%w: circuit breaker open", errUnreachable)
	}
	data, status, base, err := s.post(ctx, "/access/v1/evaluation", body, token)
	*from = base
	if err != nil || status >= 500 {
		s.breaker.fail(time.Now())
		if err == nil {
			err = fmt.Errorf("%w: %d %s", errUnreachable, status, data)
		}
		return authzen.DecisionResponse{}, err
	}
	s.breaker.ok()
	if status != http.StatusOK {
		return authzen.DecisionResponse{}, &httpError{status: status, body: data}
	}
	var ans authzen.DecisionResponse
	if err := json.Unmarshal(data, &ans); err != nil {
		return ans, fmt.Errorf("%w: answer %q: %v", errUnreachable, data, err)
	}
	return ans, nil
}

// post sends body to the central PDP, retrying once after a connection
// failure (with jitter; at the next replica when there are several). from
// is the replica asked last.
func (s *Sidecar) post(ctx context.Context, path string, body []byte, token string) (_ []byte, _ int, from string, _ error) {
	var lastErr error
	for attempt := range 2 {
		if attempt > 0 {
			s.failover(from)
			sleep(ctx, jitter(20*time.Millisecond))
		}
		from = s.central()
		cctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
		req, err := http.NewRequestWithContext(cctx, http.MethodPost, from+path, bytes.NewReader(body))
		if err != nil {
			cancel()
			return nil, 0, from, err
		}
		s.headers(req)
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set(HeaderConsistencyToken, token)
		}
		res, err := s.hc.Do(req)
		if err != nil {
			cancel()
			lastErr = fmt.Errorf("%w: %v", errUnreachable, err)
			if ctx.Err() != nil || (onlyOnce(ctx) && !neverSent(err)) {
				break
			}
			continue
		}
		data, err := io.ReadAll(io.LimitReader(res.Body, 8<<20))
		res.Body.Close()
		cancel()
		if err != nil {
			lastErr = fmt.Errorf("%w: %v", errUnreachable, err)
			if onlyOnce(ctx) {
				break
			}
			continue
		}
		return data, res.StatusCode, from, nil
	}
	return nil, 0, from, lastErr
}

// A request that reports a step-up outcome is counted by the central PDP
// each time it arrives: once it may have been sent, it is not sent again
// (to the same replica or the next), or a timeout would count it twice.
type sendOnceKey struct{}

func sendOnce(ctx context.Context) context.Context {
	return context.WithValue(ctx, sendOnceKey{}, true)
}

func onlyOnce(ctx context.Context) bool {
	once, _ := ctx.Value(sendOnceKey{}).(bool)
	return once
}

// neverSent reports whether err says the request never left: the
// connection to the central PDP could not be made.
func neverSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// unreachable answers when the central PDP cannot: a degraded answer from
// a stale entry for the actions configured so, else a deny.
//
// A degraded answer is given only while the lease holds and under the
// change sequence and epoch it was decided under: the change feed still
// proves that nothing changed since (the central PDP answers its
// evaluations too slowly, or with errors, while the feed answers). Once
// the lease has run out the sidecar cannot know whether a revoke or a
// withdrawal was answered meanwhile — the central PDP waits for a silent
// sidecar only until its lease runs out — so it fails closed: no sidecar
// serves an allow decided before a change once the change call returned,
// in any mode.
func (s *Sidecar) unreachable(ctx context.Context, req pdp.Request, key string, cause error) (authzen.DecisionResponse, error) {
	if st := s.cache.state.Load(); slices.Contains(s.cfg.Degraded.Actions, req.Action.Name) && time.Now().Before(st.validUntil) {
		if e, ok := s.cache.staleEntry(key); ok && e.seq == st.seq && e.epoch == st.epoch &&
			time.Since(e.stored) <= s.cfg.Degraded.MaxStaleness {
			s.degraded.Add(1)
			return s.local(ctx, req, key, e, "degraded")
		}
	}
	s.failClosed.Add(1)
	s.log.Warn("central PDP unreachable: denying", "action", req.Action.Name, "error", cause)
	deny := entry{answer: authzen.DecisionResponse{Decision: false, Context: &authzen.DecisionContext{
		Reasons: []string{ReasonPDPUnreachable}, Policies: []string{}, Obligations: []string{},
		Message: "the central PDP could not be reached: " + cause.Error(),
	}}}
	return s.local(ctx, req, key, deny, "fail_closed")
}

// local gives an answer the sidecar decided itself (cache hit, degraded,
// fail closed): a decision of its own, spooled for the central trail.
//
// key is req's cache key, which is also req's encoding in the record ("":
// encoded here).
func (s *Sidecar) local(ctx context.Context, req pdp.Request, key string, e entry, source string) (authzen.DecisionResponse, error) {
	if key == "" {
		var err error
		if key, err = cacheKey(req); err != nil {
			return authzen.DecisionResponse{}, err
		}
	}
	id, err := uuid.NewV7()
	if err != nil {
		return authzen.DecisionResponse{}, err
	}
	now := time.Now().UTC()
	src := e.answer.Context
	c := &authzen.DecisionContext{DecisionID: id.String(), Policies: []string{}, Reasons: []string{}, Obligations: []string{}}
	if src != nil {
		cp := *src
		c = &cp
		c.DecisionID = id.String()
		if source != "fail_closed" {
			c.CachedFrom = src.DecisionID
		}
	}
	c.Degraded = source == "degraded"
	ans := authzen.DecisionResponse{Decision: e.answer.Decision, Context: c}
	st := s.cache.state.Load()
	body, err := appendAnswerRecord(make([]byte, 0, 512), &answerRecord{
		DecisionID: c.DecisionID, Time: now, Sidecar: s.cfg.ID, Request: req, Decision: ans.Decision,
		Reasons: c.Reasons, Policies: c.Policies, Obligations: c.Obligations, CachedFrom: c.CachedFrom,
		PolicyVersion: c.PolicyVersion, ChangeSeq: st.seq, Epoch: st.epoch, Degraded: c.Degraded, Source: source,
	}, key)
	if err != nil {
		return authzen.DecisionResponse{}, err
	}
	if err := s.spool.add(ctx, trail.CompactRecord(KindAnswer, c.DecisionID, now, body)); err != nil {
		// No allow without its record.
		return authzen.DecisionResponse{Decision: false, Context: &authzen.DecisionContext{
			DecisionID: c.DecisionID, Policies: []string{}, Obligations: []string{},
			Reasons: []string{reason.TrailUnavailable}, Message: "the answer could not be spooled: " + err.Error(),
		}}, nil
	}
	return ans, nil
}

// evaluations forwards a batch; unreachable, every item is denied.
func (s *Sidecar) evaluations(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	batch, err := authzen.DecodeEvaluations(body)
	if err != nil {
		badRequest(w, err)
		return
	}
	if !s.breaker.allow(time.Now()) {
		s.batchUnreachable(w, r, batch, errors.New("circuit breaker open"))
		return
	}
	ctx := r.Context()
	for _, q := range batch.Requests {
		if _, report := q.Context[pdp.ContextStepUp]; report {
			ctx = sendOnce(ctx)
			break
		}
	}
	data, status, _, err := s.post(ctx, "/access/v1/evaluations", body, r.Header.Get(HeaderConsistencyToken))
	if err != nil || status >= 500 {
		s.breaker.fail(time.Now())
		if err == nil {
			err = fmt.Errorf("%d %s", status, data)
		}
		s.batchUnreachable(w, r, batch, err)
		return
	}
	s.breaker.ok()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(data)
}

func (s *Sidecar) batchUnreachable(w http.ResponseWriter, r *http.Request, batch authzen.Batch, cause error) {
	var out []authzen.DecisionResponse
	for _, req := range batch.Requests {
		key, _ := cacheKey(req)
		ans, err := s.unreachable(r.Context(), req, key, cause)
		if err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
			return
		}
		out = append(out, ans)
	}
	w.Header().Set("Content-Type", "application/json")
	if batch.Single && len(out) == 1 {
		_, _ = w.Write(out[0].AppendJSON(nil))
		return
	}
	_, _ = w.Write(authzen.EvaluationsResponse{Evaluations: out}.AppendJSON(nil))
}

// forwardRaw relays a search; unreachable, 503.
func (s *Sidecar) forwardRaw(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	if !s.breaker.allow(time.Now()) {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": ReasonPDPUnreachable + ": circuit breaker open"})
		return
	}
	data, status, _, err := s.post(r.Context(), r.URL.Path, body, r.Header.Get(HeaderConsistencyToken))
	if err != nil || status >= 500 {
		s.breaker.fail(time.Now())
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": ReasonPDPUnreachable})
		return
	}
	s.breaker.ok()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(data)
}

// Status is what /readyz says.
type Status struct {
	Mode          string  `json:"mode"` // connected; no_lease (cache unused: the change feed is silent); unreachable (breaker open: fail closed or degraded answers); spool_failed (answers it decides itself are denied)
	ID            string  `json:"sidecar"`
	Seq           uint64  `json:"change_seq"`
	Epoch         string  `json:"epoch"`
	PolicyVersion string  `json:"policy_version"`
	LeaseLeftMS   int64   `json:"lease_left_ms"`
	Breaker       string  `json:"breaker"`
	Hits          uint64  `json:"cache_hits"`
	Misses        uint64  `json:"cache_misses"`
	HitRatio      float64 `json:"cache_hit_ratio"`
	Degraded      uint64  `json:"degraded_answers"`
	FailClosed    uint64  `json:"fail_closed_answers"`
	Spooled       uint64  `json:"spooled"`
	Shipped       uint64  `json:"shipped"`
	SpoolError    string  `json:"spool_error,omitempty"`
	Unauthorized  uint64  `json:"unauthorized_requests"` // AuthZEN requests refused without the application's credential
	ShipError     string  `json:"ship_error,omitempty"`  // shipping is stuck: the central PDP refuses the spool's next records (422/403), or a spool segment cannot be read
	Central       string  `json:"central"`               // the central PDP replica followed now
	Failovers     uint64  `json:"central_failovers"`     // moves to the next replica of central_url
}

// leaseLeftMS is the lease left in whole milliseconds, rounded up: 0 only
// once it has run out, when the cache stops serving (a lease with 0.4 ms
// left said 0, "no_lease", while the cache still answered from it).
func leaseLeftMS(left time.Duration) int64 {
	if left <= 0 {
		return 0
	}
	return int64((left + time.Millisecond - 1) / time.Millisecond)
}

// Status reports the sidecar's mode and counters.
func (s *Sidecar) Status() Status {
	st := s.cache.state.Load()
	now := time.Now()
	out := Status{ID: s.cfg.ID, Seq: st.seq, Epoch: st.epoch, PolicyVersion: st.policy,
		LeaseLeftMS: leaseLeftMS(st.validUntil.Sub(now)), Breaker: s.breaker.state(now),
		Hits: s.hits.Load(), Misses: s.misses.Load(), Degraded: s.degraded.Load(), FailClosed: s.failClosed.Load(),
		Spooled: s.spool.spooled(), Shipped: s.shippedRecords.Load(), Unauthorized: s.unauthorized.Load(),
		Central: s.central(), Failovers: s.failovers.Load()}
	if total := out.Hits + out.Misses; total > 0 {
		out.HitRatio = float64(out.Hits) / float64(total)
	}
	if err := s.spool.err(); err != nil {
		out.SpoolError = err.Error()
	}
	if p := s.shipRefused.Load(); p != nil {
		out.ShipError = (*p).Error()
	}
	switch {
	case out.SpoolError != "":
		out.Mode = "spool_failed"
	case out.Breaker == "open":
		out.Mode = "unreachable"
	case out.LeaseLeftMS == 0:
		out.Mode = "no_lease"
	default:
		out.Mode = "connected"
	}
	return out
}

func (s *Sidecar) ready(w http.ResponseWriter, _ *http.Request) {
	st := s.Status()
	code := http.StatusOK
	if st.Mode != "connected" {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, st)
}

// cacheKey identifies a question: the request as decoded, in the JSON
// encoding/json writes for it (maps with sorted keys; jsonenc writes it
// without reflection), which is also how the answer's record holds it.
// The application is the sidecar's own.
func cacheKey(req pdp.Request) (string, error) {
	b, err := jsonenc.Request(make([]byte, 0, 256), &req)
	if err != nil {
		return "", fmt.Errorf("sidecar: cache key: %w", err)
	}
	return string(b), nil
}

// readBody reads a request body of at most 1 MiB, answering 413 beyond.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := readAll(http.MaxBytesReader(w, r.Body, 1<<20), r.ContentLength)
	if err != nil {
		writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": "request body too large"})
		return nil, false
	}
	return body, true
}

// readAll is io.ReadAll with the buffer sized for a body of the declared
// length (one allocation, no growing) when there is one.
func readAll(r io.Reader, length int64) ([]byte, error) {
	if length <= 0 || length > 1<<20 {
		return io.ReadAll(r)
	}
	buf := make([]byte, 0, length+1) // +1: EOF is seen without growing
	for {
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)] // longer than declared: let append grow it
		}
	}
}

// badRequest answers 400 with the AuthZEN decoder's message.
func badRequest(w http.ResponseWriter, err error) {
	msg := err.Error()
	var re *authzen.RequestError
	if errors.As(err, &re) {
		msg = re.Message
	}
	writeJSON(w, http.StatusBadRequest, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// breaker is a consecutive-failure circuit breaker.
type breaker struct {
	mu        sync.Mutex
	failures  int
	cooldown  time.Duration
	count     int
	openUntil time.Time
	probing   bool
}

func (b *breaker) allow(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.count < b.failures {
		return true
	}
	if now.Before(b.openUntil) || b.probing {
		return false
	}
	b.probing = true // half open: one call probes
	return true
}

func (b *breaker) fail(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.count++
	b.probing = false
	if b.count >= b.failures {
		b.openUntil = now.Add(b.cooldown)
	}
}

func (b *breaker) ok() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.count, b.probing = 0, false
}

func (b *breaker) state(now time.Time) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.count < b.failures:
		return "closed"
	case now.Before(b.openUntil):
		return "open"
	default:
		return "half_open"
	}
}
