// Package client is the Go client of the PDP's AuthZEN Authorization API
// 1.0 for applications: typed single and batch evaluations and the three
// searches, typed errors, consistency tokens, and an http.Handler
// middleware that enforces decisions (deny → 403, PDP unreachable → 503).
//
// It depends on the standard library only, so that an application pays
// for no engine code; its wire types mirror pdp.Request and
// pdp/authzen's answers (the tests check the two against the real server).
//
//	c, err := client.New("http://localhost:8181", client.WithAPIKey(key))
//	d, err := c.Evaluate(ctx, client.Request{
//		Subject:  client.Entity{Type: "user", ID: "bob"},
//		Action:   client.Action{Name: "make_payment"},
//		Resource: client.Entity{Type: "account", ID: "acc-alice"},
//		Context:  map[string]any{"amount": 250, "currency": "EUR"},
//	})
//	if d.Allowed { … }
package client
