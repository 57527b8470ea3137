package server

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

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
