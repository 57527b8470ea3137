package api

import (
	"net/http"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/labstack/echo/v4"
)

// Routes of the PDP as an SSF transmitter of its own changes.
const (
	// SSFConfigurationPath is the transmitter configuration metadata
	// (OpenID Shared Signals Framework 1.0, section 7.1).
	SSFConfigurationPath = "/.well-known/ssf-configuration"
	// SSFJWKSPath is the public keys its SETs are signed with.
	SSFJWKSPath = "/.well-known/ssf-jwks.json"
	// pushDeliveryMethod is RFC 8935 push delivery's URN.
	pushDeliveryMethod = "urn:ietf:rfc:8935"
)

// Transmitter is the PDP as a transmitter of its own changes.
type Transmitter interface {
	// Issuer is the SETs' iss.
	Issuer() string
	// JWKS is the public keys receivers verify the SETs with.
	JWKS() jose.JSONWebKeySet
}

// ssfConfiguration is the transmitter configuration metadata the PDP
// offers: push delivery to configured receivers, no stream management.
type ssfConfiguration struct {
	SpecVersion              string   `json:"spec_version"`
	Issuer                   string   `json:"issuer"`
	JWKSURI                  string   `json:"jwks_uri"`
	DeliveryMethodsSupported []string `json:"delivery_methods_supported"`
}

func (s *Server) transmitterRoutes(e *echo.Echo) {
	if s.transmitter == nil {
		return
	}
	e.GET(SSFConfigurationPath, s.ssfConfiguration)
	e.GET(SSFJWKSPath, s.ssfJWKS)
}

// ssfConfiguration serves the transmitter configuration metadata; its
// jwks_uri is under the PDP's public URL (the request's own host until it
// is known).
func (s *Server) ssfConfiguration(c echo.Context) error {
	base, _ := s.publicURL.Load().(string)
	if base == "" {
		scheme := "http"
		if c.Request().TLS != nil {
			scheme = "https"
		}
		base = scheme + "://" + c.Request().Host
	}
	c.Response().Header().Set("Cache-Control", "max-age=300")
	return c.JSON(http.StatusOK, ssfConfiguration{SpecVersion: "1_0", Issuer: s.transmitter.Issuer(),
		JWKSURI: base + SSFJWKSPath, DeliveryMethodsSupported: []string{pushDeliveryMethod}})
}

// ssfJWKS serves the transmitter's public keys.
func (s *Server) ssfJWKS(c echo.Context) error {
	c.Response().Header().Set("Cache-Control", "max-age=300")
	return c.JSON(http.StatusOK, s.transmitter.JWKS())
}
