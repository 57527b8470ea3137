package jwtverify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// ErrKeysUnavailable is returned when no verification keys can be loaded:
// an infrastructure failure, answered like an unreachable PDP (deny), not
// as the caller's fault.
var ErrKeysUnavailable = errors.New("verification keys unavailable")

// maxJWKSBytes bounds a JWKS document.
const maxJWKSBytes = 1 << 20

// jwksFetchTimeout bounds one JWKS download when the caller's context has
// no earlier deadline.
const jwksFetchTimeout = 10 * time.Second

// keySet caches the public keys of a JWKS file or https URL. It reloads
// them when they are older than maxAge, and on demand (an unknown key id)
// at most once per minGap. One reload runs at a time; callers that need
// it wait for it, others keep using the cached keys. When a reload fails
// the previous keys stay in use.
type keySet struct {
	file   string
	url    string
	hc     *http.Client
	log    *slog.Logger
	now    func() time.Time
	maxAge time.Duration
	minGap time.Duration

	load sync.Mutex // serialises reloads; never held with mu waiting on it

	mu       sync.Mutex // guards the fields below; held only briefly
	keys     []jose.JSONWebKey
	gen      uint64    // counts successful loads
	loadedAt time.Time // last successful load
	tried    time.Time // last attempt
	attempts uint64    // counts attempts
	lastErr  error     // error of the last attempt, nil if it succeeded
}

// snapshot returns the keys, their generation, the time of the last load
// and attempt, and the number of attempts.
func (s *keySet) snapshot() (keys []jose.JSONWebKey, gen uint64, loaded, tried time.Time, attempts uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys, s.gen, s.loadedAt, s.tried, s.attempts
}

// noKeysGap is the least time between attempts while no keys are loaded
// at all (capped by minGap), so that a JWKS source that is down at start-up
// is not asked once per request.
const noKeysGap = 5 * time.Second

// needsLoad reports whether the keys must be (re)loaded now: there are
// none, or they are older than maxAge; in both cases only if the last
// attempt is not too recent (do not hammer a source that is down).
func (s *keySet) needsLoad(keys []jose.JSONWebKey, loaded, tried time.Time) bool {
	since := s.now().Sub(tried)
	if keys == nil {
		return tried.IsZero() || since >= min(s.minGap, noKeysGap)
	}
	return s.now().Sub(loaded) >= s.maxAge && since >= s.minGap
}

// current returns the cached keys and their generation, loading them
// first when there are none or they are older than maxAge.
func (s *keySet) current(ctx context.Context) ([]jose.JSONWebKey, uint64, error) {
	keys, _, loaded, tried, attempts := s.snapshot()
	if s.needsLoad(keys, loaded, tried) {
		s.load.Lock()
		// Reload unless another caller attempted while we waited: a herd
		// of requests makes one attempt, not one each.
		if _, _, _, _, n := s.snapshot(); n == attempts {
			_ = s.reload(ctx) // logged; the old keys, if any, stay
		}
		s.load.Unlock()
	}
	keys, gen, _, _, _ := s.snapshot()
	if keys == nil {
		s.mu.Lock()
		err := s.lastErr
		s.mu.Unlock()
		if err == nil {
			err = fmt.Errorf("%w: %s: no keys loaded", ErrKeysUnavailable, s.source())
		}
		return nil, 0, err
	}
	return keys, gen, nil
}

// refresh reloads the keys because a token named a key id that the keys
// of generation seen lack, unless a load was attempted less than minGap
// ago. It reports whether there are newer keys than seen.
func (s *keySet) refresh(ctx context.Context, seen uint64) (bool, error) {
	s.load.Lock()
	defer s.load.Unlock()
	_, gen, _, tried, _ := s.snapshot()
	if gen != seen {
		return true, nil // another caller reloaded meanwhile
	}
	if !tried.IsZero() && s.now().Sub(tried) < s.minGap {
		s.mu.Lock()
		err := s.lastErr
		s.mu.Unlock()
		return false, err // the source just failed: the key may exist, we cannot know
	}
	if err := s.reload(ctx); err != nil {
		return false, err
	}
	return true, nil
}

// reload loads the keys; s.load is held.
func (s *keySet) reload(ctx context.Context) error {
	now := s.now()
	s.mu.Lock()
	s.tried = now
	s.attempts++
	s.mu.Unlock()
	raw, err := s.read(ctx)
	if err == nil {
		var keys []jose.JSONWebKey
		if keys, err = ParseJWKS(raw); err == nil {
			s.mu.Lock()
			s.keys, s.loadedAt, s.lastErr = keys, now, nil
			s.gen++
			s.mu.Unlock()
			s.log.DebugContext(ctx, "verification keys loaded", "source", s.source(), "keys", len(keys))
			return nil
		}
	}
	s.log.WarnContext(ctx, "loading verification keys failed", "source", s.source(), "err", err)
	err = fmt.Errorf("%w: %s: %w", ErrKeysUnavailable, s.source(), err)
	s.mu.Lock()
	s.lastErr = err
	s.mu.Unlock()
	return err
}

func (s *keySet) source() string {
	if s.file != "" {
		return s.file
	}
	return s.url
}

func (s *keySet) read(ctx context.Context) ([]byte, error) {
	if s.file != "" {
		f, err := os.Open(s.file)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return readLimited(f)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, jwksFetchTimeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	res, err := s.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: status %d", s.url, res.StatusCode)
	}
	return readLimited(res.Body)
}

func readLimited(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxJWKSBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxJWKSBytes {
		return nil, fmt.Errorf("JWKS larger than %d bytes", maxJWKSBytes)
	}
	return b, nil
}

// ParseJWKS decodes a JWKS and keeps the usable signature keys: public
// (private halves are dropped), asymmetric, and not marked for encryption.
func ParseJWKS(raw []byte) ([]jose.JSONWebKey, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil {
		return nil, fmt.Errorf("decode JWKS: %w", err)
	}
	keys := make([]jose.JSONWebKey, 0, len(set.Keys))
	for _, k := range set.Keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		if _, symmetric := k.Key.([]byte); symmetric {
			continue
		}
		pub := k.Public()
		if !pub.Valid() {
			continue
		}
		keys = append(keys, pub)
	}
	if len(keys) == 0 {
		return nil, errors.New("JWKS holds no usable signature keys")
	}
	return keys, nil
}
