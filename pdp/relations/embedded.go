package relations

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/authzed/spicedb/pkg/cmd/datastore"
	"github.com/authzed/spicedb/pkg/cmd/server"
	"github.com/authzed/spicedb/pkg/cmd/util"
	spicedatastore "github.com/authzed/spicedb/pkg/datastore"
	"github.com/authzed/spicedb/pkg/datastore/migration"
	"github.com/authzed/spicedb/pkg/migrate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// failFast replaces the wait-for-ready service config of SpiceDB's in-memory
// client: a stopped embedded server must make calls fail at once (and the
// decision deny with facts_unavailable), not wait for the deadline.
const failFast = `{"methodConfig": [{"name": [{}], "waitForReady": false}]}`

// dispatchCacheSize caps SpiceDB's own check cache; its default (30% of the
// machine's memory) suits a dedicated SpiceDB server, not a library.
const dispatchCacheSize = "64MiB"

// embeddedServer is a SpiceDB server running in this process.
type embeddedServer struct {
	ds     spicedatastore.Datastore
	cancel context.CancelFunc
	done   chan struct{}
	log    *slog.Logger
	once   sync.Once
}

// Migrate brings the SpiceDB tables of a PostgreSQL database to the newest
// version (what `spicedb datastore migrate head` does). Open runs it for
// EnginePostgres; it is exported for a separate `pdp migrate` step.
func Migrate(ctx context.Context, postgresURI string) error {
	err := migration.Run(ctx, &migration.Config{
		DatastoreEngine: datastore.PostgresEngine,
		DatastoreURI:    postgresURI,
		Timeout:         time.Hour,
		BatchSize:       1000,
	}, migrate.Head)
	if err != nil {
		return fmt.Errorf("relations: migrate postgres: %w", err)
	}
	return nil
}

// startEmbedded builds the datastore, starts SpiceDB on it and returns a
// client connection to it. cfg has its defaults and a preshared key.
// streamingTimeout bounds one streaming call (bulk import, lookups) of the
// embedded SpiceDB.
const streamingTimeout = 10 * time.Minute

func startEmbedded(ctx context.Context, cfg Config, logger *slog.Logger) (*embeddedServer, *grpc.ClientConn, error) {
	quietSpiceDB(logger)
	dsOpts := []datastore.ConfigOption{
		datastore.DefaultDatastoreConfig().ToOption(),
		datastore.WithEngine(cfg.Engine),
		datastore.WithGCWindow(cfg.GCWindow),
		datastore.WithRevisionQuantization(cfg.RevisionQuantization),
		// The server only turns the heartbeat on for datastores it builds.
		datastore.WithEnableRevisionHeartbeat(true),
		// Its collectors go to the global Prometheus registry and cannot be
		// registered twice (several stores in one process, tests).
		datastore.WithEnableDatastoreMetrics(false),
	}
	if cfg.Engine == EnginePostgres {
		if err := Migrate(ctx, cfg.PostgresURI); err != nil {
			return nil, nil, err
		}
		dsOpts = append(dsOpts, datastore.WithURI(cfg.PostgresURI))
	}
	ds, err := datastore.NewDatastore(ctx, dsOpts...)
	if err != nil {
		return nil, nil, fmt.Errorf("relations: open %s datastore: %w", cfg.Engine, err)
	}

	grpcCfg := util.GRPCServerConfig{Network: util.BufferedNetwork, Enabled: true}
	if cfg.Listen != "" {
		grpcCfg = util.GRPCServerConfig{
			Network: "tcp", Address: cfg.Listen, Enabled: true,
			TLSCertPath: cfg.ListenCertFile, TLSKeyPath: cfg.ListenKeyFile,
			MaxConnAge: 30 * time.Second,
		}
	}
	srvCfg := server.NewConfigWithOptionsAndDefaults(
		server.WithDatastore(ds),
		server.WithPresharedSecureKey(cfg.PresharedKey),
		server.WithGRPCServer(grpcCfg),
		server.WithHTTPGateway(util.HTTPServerConfig{HTTPEnabled: false}),
		server.WithMetricsAPI(util.HTTPServerConfig{HTTPEnabled: false}),
		server.WithDispatchServer(util.GRPCServerConfig{Enabled: false}),
		server.WithDispatchCacheConfig(server.CacheConfig{Name: "dispatch", Enabled: true, MaxCost: dispatchCacheSize}),
		server.WithSilentlyDisableTelemetry(true),
		server.WithTelemetryEndpoint(""),
		server.WithEnableMemoryProtectionMiddleware(false),
		server.WithShutdownGracePeriod(time.Second),
		// Bulk imports stream for minutes; the default cuts streams at 30 s.
		server.WithStreamingAPITimeout(streamingTimeout),
	)
	rs, err := srvCfg.Complete(ctx)
	if err != nil {
		ds.Close()
		return nil, nil, fmt.Errorf("relations: start embedded spicedb: %w", err)
	}

	// The server lives until Close, not as long as the caller's context.
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	emb := &embeddedServer{ds: ds, cancel: cancel, done: make(chan struct{}), log: logger}
	go func() {
		defer close(emb.done)
		if err := rs.Run(runCtx); err != nil && runCtx.Err() == nil {
			logger.Error("embedded spicedb stopped", "err", err)
		}
	}()

	creds := insecure.NewCredentials()
	if cfg.ListenCertFile != "" {
		tlsCfg, err := tlsConfig(cfg.ListenCertFile)
		if err != nil {
			emb.stop()
			return nil, nil, err
		}
		creds = credentials.NewTLS(tlsCfg)
	}
	conn, err := rs.NewClient(
		grpc.WithDefaultServiceConfig(failFast),
		grpc.WithTransportCredentials(creds),
		grpc.WithPerRPCCredentials(bearerToken{token: cfg.PresharedKey, tls: cfg.ListenCertFile != ""}),
	)
	if err != nil {
		emb.stop()
		return nil, nil, fmt.Errorf("relations: connect to embedded spicedb: %w", err)
	}
	return emb, conn, nil
}

// stop shuts the server down and closes the datastore; the server does not
// close a datastore it was handed.
func (e *embeddedServer) stop() {
	e.once.Do(func() {
		e.cancel()
		select {
		case <-e.done:
		case <-time.After(10 * time.Second):
			e.log.Warn("embedded spicedb did not stop within 10s")
		}
		if err := e.ds.Close(); err != nil {
			e.log.Warn("close spicedb datastore", "err", err)
		}
	})
}

// randomKey returns a fresh preshared key for an embedded server.
func randomKey() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
