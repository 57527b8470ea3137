package signalledger

import (
	"bytes"
	"errors"
	"testing"

	"github.com/ciampdp/pdp/pdp/internal/jsonl"
	"github.com/ciampdp/pdp/pdp/signals"
)

// FuzzFileLines: the file store's line decoder never panics on any lines;
// what it stores comes in whole SETs (a SET of several events with all of
// them, one jti) at increasing positions, and a line it takes without
// storing is always a SET's event before its last.
func FuzzFileLines(f *testing.F) {
	f.Add([]byte(`{"position":1,"transmitter":"t","jti":"a","type":"x"}` + "\n" +
		`{"position":2,"transmitter":"t","jti":"b","type":"x","set_event":1,"set_events":2}` + "\n" +
		`{"position":3,"transmitter":"t","jti":"b","type":"y","set_event":2,"set_events":2}`))
	f.Add([]byte(`{"position":2,"transmitter":"t","jti":"b","type":"x","set_event":1,"set_events":2}` + "\n" +
		`{"position":3,"transmitter":"t","jti":"c","type":"y","set_event":2,"set_events":2}`))
	f.Add([]byte(`{"position":2,"jti":"b","set_event":1,"set_events":2}` + "\n" + `{"position":3,"jti":"c"}`))
	f.Add([]byte(`{"position":1,"set_event":3,"set_events":2}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var sets [][]signals.Event
		r := &fileReader{store: func(evs []signals.Event) { sets = append(sets, append([]signals.Event(nil), evs...)) }}
		for line := range bytes.SplitSeq(data, []byte("\n")) {
			err := r.line(line)
			if errors.Is(err, jsonl.ErrContinued) {
				if len(r.set) == 0 || len(r.set) >= r.setOf {
					t.Fatalf("continued with %d of %d events held", len(r.set), r.setOf)
				}
				continue
			}
			if err != nil {
				break
			}
		}
		var last int64
		for _, set := range sets {
			for _, e := range set {
				if e.Position <= last {
					t.Fatalf("position %d after %d", e.Position, last)
				}
				last = e.Position
				if e.JTI != set[0].JTI || e.Transmitter != set[0].Transmitter {
					t.Fatalf("a stored SET mixes jtis: %v", set)
				}
			}
		}
	})
}
