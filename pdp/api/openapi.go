package api

import (
	_ "embed"
	"net/http"

	"github.com/labstack/echo/v4"
)

// OpenAPIPath serves the OpenAPI 3.1 document of this API.
const OpenAPIPath = "/openapi.json"

// OpenAPI is the OpenAPI 3.1 document of every endpoint the server can
// register, as served at OpenAPIPath. It is plain bytes: the binary needs
// no OpenAPI library, the tests check the document against the routes and
// the traffic.
//
//go:embed openapi.json
var OpenAPI []byte

// openAPI serves the document.
func (s *Server) openAPI(c echo.Context) error {
	c.Response().Header().Set("Cache-Control", "max-age=300")
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, OpenAPI)
}
