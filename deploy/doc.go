// Package deploy holds the container image and the Kubernetes manifests
// of the PDP, and the tests that check them (it has no code of its own):
// its test dependencies (kustomize, the Kubernetes API types) stay out of
// every package the PDP is built from.
package deploy
