package adminlog

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/ciampdp/pdp/pdp/signals"
	"github.com/ciampdp/pdp/pdp/trail"
)

// TestRecordSignal: a received SET lands in the trail as an admin record
// (signal.receive) naming the transmitter, the jti, and each event with
// the subject as received and the entity it maps to.
func TestRecordSignal(t *testing.T) {
	l, rec := openTrail(t)
	var j Journal
	ctx := context.Background()
	if err := j.RecordSignal(ctx, "https://risk.example/", "jti-0", nil); err != nil {
		t.Fatalf("without a trail the journal records nothing: %v", err)
	}
	j.Set(rec)
	evs := []signals.Event{
		{Transmitter: "https://risk.example/", JTI: "jti-1", Type: "urn:example:unmapped"},
		{Transmitter: "https://risk.example/", JTI: "jti-1", Type: signals.RISCPrefix + "credential-compromise", Entity: `User::"bob"`,
			Subject: &signals.SubjectID{Format: "iss_sub", Iss: "https://idp.example/", Sub: "bob"}},
	}
	if err := j.RecordSignal(ctx, "https://risk.example/", "jti-1", evs); err != nil {
		t.Fatal(err)
	}
	var found []trail.Record
	if err := l.Scan(0, l.Size(), func(r trail.Record) error {
		if r.Kind == "admin" {
			found = append(found, r)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(found) != 1 {
		t.Fatalf("%d admin records, want 1", len(found))
	}
	if !json.Valid(found[0].Body) {
		t.Fatalf("the record is not JSON: %s", found[0].Body)
	}
	raw := string(found[0].Body)
	for _, want := range []string{ActionSignalReceive, `"jti":"jti-1"`, `User::\"bob\"`, `"sub":"bob"`, "https://risk.example/"} {
		if !strings.Contains(raw, want) {
			t.Fatalf("the record lacks %s: %s", want, raw)
		}
	}
}
