package gateway

import (
	"context"
	"errors"
	"net/http"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/authzen"
	"github.com/ciampdp/pdp/sidecar/client"
)

// ClientEvaluator evaluates through the central PDP's AuthZEN API.
type ClientEvaluator struct {
	Client *client.Client
}

var _ Evaluator = ClientEvaluator{}

// Evaluate sends req to the central PDP. An error (unreachable, timeout,
// any non-200 answer) means no decision.
func (e ClientEvaluator) Evaluate(ctx context.Context, req pdp.Request) (authzen.DecisionResponse, error) {
	d, err := e.Client.Evaluate(ctx, ToClientRequest(req))
	if err != nil {
		return authzen.DecisionResponse{}, err
	}
	return authzen.DecisionResponse{Decision: d.Allowed, Context: &authzen.DecisionContext{
		DecisionID:       d.DecisionID,
		PolicyVersion:    d.PolicyVersion,
		Policies:         nonNil(d.Policies),
		Reasons:          nonNil(d.Reasons),
		Obligations:      nonNil(d.Obligations),
		Message:          d.Message,
		Delegations:      d.Delegations,
		DelegationStatus: d.DelegationStatus,
	}}, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// ToClientRequest converts an engine-shaped request to the client's wire
// type (the same JSON; Application is never sent).
func ToClientRequest(r pdp.Request) client.Request {
	return client.Request{
		Subject:  client.Entity{Type: r.Subject.Type, ID: r.Subject.ID, Properties: r.Subject.Properties},
		Action:   client.Action{Name: r.Action.Name, Properties: r.Action.Properties},
		Resource: client.Entity{Type: r.Resource.Type, ID: r.Resource.ID, Properties: r.Resource.Properties},
		Context:  r.Context,
	}
}

// Mapper returns a client.Mapper that maps an application's incoming
// requests with this gateway's route table and subject config, for
// client.Middleware: the same mapping as the proxy adapters, inside the
// application. A request the gateway answers itself becomes a
// *client.Rejection (401, 403 for no route or an invalid path or value,
// 503 when the JWKS cannot be loaded), or client.ErrSkip when no route
// matches and unmatched is allow.
func (g *Gateway) Mapper() client.Mapper {
	return func(r *http.Request) (client.Request, error) {
		gr := Request{Method: r.Method, Path: r.URL.EscapedPath(), RawQuery: r.URL.RawQuery, Header: r.Header}
		req, early := g.prepare(r.Context(), gr)
		if early != nil {
			g.logVerdict(r.Context(), gr, early)
			if early.Allowed() {
				return client.Request{}, client.ErrSkip
			}
			err := early.Err
			if err == nil {
				err = errors.New("refused by the gateway")
			}
			return client.Request{}, &client.Rejection{Status: early.Status, Reasons: early.Reasons,
				DecisionID: early.DecisionID, Challenge: early.Challenge, Err: err}
		}
		return ToClientRequest(req.Request), nil
	}
}
