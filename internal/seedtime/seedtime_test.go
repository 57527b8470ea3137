package seedtime

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

const day = 24 * time.Hour

func TestParse(t *testing.T) {
	seed := time.Date(2030, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in       string
		relative bool
		want     time.Time
		canon    string
	}{
		{"seed", true, seed, "seed"},
		{"seed-67d", true, seed.Add(-67 * day), "seed-67d"},
		{"seed+83d", true, seed.Add(83 * day), "seed+83d"},
		{"seed-67d+1s", true, seed.Add(-67*day + time.Second), "seed-66d-23h-59m-59s"},
		{"seed-1d+2h-3m+4s", true, seed.Add(-day + 2*time.Hour - 3*time.Minute + 4*time.Second), "seed-22h-2m-56s"},
		{"seed+1h", true, seed.Add(time.Hour), "seed+1h"},
		{"seed-90m", true, seed.Add(-90 * time.Minute), "seed-1h-30m"},
		{"seed+36500d", true, seed.Add(36500 * day), "seed+36500d"},
		{"2026-10-01T10:00:00Z", false, time.Date(2026, 10, 1, 10, 0, 0, 0, time.UTC), "2026-10-01T10:00:00Z"},
		{"2026-10-01T12:00:00.5+02:00", false, time.Date(2026, 10, 1, 10, 0, 0, 5e8, time.UTC), "2026-10-01T12:00:00.5+02:00"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := Parse(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if got.IsRelative() != tc.relative || !got.Resolve(seed).Equal(tc.want) || got.String() != tc.canon {
				t.Fatalf("Parse(%q) = relative %v, %v, %q; want %v, %v, %q", tc.in, got.IsRelative(), got.Resolve(seed), got.String(), tc.relative, tc.want, tc.canon)
			}
			again, err := Parse(got.String())
			if err != nil || !again.Resolve(seed).Equal(tc.want) {
				t.Fatalf("Parse(String()) = %v, %v", again, err)
			}
		})
	}
}

func TestParseRefuses(t *testing.T) {
	for _, tc := range []struct{ in, why string }{
		{"", "want an RFC 3339 time"},
		{"Seed-1d", "want an RFC 3339 time"},
		{"now-1d", "want an RFC 3339 time"},
		{"2026-10-01", "want an RFC 3339 time"},
		{"seed-", "a number after -"},
		{"seed-d", "a number after -"},
		{"seed 1d", "starts with + or -"},
		{"seed-1d ", "starts with + or -"},
		{"seedling", "starts with + or -"},
		{"seed1d", "starts with + or -"},
		{"seed-1", "a unit (d, h, m or s)"},
		{"seed-1w", "unit 'w'"},
		{"seed-1D", "unit 'D'"},
		{"seed-1.5d", "unit '.'"},
		{"seed-07d", "without leading zeros"},
		{"seed+0s", "without leading zeros"},
		{"seed-1h-1d", "in the order d, h, m, s"},
		{"seed-1d-1d", "in the order d, h, m, s"},
		{"seed+100000d", "at most 99999"},
		{"seed+99999999999999999999d", "at most 99999"},
		{"seed+36525d+1s", "more than 100 years"},
		{"seed--1d", "a number after -"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			_, err := Parse(tc.in)
			if err == nil || !errors.Is(err, ErrSyntax) || !strings.Contains(err.Error(), tc.why) {
				t.Fatalf("Parse(%q) = %v, want ErrSyntax saying %q", tc.in, err, tc.why)
			}
		})
	}
}

func TestJSON(t *testing.T) {
	var v struct {
		At      Time  `json:"at"`
		Expires *Time `json:"expires"`
		Null    Time  `json:"null"`
	}
	if err := json.Unmarshal([]byte(`{"at":"seed-2d","expires":"2027-01-01T00:00:00Z","null":null}`), &v); err != nil {
		t.Fatal(err)
	}
	if v.At.Offset() != -2*day || v.Expires == nil || v.Expires.IsRelative() || !v.Null.IsZero() {
		t.Fatalf("decoded %+v", v)
	}
	out, err := json.Marshal(v)
	if err != nil || string(out) != `{"at":"seed-2d","expires":"2027-01-01T00:00:00Z","null":null}` {
		t.Fatalf("Marshal = %s, %v", out, err)
	}
	for _, bad := range []string{`{"at":5}`, `{"at":"seed+1x"}`, `{"at":true}`} {
		if err := json.Unmarshal([]byte(bad), &v); !errors.Is(err, ErrSyntax) {
			t.Errorf("%s: %v, want ErrSyntax", bad, err)
		}
	}
}

// FuzzParse: Parse never panics; what it accepts prints as a value it
// reads back to the same time, and a relative one stays within 100 years.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"seed", "seed-67d+1s", "seed+1d-2h+3m-4s", "2026-10-01T10:00:00Z", "seed-0d", "seed+99999d", "seed-1h-1d", ""} {
		f.Add(s)
	}
	seed := time.Date(2030, 5, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		v, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("Parse(%q): %v is not ErrSyntax", s, err)
			}
			return
		}
		if v.IsRelative() && (v.Offset() > maxTotal || v.Offset() < -maxTotal) {
			t.Fatalf("Parse(%q): offset %v beyond 100 years", s, v.Offset())
		}
		again, err := Parse(v.String())
		if err != nil || again.IsRelative() != v.IsRelative() || !again.Resolve(seed).Equal(v.Resolve(seed)) {
			t.Fatalf("Parse(%q).String() = %q reads back as %v, %v", s, v.String(), again, err)
		}
	})
}
