// Package policy loads, validates, versions and hot-reloads Cedar policy
// bundles (policies, schema and entities) from a folder or a Git remote, and
// slices each bundle so that a decision evaluates only the policies that can
// apply to it.
package policy
