package signalout

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkDelegationChanged is what a revocation's call pays for one
// receiver: sign the SET (ES256) and append it to the outbox (no fsync,
// no network).
func BenchmarkDelegationChanged(b *testing.B) {
	tx, err := Open(Config{Issuer: testIssuer, Key: newKey(b), OutboxPath: filepath.Join(b.TempDir(), "o.jsonl"),
		RetryMin: time.Hour, Receivers: []Receiver{{Endpoint: "http://127.0.0.1:1/", Audience: testAudience}}})
	if err != nil {
		b.Fatal(err)
	}
	defer tx.Close()
	c := revoked("d1")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		tx.DelegationChanged(ctx, c)
	}
}
