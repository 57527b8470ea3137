// Package pdp owns the decision path: it turns an AuthZEN-shaped Request into a
// Decision by evaluating the active Cedar policy bundle, and keeps the complete
// Cedar input of every decision so that it can be recorded and replayed.
package pdp
