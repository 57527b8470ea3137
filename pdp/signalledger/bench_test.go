package signalledger

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/ciampdp/pdp/pdp/signals"
)

// BenchmarkIngest: SET ingestion, verification (ES256) and a durable
// append to the file ledger (one fsync per SET), and to PostgreSQL when
// PDP_TEST_POSTGRES_URL is set.
func BenchmarkIngest(b *testing.B) {
	pk, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	key := jose.JSONWebKey{Key: pk, KeyID: "k", Algorithm: "ES256"}
	v, err := signals.NewVerifier([]signals.Transmitter{{Issuer: testIss, Audience: []string{"https://pdp.example/"}, Keys: signals.StaticKeys{key.Public()}}})
	if err != nil {
		b.Fatal(err)
	}
	reg := northbankRegistry(b)
	opens := map[string]func(b *testing.B) Store{
		"file": func(b *testing.B) Store {
			s, err := OpenFile(filepath.Join(b.TempDir(), "s.jsonl"), nil)
			if err != nil {
				b.Fatal(err)
			}
			return s
		},
	}
	if uri := os.Getenv("PDP_TEST_POSTGRES_URL"); uri != "" {
		opens["postgres"] = func(b *testing.B) Store {
			s, err := OpenPostgres(context.Background(), uri)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := s.pool.Exec(context.Background(), "TRUNCATE pdp_signal_events"); err != nil {
				b.Fatal(err)
			}
			return s
		}
	}
	for name, open := range opens {
		b.Run(name, func(b *testing.B) {
			st := open(b)
			defer st.Close()
			l, err := NewLedger(context.Background(), LedgerConfig{Store: st, Registry: func() *signals.Registry { return reg }})
			if err != nil {
				b.Fatal(err)
			}
			i := 0
			now := time.Now()
			next := func() []byte {
				i++
				tok, err := signals.Sign(key, map[string]any{"iss": testIss, "aud": "https://pdp.example/", "iat": now.Unix(),
					"jti": fmt.Sprintf("b-%d", i), "sub_id": map[string]any{"format": "iss_sub", "iss": idpIss, "sub": fmt.Sprintf("u%d", i%100)},
					"events": map[string]any{signals.RISCPrefix + "credential-compromise": map[string]any{"credential_type": "password"}}})
				if err != nil {
					b.Fatal(err)
				}
				return []byte(tok)
			}
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				raw := next()
				b.StartTimer()
				s, err := v.Verify(raw, now)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := l.Receive(context.Background(), s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
