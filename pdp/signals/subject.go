package signals

import (
	"errors"
	"fmt"
)

// Subject identifier formats (RFC 9493, and SSF's complex subject).
const (
	FormatIssSub      = "iss_sub"
	FormatEmail       = "email"
	FormatPhoneNumber = "phone_number"
	FormatOpaque      = "opaque"
	FormatAccount     = "account"
	FormatURI         = "uri"
	FormatDID         = "did"
	FormatAliases     = "aliases"
	FormatComplex     = "complex"
)

// SubjectID is a subject identifier as a transmitter sends it: a simple
// identifier (format and its members) or a complex one whose members
// (user, session, device, …) are simple identifiers.
type SubjectID struct {
	Format      string      `json:"format"`
	Iss         string      `json:"iss,omitempty"`
	Sub         string      `json:"sub,omitempty"`
	Email       string      `json:"email,omitempty"`
	PhoneNumber string      `json:"phone_number,omitempty"`
	ID          string      `json:"id,omitempty"`
	URI         string      `json:"uri,omitempty"`
	URL         string      `json:"url,omitempty"`
	Identifiers []SubjectID `json:"identifiers,omitempty"`
	// Members of a complex subject.
	User        *SubjectID `json:"user,omitempty"`
	Session     *SubjectID `json:"session,omitempty"`
	Device      *SubjectID `json:"device,omitempty"`
	Application *SubjectID `json:"application,omitempty"`
	Tenant      *SubjectID `json:"tenant,omitempty"`
	OrgUnit     *SubjectID `json:"org_unit,omitempty"`
	Group       *SubjectID `json:"group,omitempty"`
}

// ErrSubject: a subject identifier lacks what its format requires.
var ErrSubject = errors.New("invalid subject identifier")

// Validate checks the members a known format requires. An unknown format
// is valid (it is stored, and no mapping rule matches it).
func (s SubjectID) Validate() error { return s.validate(0) }

func (s SubjectID) validate(depth int) error {
	need := func(ok bool, member string) error {
		if !ok {
			return fmt.Errorf("%w: format %q needs %q", ErrSubject, s.Format, member)
		}
		return nil
	}
	switch s.Format {
	case "":
		return fmt.Errorf("%w: no format", ErrSubject)
	case FormatIssSub:
		if err := need(s.Iss != "", "iss"); err != nil {
			return err
		}
		return need(s.Sub != "", "sub")
	case FormatEmail:
		return need(s.Email != "", "email")
	case FormatPhoneNumber:
		return need(s.PhoneNumber != "", "phone_number")
	case FormatOpaque:
		return need(s.ID != "", "id")
	case FormatAccount, FormatURI:
		return need(s.URI != "", "uri")
	case FormatDID:
		return need(s.URL != "", "url")
	case FormatAliases:
		if depth > 0 {
			return fmt.Errorf("%w: aliases may not nest", ErrSubject)
		}
		if err := need(len(s.Identifiers) > 0, "identifiers"); err != nil {
			return err
		}
		for _, id := range s.Identifiers {
			if id.Format == FormatAliases || id.Format == FormatComplex {
				return fmt.Errorf("%w: aliases hold simple identifiers", ErrSubject)
			}
			if err := id.validate(depth + 1); err != nil {
				return err
			}
		}
	case FormatComplex:
		if depth > 0 {
			return fmt.Errorf("%w: complex subjects may not nest", ErrSubject)
		}
		n := 0
		for _, m := range s.members() {
			if m == nil {
				continue
			}
			n++
			if m.Format == FormatComplex {
				return fmt.Errorf("%w: a complex subject's members are simple identifiers", ErrSubject)
			}
			if err := m.validate(depth + 1); err != nil {
				return err
			}
		}
		if n == 0 {
			return fmt.Errorf("%w: a complex subject needs at least one member", ErrSubject)
		}
	}
	return nil
}

func (s SubjectID) members() []*SubjectID {
	return []*SubjectID{s.User, s.Session, s.Device, s.Application, s.Tenant, s.OrgUnit, s.Group}
}

// person is the identifier of the person a subject names: the subject
// itself, a complex subject's user, or each alias.
func (s SubjectID) persons() []SubjectID {
	switch s.Format {
	case FormatComplex:
		if s.User != nil {
			return []SubjectID{*s.User}
		}
		return nil
	case FormatAliases:
		return s.Identifiers
	}
	return []SubjectID{s}
}

// SessionID is the session a complex subject names ("" when none): its
// session member's id (opaque) or sub.
func (s SubjectID) SessionID() string {
	if s.Session == nil {
		return ""
	}
	if s.Session.ID != "" {
		return s.Session.ID
	}
	return s.Session.Sub
}
