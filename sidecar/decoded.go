package sidecar

import (
	"sync"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/authzen"
)

// decodedBodies remembers what the strict AuthZEN decoder made of request
// bodies it accepted, with their cache keys: a repeated question (what a
// cache hit is) skips decoding and the key's encoding. Decoding is a pure
// function of the bytes, so a body found here is exactly as checked as
// one decoded again; a body the decoder refused is never remembered and
// is refused again, with the decoder's message.
//
// Bounded: when full it is emptied (the questions asked now come back in
// the next few requests). The requests it hands out are shared: read only.
type decodedBodies struct {
	mu  sync.RWMutex
	m   map[string]decodedBody
	max int // 0: nothing remembered
}

type decodedBody struct {
	req pdp.Request
	key string
}

// maxDecodedBody is the largest body remembered (a question repeated from
// a cache is a few hundred bytes).
const maxDecodedBody = 2048

// maxDecodedBodies bounds the bodies remembered (at most ~8 MiB of keys).
const maxDecodedBodies = 4096

func newDecodedBodies(cacheSize int) *decodedBodies {
	n := min(cacheSize, maxDecodedBodies)
	return &decodedBodies{m: make(map[string]decodedBody, n), max: n}
}

// decode returns the request in body and its cache key.
func (d *decodedBodies) decode(body []byte) (pdp.Request, string, error) {
	remember := d.max > 0 && len(body) <= maxDecodedBody
	if remember {
		d.mu.RLock()
		e, ok := d.m[string(body)]
		d.mu.RUnlock()
		if ok {
			return e.req, e.key, nil
		}
	}
	req, err := authzen.DecodeEvaluation(body)
	if err != nil {
		return pdp.Request{}, "", err
	}
	key, err := cacheKey(req)
	if err != nil {
		return pdp.Request{}, "", err
	}
	if remember {
		d.mu.Lock()
		if len(d.m) >= d.max {
			clear(d.m)
		}
		d.m[string(body)] = decodedBody{req: req, key: key}
		d.mu.Unlock()
	}
	return req, key, nil
}
