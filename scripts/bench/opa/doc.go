// Package opa holds the OPA side of scripts/bench-trail-http.sh: a Rego
// policy (todo.rego) and its data (data.json) that decide the Todo
// example's AuthZEN requests as examples/authzen-todo's Cedar policies do,
// and the tests that check they do. The tests need an OPA binary (OPA=path,
// $HOME/.cache/pdp-bench/bin/opa or opa on PATH) and skip without one.
package opa
