package relations

import (
	"errors"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want error
	}{
		{"zero value", Config{}, nil},
		{"postgres", Config{Engine: EnginePostgres, PostgresURI: "postgres://u:p@h:5432/db"}, nil},
		{"remote", Config{Engine: EngineRemote, Endpoint: "spicedb:50051", PresharedKey: "k"}, nil},
		{"remote insecure", Config{Engine: EngineRemote, Endpoint: "127.0.0.1:50051", PresharedKey: "k", Insecure: true}, nil},
		{"listen", Config{Listen: "127.0.0.1:50051"}, nil},
		{"listen tls", Config{Listen: "127.0.0.1:50051", ListenCertFile: "c", ListenKeyFile: "k"}, nil},
		{"cache off", Config{CacheSize: -1, CacheMaxAge: 48 * time.Hour}, nil},
		{"unknown engine", Config{Engine: "mysql"}, ErrEngine},
		{"postgres no uri", Config{Engine: EnginePostgres}, ErrPostgresURI},
		{"postgres bad uri", Config{Engine: EnginePostgres, PostgresURI: "mysql://x"}, ErrPostgresURI},
		{"remote no endpoint", Config{Engine: EngineRemote, PresharedKey: "k"}, ErrEndpoint},
		{"remote url endpoint", Config{Engine: EngineRemote, Endpoint: "https://x:1", PresharedKey: "k"}, ErrEndpoint},
		{"remote no key", Config{Engine: EngineRemote, Endpoint: "x:1"}, ErrPresharedKey},
		{"remote ca and insecure", Config{Engine: EngineRemote, Endpoint: "x:1", PresharedKey: "k", CAFile: "ca", Insecure: true}, ErrTLS},
		{"remote listen", Config{Engine: EngineRemote, Endpoint: "x:1", PresharedKey: "k", Listen: ":1"}, ErrListen},
		{"cert without key", Config{Listen: ":1", ListenCertFile: "c"}, ErrListen},
		{"cert without listen", Config{ListenCertFile: "c", ListenKeyFile: "k"}, ErrListen},
		{"negative duration", Config{CallTimeout: -time.Second}, ErrDuration},
		{"cache age beyond gc window", Config{GCWindow: time.Minute, CacheMaxAge: time.Hour}, ErrCacheAge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.want == nil && err != nil {
				t.Fatalf("Validate() = %v, want nil", err)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("Validate() = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	c := Config{}.WithDefaults()
	if c.Engine != EngineMemory || c.GCWindow != DefaultGCWindow || c.RevisionQuantization != DefaultRevisionQuantization ||
		c.CallTimeout != DefaultCallTimeout || c.CacheSize != DefaultCacheSize || c.CacheMaxAge != DefaultCacheMaxAge {
		t.Errorf("defaults %+v", c)
	}
}
