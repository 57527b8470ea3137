package relations

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgEnv names the variable that points the tests at PostgreSQL.
const pgEnv = "PDP_TEST_POSTGRES_URL"

func TestMain(m *testing.M) {
	if os.Getenv(pgEnv) == "" {
		fmt.Fprintf(os.Stderr, "\n*** relations: %s is not set: every PostgreSQL test and benchmark is SKIPPED.\n"+
			"*** Start one with: export %s=$(scripts/postgres.sh start)\n\n", pgEnv, pgEnv)
	}
	os.Exit(m.Run())
}

// testLog is shared by every store of the test binary: SpiceDB's own
// logging is routed, once per process, to the first store's logger.
var testLog = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

const testSchema = `use expiration

definition user {}

caveat within_limit(amount int, limit int) {
	amount <= limit
}

caveat valid(now timestamp, valid_from timestamp, valid_until timestamp) {
	now >= valid_from && now < valid_until
}

definition group {
	relation member: user
}

definition account {
	relation owner: user
	relation delegate: user with within_limit | user with valid | user with expiration
	relation viewer: user | group#member
	permission manage = owner
	permission pay = owner + delegate
	permission view = viewer + pay
}
`

// mode is one way of running SpiceDB; every behaviour test runs in each.
type mode struct {
	name string
	// open returns a Store with testSchema written, closed at cleanup.
	open func(t testing.TB, cfg Config) *env
}

// env is a store under test, plus what a mode can offer beyond it.
type env struct {
	*Store
	// peer is a second Store on the same facts (another replica), or nil.
	peer func(t testing.TB, cfg Config) *Store
	// stopServer stops the SpiceDB the store talks to.
	stopServer func()
}

var modes = []mode{
	{name: "memory", open: openMemory},
	{name: "postgres", open: openPostgres},
	{name: "remote", open: openRemote},
}

// forEachMode runs fn as a subtest per mode.
func forEachMode(t *testing.T, fn func(t *testing.T, m mode)) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) { fn(t, m) })
	}
}

func openT(t testing.TB, cfg Config) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := Open(ctx, cfg, testLog)
	if err != nil {
		t.Fatalf("Open(%s): %v", cfg.Engine, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func withSchema(t testing.TB, s *Store) *Store {
	t.Helper()
	if _, err := s.WriteSchema(context.Background(), testSchema); err != nil {
		t.Fatalf("WriteSchema: %v", err)
	}
	return s
}

func openMemory(t testing.TB, cfg Config) *env {
	cfg.Engine = EngineMemory
	s := withSchema(t, openT(t, cfg))
	return &env{Store: s, stopServer: s.emb.stop}
}

func openPostgres(t testing.TB, cfg Config) *env {
	uri := testDatabase(t)
	cfg.Engine, cfg.PostgresURI = EnginePostgres, uri
	s := withSchema(t, openT(t, cfg))
	return &env{
		Store:      s,
		stopServer: s.emb.stop,
		peer: func(t testing.TB, cfg Config) *Store {
			cfg.Engine, cfg.PostgresURI = EnginePostgres, uri
			// A second datastore on one database waits for the revision
			// heartbeat lock in uninterruptible sleeps of this period,
			// which Close waits out.
			cfg.RevisionQuantization = time.Second
			return openT(t, cfg)
		},
	}
}

// openRemote starts an embedded SpiceDB that also serves TLS on a loopback
// port and connects to it as a remote Store. The embedded store is the peer.
func openRemote(t testing.TB, cfg Config) *env {
	dir := t.TempDir()
	certFile, keyFile := selfSignedCert(t, dir)
	key := "remote-test-key"
	server := withSchema(t, openT(t, Config{
		Engine: EngineMemory, PresharedKey: key,
		Listen: freeAddr(t), ListenCertFile: certFile, ListenKeyFile: keyFile,
	}))
	cfg.Engine, cfg.Endpoint, cfg.PresharedKey, cfg.CAFile = EngineRemote, server.cfg.Listen, key, certFile
	s := openT(t, cfg)
	return &env{
		Store:      s,
		stopServer: server.emb.stop,
		peer:       func(testing.TB, Config) *Store { return server },
	}
}

// testDatabase creates a fresh database for one test (dropped at cleanup)
// on the server of PDP_TEST_POSTGRES_URL, or skips the test without it.
func testDatabase(t testing.TB) string {
	t.Helper()
	base := os.Getenv(pgEnv)
	if base == "" {
		t.Skipf("SKIPPED: %s is not set (export %s=$(scripts/postgres.sh start))", pgEnv, pgEnv)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect to %s: %v", pgEnv, err)
	}
	defer conn.Close(ctx)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "pdp_t_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("drop database %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		// An autovacuum worker on the database cannot be terminated by
		// the test role (SQLSTATE 42501): it finishes within moments, so
		// retry the drop for a while.
		for attempt := 0; ; attempt++ {
			_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			if err == nil || !strings.Contains(err.Error(), "42501") || attempt == 50 {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse %s: %v", pgEnv, err)
	}
	u.Path = "/" + name
	return u.String()
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// selfSignedCert writes a certificate for 127.0.0.1 (its own CA) and its key.
func selfSignedCert(t testing.TB, dir string) (certFile, keyFile string) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "relations test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "PRIVATE KEY", keyDER)
	return certFile, keyFile
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// Shorthands for tests.
func user(id string) Object    { return Object{Type: "user", ID: id} }
func account(id string) Object { return Object{Type: "account", ID: id} }

func rel(res Object, relation string, sub Object) Relationship {
	return Relationship{Resource: res, Relation: relation, Subject: sub}
}

func touch(rels ...Relationship) []Update {
	out := make([]Update, len(rels))
	for i, r := range rels {
		out[i] = Update{Op: OpTouch, Rel: r}
	}
	return out
}

func mustWrite(t testing.TB, s *Store, updates []Update) string {
	t.Helper()
	token, err := s.WriteRelationships(context.Background(), updates)
	if err != nil {
		t.Fatalf("WriteRelationships: %v", err)
	}
	if token == "" {
		t.Fatal("WriteRelationships returned no token")
	}
	return token
}

func mustCheck(t testing.TB, s *Store, checks ...Check) Results {
	t.Helper()
	res, err := s.CheckBulk(context.Background(), checks)
	if err != nil {
		t.Fatalf("CheckBulk: %v", err)
	}
	if len(res.Items) != len(checks) {
		t.Fatalf("CheckBulk: %d results for %d checks", len(res.Items), len(checks))
	}
	return res
}

// outcome renders a result as HAS, NO or CONDITIONAL[missing...].
func outcome(r Result) string {
	switch {
	case r.Has && r.Conditional:
		return "BOTH?!"
	case r.Has:
		return "HAS"
	case r.Conditional:
		return fmt.Sprintf("CONDITIONAL%v", r.MissingContext)
	}
	return "NO"
}
