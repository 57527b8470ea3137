package signals

import "strings"

// Event type URI prefixes of the CAEP and RISC profiles, and SSF's own.
const (
	CAEPPrefix = "https://schemas.openid.net/secevent/caep/event-type/"
	RISCPrefix = "https://schemas.openid.net/secevent/risc/event-type/"
	SSFPrefix  = "https://schemas.openid.net/secevent/ssf/event-type/"
)

// The event types the registry may name, by their short name.
var knownTypes = map[string]string{
	"credential-compromise":              RISCPrefix + "credential-compromise",
	"account-disabled":                   RISCPrefix + "account-disabled",
	"account-enabled":                    RISCPrefix + "account-enabled",
	"account-purged":                     RISCPrefix + "account-purged",
	"account-credential-change-required": RISCPrefix + "account-credential-change-required",
	"sessions-revoked":                   RISCPrefix + "sessions-revoked",
	"identifier-changed":                 RISCPrefix + "identifier-changed",
	"recovery-activated":                 RISCPrefix + "recovery-activated",
	"session-revoked":                    CAEPPrefix + "session-revoked",
	"credential-change":                  CAEPPrefix + "credential-change",
	"assurance-level-change":             CAEPPrefix + "assurance-level-change",
	"token-claims-change":                CAEPPrefix + "token-claims-change",
	"device-compliance-change":           CAEPPrefix + "device-compliance-change",
	"verification":                       SSFPrefix + "verification",
}

// TypeURI is the event type URI of a short name ("credential-compromise"),
// false when the name is not known.
func TypeURI(name string) (string, bool) {
	u, ok := knownTypes[name]
	return u, ok
}

// ShortName is the short name of a known event type URI, "" for another.
func ShortName(uri string) string {
	for _, p := range []string{RISCPrefix, CAEPPrefix, SSFPrefix} {
		if n, ok := strings.CutPrefix(uri, p); ok {
			if knownTypes[n] == uri {
				return n
			}
		}
	}
	return ""
}
