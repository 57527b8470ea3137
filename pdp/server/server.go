// Package server assembles the PDP server from one validated configuration.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"github.com/ciampdp/pdp/pdp/api"
	"github.com/ciampdp/pdp/pdp/policy"
)

// ListeningMsg is the log message that announces the bound address, once
// the server accepts connections: what scripts (and the tests) wait for.
const ListeningMsg = "listening"

// ErrNotValidated: Open was given a configuration that fails Validate.
var ErrNotValidated = errors.New("invalid configuration")

// Options are what Open needs besides the configuration.
type Options struct {
	// Logger receives the server's logs (nil: slog.Default()).
	Logger *slog.Logger
	// Version is the build's version, recorded in the trail and served.
	Version string
}

// Server is an opened PDP: its stores, trail and API, listening. Run
// serves it; Close (which Run calls) releases what Open opened.
type Server struct {
	cfg      Config
	log      *slog.Logger
	api      *api.Server
	ln       net.Listener
	reloader *policy.Reloader
	keys     map[string]string
	// stopBG stops the background loops (reload, change publishing,
	// checkpoints, retention) once Run's context ends.
	stopBG context.CancelFunc
	// cleanups close in reverse order of opening.
	cleanups  []func()
	closeOnce sync.Once
}

// push adds f to the cleanup stack.
func (s *Server) push(f func()) { s.cleanups = append(s.cleanups, f) }

// Close releases everything Open opened, in reverse order. It is safe to
// call more than once; Run calls it before returning.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		if s.ln != nil {
			_ = s.ln.Close() // already closed after Run: no matter
		}
		s.stopBG()
		for i := len(s.cleanups) - 1; i >= 0; i-- {
			s.cleanups[i]()
		}
	})
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// URL is where the AuthZEN endpoints are: the public URL when one is
// configured, else the bound address.
func (s *Server) URL() string { return serverURL(s.cfg.HTTP, s.ln.Addr()) }

// Open validates cfg, opens the policies, stores, trail and API, and binds
// the listener. ctx bounds the opening; the background loops (reload,
// checkpoints, retention) run until Run's context ends or Close. When it
// fails half-way it closes what it had opened.
func Open(ctx context.Context, cfg Config, opts Options) (_ *Server, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotValidated, err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	s := &Server{cfg: cfg, log: log, stopBG: stopBG, keys: cfg.Auth.Keys()}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if err := s.assemble(ctx, bg, opts.Version); err != nil {
		return nil, err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.HTTP.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	s.ln = ln
	if s.keys == nil && !IsLoopbackAddr(ln.Addr()) {
		// "localhost" resolved to something else: refuse all the same.
		return nil, fmt.Errorf("bound to %s: %w", ln.Addr(), ErrInsecureAddr)
	}
	return s, nil
}

// Run serves until ctx is done, then drains in-flight requests (for
// DrainTimeout of http.shutdown_timeout) and closes the server.
func (s *Server) Run(ctx context.Context) error {
	defer s.Close()
	// The background loops stop when ctx does, as the server drains.
	stop := context.AfterFunc(ctx, s.stopBG)
	defer stop()
	st := s.reloader.Status()
	s.log.Info(ListeningMsg,
		"addr", s.ln.Addr().String(),
		"url", s.URL(),
		"policy_version", st.Active.Hash,
		"policy_commit", st.Active.Commit,
		"policies", st.Policies,
		"source", st.Source,
		"authentication", len(s.keys) > 0)
	if s.cfg.HTTP.PprofAddr != "" {
		// A measuring tool: off unless configured, never on the API's listener.
		if err := ServeProfiles(ctx, s.cfg.HTTP.PprofAddr, s.log); err != nil {
			return err
		}
	}
	if err := s.api.Serve(ctx, s.ln); err != nil {
		return err
	}
	s.log.Info("stopped")
	return nil
}

// IsLoopbackAddr reports whether a is a TCP address on the loopback interface.
func IsLoopbackAddr(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// serverURL is where the AuthZEN endpoints are: the public URL when one is
// configured, else the bound address.
func serverURL(h HTTPConfig, a net.Addr) string {
	if h.PublicURL != "" {
		return h.PublicURL + h.BasePath
	}
	return "http://" + a.String() + h.BasePath
}
