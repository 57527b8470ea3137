package relations

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// dialRemote connects to a SpiceDB service: TLS with the system roots or
// cfg.CAFile (plaintext only with cfg.Insecure), the preshared key as bearer
// token. The connection is lazy; Open checks it with a first call.
func dialRemote(cfg Config) (*grpc.ClientConn, error) {
	creds := insecure.NewCredentials()
	if !cfg.Insecure {
		tlsCfg, err := tlsConfig(cfg.CAFile)
		if err != nil {
			return nil, err
		}
		creds = credentials.NewTLS(tlsCfg)
	}
	conn, err := grpc.NewClient(cfg.Endpoint,
		grpc.WithTransportCredentials(creds),
		grpc.WithPerRPCCredentials(bearerToken{token: cfg.PresharedKey, tls: !cfg.Insecure}),
	)
	if err != nil {
		return nil, fmt.Errorf("relations: dial %s: %w", cfg.Endpoint, err)
	}
	return conn, nil
}

// tlsConfig trusts the certificates of caFile, or the system roots when it
// is empty.
func tlsConfig(caFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile == "" {
		return cfg, nil // nil RootCAs: the system roots
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("relations: read CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("relations: no PEM certificate in %s", caFile)
	}
	cfg.RootCAs = pool
	return cfg, nil
}

// bearerToken sends SpiceDB's preshared key with every call. Over TLS gRPC
// refuses to send it on a plaintext connection.
type bearerToken struct {
	token string
	tls   bool
}

func (b bearerToken) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.token}, nil
}

func (b bearerToken) RequireTransportSecurity() bool { return b.tls }
