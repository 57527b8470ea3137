package trail

import "encoding/json"

// KindSidecar is the Record.Kind of a decision record a sidecar made (from
// its cache) and sent to the PDP, which stores it as it came.
const KindSidecar = "sidecar"

// SidecarBody is the body of a sidecar record: who sent it, its place in
// the sidecar's spool (what makes ingestion exactly once), and the
// sidecar's record itself.
type SidecarBody struct {
	Sidecar     string          `json:"sidecar"`     // the sidecar's id (PDP-Sidecar-Id)
	Application string          `json:"application"` // the authenticated application ("" with authentication off)
	SpoolSeq    uint64          `json:"spool_seq"`   // strictly increasing per sidecar
	Record      json.RawMessage `json:"record"`      // the sidecar's record, a JSON object
}
