package consent

import "github.com/ciampdp/pdp/pdp/purposes"

// The purposes registry is package purposes (which a policy bundle loads
// without the ledger's storage); the ledger speaks of it under these names.
type (
	Registry = purposes.Registry
	Purpose  = purposes.Purpose
	Rule     = purposes.Rule
	Basis    = purposes.Basis
	Default  = purposes.Default
	Mandate  = purposes.Mandate
)

const (
	BasisConsent  = purposes.BasisConsent
	BasisContract = purposes.BasisContract

	DefaultOptIn  = purposes.DefaultOptIn
	DefaultOptOut = purposes.DefaultOptOut
)
