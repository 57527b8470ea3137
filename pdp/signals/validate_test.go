package signals

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestEventValidate: an event as the ledger stores a verified SET's is
// valid; each thing the verifier guarantees, missing, is named.
func TestEventValidate(t *testing.T) {
	at := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	good := Event{Transmitter: "https://risk.example/", JTI: "j", Type: RISCPrefix + "account-disabled", Time: at, IssuedAt: at,
		ReceivedAt: at, Subject: &SubjectID{Format: FormatIssSub, Iss: "https://idp.example/", Sub: "bob"}}
	tests := []struct {
		name   string
		change func(*Event)
		want   string // "" valid
	}{
		{"as received", func(*Event) {}, ""},
		{"an unknown type without subject", func(e *Event) { e.Type, e.Subject = "urn:example:x", nil }, ""},
		{"verification without subject", func(e *Event) { e.Type, e.Subject = SSFPrefix+"verification", nil }, ""},
		{"no transmitter", func(e *Event) { e.Transmitter = "" }, "no transmitter"},
		{"no jti", func(e *Event) { e.JTI = "" }, "jti"},
		{"a jti too long", func(e *Event) { e.JTI = strings.Repeat("j", maxJTI+1) }, "jti"},
		{"no type", func(e *Event) { e.Type = "" }, "no event type"},
		{"no event time", func(e *Event) { e.Time = time.Time{} }, "no event time"},
		{"no issue time", func(e *Event) { e.IssuedAt = time.Time{} }, "no issue time"},
		{"no receipt time", func(e *Event) { e.ReceivedAt = time.Time{} }, "no receipt time"},
		{"a known type without subject", func(e *Event) { e.Subject = nil }, "names no subject"},
		{"an invalid subject", func(e *Event) { e.Subject = &SubjectID{Format: FormatEmail} }, "subject"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := good
			tt.change(&e)
			err := e.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("valid event refused: %v", err)
			case tt.want != "" && (!errors.Is(err, ErrInvalidEvent) || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("got %v, want ErrInvalidEvent naming %q", err, tt.want)
			}
		})
	}
}
