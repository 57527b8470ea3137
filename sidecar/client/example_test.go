package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"strings"

	"github.com/ciampdp/pdp/sidecar/client"
)

func ExampleClient_Evaluate() {
	c, err := client.New("http://localhost:8181", client.WithAPIKey("mobile-banking-key"))
	if err != nil {
		log.Fatal(err)
	}
	// After a revocation the admin API handed out a revision token: ask
	// for a decision at least that fresh.
	ctx := client.WithConsistencyToken(context.Background(), "token-from-the-revocation")
	d, err := c.Evaluate(ctx, client.Request{
		Subject:  client.Entity{Type: "user", ID: "bob"},
		Action:   client.Action{Name: "make_payment"},
		Resource: client.Entity{Type: "account", ID: "acc-alice"},
		Context: map[string]any{"purpose": "account_servicing", "amount": 250, "currency": "EUR",
			"on_behalf_of": map[string]any{"type": "user", "id": "alice"}},
	})
	switch {
	case errors.Is(err, client.ErrUnavailable):
		fmt.Println("PDP unavailable: refuse (fail closed)")
	case err != nil:
		log.Fatal(err)
	case d.HasObligation("step_up_authentication"):
		fmt.Println("ask for a second factor, then retry")
	case !d.Allowed:
		fmt.Println("denied:", d.Reasons, d.DecisionID)
	}
}

func ExampleMiddleware() {
	c, err := client.New("http://localhost:8181", client.WithAPIKey("mobile-banking-key"))
	if err != nil {
		log.Fatal(err)
	}
	// GET /accounts/{id}/statements → view_statements on that account,
	// for the user the application's own authentication put in X-User.
	mapper := func(r *http.Request) (client.Request, error) {
		id, ok := strings.CutPrefix(r.URL.Path, "/accounts/")
		id, ok2 := strings.CutSuffix(id, "/statements")
		if !ok || !ok2 || r.Method != http.MethodGet {
			return client.Request{}, &client.Rejection{Status: http.StatusForbidden, Reasons: []string{"route_not_found"}}
		}
		userID := r.Header.Get("X-User")
		if userID == "" {
			return client.Request{}, &client.Rejection{Status: http.StatusUnauthorized}
		}
		return client.Request{
			Subject:  client.Entity{Type: "user", ID: userID},
			Action:   client.Action{Name: "view_statements"},
			Resource: client.Entity{Type: "account", ID: id},
			Context:  map[string]any{"purpose": "account_servicing"},
		}, nil
	}
	statements := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, _ := client.DecisionFrom(r.Context())
		fmt.Fprintln(w, "statements, decision", d.DecisionID)
	})
	http.Handle("/accounts/", client.Middleware(c, mapper)(statements))
}
