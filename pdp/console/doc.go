// Package console serves the auditor's web console under /console/:
// server-rendered, read-only pages over the decision trail (decisions, one
// decision with its proofs, the trail's checkpoints) for auditor keys only,
// through the same audit service the /v1/audit endpoints use.
package console
