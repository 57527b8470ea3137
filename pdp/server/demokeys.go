package server

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
)

// ErrDemoKeyAddr: a demo key protects nothing, so a PDP that accepts one
// listens on loopback only.
var ErrDemoKeyAddr = errors.New("a configured key is a demo key (anyone can compute it), so http.addr must be a loopback address; configure keys of your own (pdp hash-key) to listen elsewhere")

// DemoKeyPrefix starts the examples' demo keys: the key of application A
// is "demo-key-A", an auditor's is that or "demo-key-auditor". Anyone who
// reads the README can compute one.
const DemoKeyPrefix = "demo-key-"

// DemoKey is a configured key that is its holder's public demo key.
type DemoKey struct {
	Application string
	Key         string
	Auditor     bool // an auditor key (auth.auditor_keys)
}

// DemoKeys returns the configured application and auditor keys that are
// the demo key of their holder, so that the startup log can print them
// (the examples run on them) and warn that they protect nothing.
func (a AuthConfig) DemoKeys() []DemoKey {
	var out []DemoKey
	for _, set := range []struct {
		keys    []APIKey
		auditor bool
	}{{a.APIKeys, false}, {a.AuditorKeys, true}} {
		for _, k := range set.keys {
			candidates := []string{DemoKeyPrefix + k.Application}
			if set.auditor {
				candidates = append(candidates, DemoKeyPrefix+"auditor")
			}
			for _, key := range candidates {
				sum := sha256.Sum256([]byte(key))
				if strings.EqualFold(k.SHA256, hex.EncodeToString(sum[:])) {
					out = append(out, DemoKey{Application: k.Application, Key: key, Auditor: set.auditor})
					break
				}
			}
		}
	}
	return out
}

// checkDemoKeys refuses to listen beyond loopback with a demo key.
func (c Config) checkDemoKeys() error {
	keys := c.Auth.DemoKeys()
	if len(keys) == 0 {
		return nil
	}
	host, _, _ := net.SplitHostPort(c.HTTP.Addr)
	if !isLoopbackHost(host) {
		return fmt.Errorf("http.addr %q, %s's key: %w", c.HTTP.Addr, keys[0].Application, ErrDemoKeyAddr)
	}
	return nil
}
