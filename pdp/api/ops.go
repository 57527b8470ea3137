package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/authzen"
	"github.com/ciampdp/pdp/pdp/reason"
	"github.com/labstack/echo/v4"
)

// metadataDoc is the encoded metadata document and the path part of the PDP
// identifier, which the tenant form of the well-known URL must match.
type metadataDoc struct {
	body   []byte
	tenant string
}

// newMetadataDoc describes the PDP at publicURL+basePath.
func newMetadataDoc(publicURL, basePath string, search bool) (*metadataDoc, error) {
	id := strings.TrimRight(publicURL, "/") + basePath
	u, err := url.Parse(id)
	if err != nil {
		return nil, fmt.Errorf("PDP identifier %q: %w", id, err)
	}
	md := authzen.NewMetadata(id)
	if search {
		md = md.WithSearch()
	}
	body, err := json.Marshal(md)
	if err != nil {
		return nil, fmt.Errorf("encode metadata: %w", err)
	}
	return &metadataDoc{body: append(body, '\n'), tenant: strings.Trim(u.Path, "/")}, nil
}

func (s *Server) setPublicURL(publicURL string) error {
	doc, err := newMetadataDoc(publicURL, s.cfg.BasePath, s.searcher != nil)
	if err != nil {
		return err
	}
	s.metadata.Store(doc)
	s.publicURL.Store(strings.TrimRight(publicURL, "/"))
	return nil
}

// wellKnown serves the metadata document, GET only, ignoring any
// Content-Type. The plain form (/.well-known/authzen-configuration) always
// answers: this is a single-tenant PDP. The tenant form
// (/.well-known/authzen-configuration/<path>) answers only for the path of
// the PDP identifier, as the spec builds it, and 404 otherwise.
func (s *Server) wellKnown(c echo.Context) error {
	doc := s.metadata.Load()
	if doc == nil {
		// Handler used without Serve and without PublicURL: the request's
		// own scheme and host are the best guess.
		scheme := "http"
		if c.Request().TLS != nil {
			scheme = "https"
		}
		var err error
		if doc, err = newMetadataDoc(scheme+"://"+c.Request().Host, s.cfg.BasePath, s.searcher != nil); err != nil {
			return fmt.Errorf("well-known: %w", err)
		}
	}
	if tenant := strings.Trim(c.Param("*"), "/"); tenant != "" && tenant != doc.tenant {
		return echo.ErrNotFound
	}
	c.Response().Header().Set("Cache-Control", "max-age=300")
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, doc.body)
}

// policyStatus serves the policy loader's state (authenticated).
func (s *Server) policyStatus(c echo.Context) error {
	return writeJSON(c, http.StatusOK, s.policies.Status())
}

// healthz answers 200 while the process runs.
func (s *Server) healthz(c echo.Context) error {
	return writeJSON(c, http.StatusOK, struct {
		Status  string `json:"status"`
		Version string `json:"version,omitempty"`
	}{"ok", s.version})
}

// readyz answers 200 once a policy version is active and while decisions
// can be recorded in the trail; else 503 (with reason trail_unavailable
// and the trail's error when it is the trail).
func (s *Server) readyz(c echo.Context) error {
	hash := s.policies.Status().Active.Hash
	if hash == "" {
		return fmt.Errorf("readyz: %w", pdp.ErrNotReady)
	}
	if s.trail != nil {
		if err := s.trail.Ready(c.Request().Context()); err != nil {
			return writeJSON(c, http.StatusServiceUnavailable, struct {
				Status        string `json:"status"`
				Reason        string `json:"reason"`
				Error         string `json:"error"`
				PolicyVersion string `json:"policy_version"`
			}{"not_ready", reason.TrailUnavailable, err.Error(), hash})
		}
	}
	return writeJSON(c, http.StatusOK, struct {
		Status        string `json:"status"`
		PolicyVersion string `json:"policy_version"`
	}{"ready", hash})
}
