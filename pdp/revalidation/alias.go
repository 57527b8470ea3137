package revalidation

import "github.com/ciampdp/pdp/pdp/dormancy"

// The revalidation records and the names of identities are package
// dormancy's (the engine reads them in decisions).
type (
	Revalidation = dormancy.Revalidation
	Actor        = dormancy.Actor
	Ref          = dormancy.Ref
)
