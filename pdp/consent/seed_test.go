package consent

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// relSeed is a seed with times relative to seed time and absolute ones;
// extra events are added before its closing brackets.
func relSeed(extra string) string {
	return `{"activity": {"user:heidi": "2023-01-10T09:00:00Z", "delegation#agent:poa-x": "seed-1d", "bob": "seed-2d"},
	"events": [
	{"id": "cev-rel", "type": "given", "grant_id": "g-rel", "subject": {"type": "user", "id": "alice"}, "application": "advisor-portal",
	 "purpose": "financial_advice", "purpose_version": 1, "applications": ["advisor-portal"], "jurisdiction": "DE",
	 "notice": {"uri": "https://northbank.example/privacy/advice", "version": 2}, "at": "seed-67d", "recorded_at": "seed-67d+1s", "expires": "seed+600d"},
	{"id": "cev-abs", "type": "given", "grant_id": "g-abs", "subject": {"type": "user", "id": "judy"}, "application": "advisor-portal",
	 "purpose": "financial_advice", "purpose_version": 1, "applications": ["advisor-portal"], "jurisdiction": "DE",
	 "at": "2026-01-01T09:00:00Z"}` + extra + `]}`
}

func decodeSeedT(t *testing.T, s string) Seed {
	t.Helper()
	seed, err := DecodeSeed(strings.NewReader(s))
	if err != nil {
		t.Fatalf("DecodeSeed: %v", err)
	}
	return seed
}

// TestImportSeedRelativeTwice: two starts on one file, the second with
// a later clock: the events and activity keep the first run's times (a
// restart is neither a new grant nor a use); an event new to the seed at
// the second start is dated from that start.
func TestImportSeedRelativeTwice(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "consent.jsonl")
	day := 24 * time.Hour
	t1 := ledgerToday
	start := func(now time.Time, seed string) *lenv {
		t.Helper()
		st, err := OpenFile(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		e := newLenv(t, st, "")
		e.clock.Set(now)
		if err := e.l.ImportSeed(ctx, decodeSeedT(t, seed)); err != nil {
			t.Fatalf("ImportSeed: %v", err)
		}
		return e
	}
	stop := func(e *lenv) {
		t.Helper()
		if err := e.l.Close(); err != nil {
			t.Fatal(err)
		}
		if err := e.st.Close(); err != nil {
			t.Fatal(err)
		}
	}
	wantEvent := func(e *lenv, id string, at, recorded time.Time, expires *time.Time) {
		t.Helper()
		ev, err := e.l.Event(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if !ev.At.Equal(at) || !ev.RecordedAt.Equal(recorded) || (expires == nil) != (ev.Expires == nil) || (expires != nil && !ev.Expires.Equal(*expires)) {
			t.Fatalf("%s: at %v, recorded %v, expires %v; want %v, %v, %v", id, ev.At, ev.RecordedAt, ev.Expires, at, recorded, expires)
		}
	}
	wantActivity := func(e *lenv, want map[string]time.Time) {
		t.Helper()
		snap, err := e.l.ActivitySnapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for k, at := range want {
			r, _ := ParseRef(k)
			if got, ok := snap[r]; !ok || !got.Equal(at) {
				t.Errorf("activity %s = %v (%v), want %v", k, got, ok, at)
			}
			if got, ok, err := e.st.Activity(ctx, r); err != nil || !ok || !got.Equal(at) {
				t.Errorf("stored activity %s = %v (%v, %v), want %v", k, got, ok, err, at)
			}
		}
	}
	abs := time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)

	e := start(t1, relSeed(""))
	wantEvent(e, "cev-rel", t1.Add(-67*day), t1.Add(-67*day+time.Second), timep(t1.Add(600*day)))
	wantEvent(e, "cev-abs", abs, abs, nil)
	first := map[string]time.Time{"user:heidi": time.Date(2023, 1, 10, 9, 0, 0, 0, time.UTC),
		"delegation#agent:poa-x": t1.Add(-day), "user:bob": t1.Add(-2 * day)}
	wantActivity(e, first)
	if res := e.check(e.user("alice"), "financial_advice", "advisor-portal", "DE"); !res.Allowed || res.GrantID != "g-rel" {
		t.Fatalf("alice's relative grant: %+v", res)
	}
	head := e.l.Head()
	// bob is active once more before the restart.
	e.l.Touch(e.user("bob"), t1.Add(time.Hour))
	first["user:bob"] = t1.Add(time.Hour)
	stop(e)

	t2 := t1.Add(400 * day)
	e = start(t2, relSeed(`,
	{"id": "cev-new", "type": "given", "subject": {"type": "user", "id": "ivan"}, "application": "advisor-portal",
	 "purpose": "financial_advice", "purpose_version": 1, "applications": ["advisor-portal"], "jurisdiction": "DE", "at": "seed-1h"}`))
	wantEvent(e, "cev-rel", t1.Add(-67*day), t1.Add(-67*day+time.Second), timep(t1.Add(600*day)))
	wantEvent(e, "cev-abs", abs, abs, nil)
	wantEvent(e, "cev-new", t2.Add(-time.Hour), t2.Add(-time.Hour), nil)
	if got := e.l.Head(); got != head+1 {
		t.Fatalf("head after the second start %d, want %d (one new event)", got, head+1)
	}
	wantActivity(e, first)
	stop(e)
}

// TestDecodeSeed: the forms a seed's times take, and the errors, which
// name the event or subject and the field.
func TestDecodeSeed(t *testing.T) {
	seed := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	ev := func(times string) string {
		return `{"events":[{"id":"cev-1","type":"given","subject":{"type":"user","id":"a"},"purpose":"p"` + times + `}]}`
	}
	for _, tc := range []struct {
		name, in string
		at, rec  time.Time
		expires  *time.Time
		activity map[string]time.Time
	}{
		{"no times", ev(""), time.Time{}, time.Time{}, nil, nil},
		{"absolute", ev(`,"at":"2026-10-01T10:00:00Z","recorded_at":"2026-10-01T10:00:01Z","expires":"2028-09-30T10:00:00Z"`),
			time.Date(2026, 10, 1, 10, 0, 0, 0, time.UTC), time.Date(2026, 10, 1, 10, 0, 1, 0, time.UTC), timep(time.Date(2028, 9, 30, 10, 0, 0, 0, time.UTC)), nil},
		{"relative", ev(`,"at":"seed-67d","recorded_at":"seed-67d+1s","expires":"seed+83d"`),
			seed.AddDate(0, 0, -67), seed.AddDate(0, 0, -67).Add(time.Second), timep(seed.AddDate(0, 0, 83)), nil},
		{"null expires", ev(`,"at":"seed","expires":null`), seed, time.Time{}, nil, nil},
		{"activity", `{"events":[],"activity":{"user:heidi":"2023-01-10T09:00:00Z","delegation#agent:poa-1":"seed-1d"}}`,
			time.Time{}, time.Time{}, nil, map[string]time.Time{"user:heidi": time.Date(2023, 1, 10, 9, 0, 0, 0, time.UTC), "delegation#agent:poa-1": seed.AddDate(0, 0, -1)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := DecodeSeed(strings.NewReader(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			for k, want := range tc.activity {
				if got := s.Activity[k].Resolve(seed); !got.Equal(want) {
					t.Errorf("activity %s = %v, want %v", k, got, want)
				}
			}
			if len(s.Activity) != len(tc.activity) {
				t.Errorf("activity %v, want %v", s.Activity, tc.activity)
			}
			if len(s.Events) == 0 {
				return
			}
			e := s.Events[0].Resolve(seed)
			if e.ID != "cev-1" || e.Subject.ID != "a" || !e.At.Equal(tc.at) || !e.RecordedAt.Equal(tc.rec) ||
				(e.Expires == nil) != (tc.expires == nil) || (e.Expires != nil && !e.Expires.Equal(*tc.expires)) {
				t.Fatalf("resolved %+v; want at %v, recorded %v, expires %v", e, tc.at, tc.rec, tc.expires)
			}
		})
	}
	for _, tc := range []struct{ name, in, want string }{
		{"relative at", ev(`,"at":"seed-1x"`), `event "cev-1": at: not a seed time: "seed-1x": "-1x": unit 'x'`},
		{"recorded_at a number", ev(`,"recorded_at":5`), `event "cev-1": recorded_at: not a seed time: 5: want a JSON string`},
		{"expires a word", ev(`,"expires":"tomorrow"`), `event "cev-1": expires: not a seed time: "tomorrow": want an RFC 3339 time`},
		{"units out of order", ev(`,"at":"seed+1s-1d"`), `event "cev-1": at: not a seed time: "seed+1s-1d"`},
		{"activity", `{"events":[],"activity":{"user:heidi":"seed+1y"}}`, `activity "user:heidi": not a seed time: "seed+1y"`},
		{"activity null", `{"events":[],"activity":{"user:heidi":null}}`, `activity "user:heidi": null: want an RFC 3339 time`},
		{"unknown event field", ev(`,"at":"seed","when":"seed"`), `consent seed: json: unknown field "when"`},
		{"unknown seed field", `{"events":[],"now":"seed"}`, `consent seed: json: unknown field "now"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeSeed(strings.NewReader(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("DecodeSeed: %v, want an error saying %q", err, tc.want)
			}
			if strings.Contains(tc.want, "seed time") && !errors.Is(err, ErrSeedTime) {
				t.Fatalf("%v is not ErrSeedTime", err)
			}
		})
	}
}

// FuzzDecodeSeed: DecodeSeed never panics, and what it accepts resolves
// (relative times against seed time) without panicking.
func FuzzDecodeSeed(f *testing.F) {
	f.Add(relSeed(""))
	f.Add(`{"events":[{"id":"x","at":"seed-1d+2h","expires":null}],"activity":{"a":"seed"}}`)
	f.Add(`{"events":[{"id":"x","at":"2026-01-01T00:00:00Z"}]}`)
	f.Add(`{"events":[{"id":"x","at":"seed+1s-1d"}]}`)
	f.Fuzz(func(t *testing.T, s string) {
		seed, err := DecodeSeed(strings.NewReader(s))
		if err != nil {
			return
		}
		for _, e := range seed.Events {
			ev := e.Resolve(ledgerToday)
			if e.At.IsRelative() && !ev.At.Equal(ledgerToday.Add(e.At.Offset())) {
				t.Fatalf("event %q: at %v, want seed time %+v", e.ID, ev.At, e.At.Offset())
			}
		}
		for k, a := range seed.Activity {
			if a.IsZero() {
				t.Fatalf("activity %q: accepted without a time", k)
			}
		}
	})
}
