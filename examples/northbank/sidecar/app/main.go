// Command app is a stand-in for Northbank's mobile-banking backend behind
// nginx and the PDP sidecar: it trusts nginx to have asked the PDP and
// only says who was allowed to do what, under which decision.
//
//	go run ./examples/northbank/sidecar/app -listen 127.0.0.1:8090
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8090", "address to listen on (loopback: only nginx should reach it)")
	flag.Parse()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("northbank app listening on http://%s\n", ln.Addr())
	log.Fatal(http.Serve(ln, handler()))
}

func handler() http.Handler {
	allowed := func(what string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			// The headers are set by nginx from the sidecar's answer.
			fmt.Fprintf(w, "allowed: user %s %s on account %s%s%s (decision %s)\n", r.Header.Get("X-Authz-Subject"),
				what, r.PathValue("id"), amount(r), actingFor(r), r.Header.Get("X-Decision-Id"))
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /accounts/{id}/statements", allowed("view_statements"))
	mux.HandleFunc("POST /accounts/{id}/payments", allowed("make_payment"))
	return mux
}

// actingFor says whom the decision let the user act for, if anyone.
func actingFor(r *http.Request) string {
	if p := r.Header.Get("X-Authz-On-Behalf-Of"); p != "" {
		return ", for " + p
	}
	return ""
}

// amount describes a payment's amount, as the PDP saw it (the query).
func amount(r *http.Request) string {
	if a := r.URL.Query().Get("amount"); a != "" {
		return fmt.Sprintf(", %s %s", a, r.URL.Query().Get("currency"))
	}
	return ""
}
