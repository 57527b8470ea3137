// Package seedtime parses the times of seed data: absolute (RFC 3339), or
// relative to seed time, the moment a seed item is first imported
// ("seed", "seed-67d", "seed-67d+1s"), so that an example's facts keep
// their age however long after it was written it is first run.
package seedtime

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Syntax of a relative time: "seed", then at most one term per unit, in
// the order d, h, m, s; a term is a sign, a number from 1 to 99999 without
// leading zeros, and its unit (d is 24 hours, h an hour, m a minute, s a
// second). The terms add up: "seed-67d+1s" is one second after 67 days
// before seed time. Nothing else (spaces, other units, a repeated unit,
// "Seed") is accepted.
const (
	prefix   = "seed"
	maxTerm  = 99_999
	maxTotal = 100 * 365 * 24 * time.Hour
)

// Syntax is the one-line description errors show.
const Syntax = `an RFC 3339 time ("2026-10-01T10:00:00Z") or a time relative to seed time ("seed", "seed-67d", "seed-67d+1s"; units d, h, m, s)`

// ErrSyntax is the error of a value that is neither form.
var ErrSyntax = errors.New("not a seed time")

var units = []struct {
	name byte
	size time.Duration
}{{'d', 24 * time.Hour}, {'h', time.Hour}, {'m', time.Minute}, {'s', time.Second}}

// Time is a time of seed data: absolute, or an offset from seed time. The
// zero Time is absent (a JSON null, or no value).
type Time struct {
	abs      time.Time
	offset   time.Duration
	relative bool
}

// At is the absolute time t.
func At(t time.Time) Time { return Time{abs: t} }

// Seed is the time offset from seed time.
func Seed(offset time.Duration) Time { return Time{offset: offset, relative: true} }

// IsZero reports whether t is absent.
func (t Time) IsZero() bool { return !t.relative && t.abs.IsZero() }

// IsRelative reports whether t is relative to seed time.
func (t Time) IsRelative() bool { return t.relative }

// Offset is a relative time's offset from seed time (0 for an absolute one).
func (t Time) Offset() time.Duration { return t.offset }

// Resolve is the time t stands for when seed time is seed.
func (t Time) Resolve(seed time.Time) time.Time {
	if t.relative {
		return seed.Add(t.offset)
	}
	return t.abs
}

// String is t as Parse reads it: RFC 3339 (with the fraction it has), or
// "seed" and its offset in canonical terms (all of the offset's sign).
func (t Time) String() string {
	if !t.relative {
		if t.abs.IsZero() {
			return ""
		}
		return t.abs.Format(time.RFC3339Nano)
	}
	var b strings.Builder
	b.WriteString(prefix)
	sign, rest := byte('+'), t.offset
	if rest < 0 {
		sign, rest = '-', -rest
	}
	for _, u := range units {
		if n := rest / u.size; n > 0 {
			b.WriteByte(sign)
			b.WriteString(strconv.FormatInt(int64(n), 10))
			b.WriteByte(u.name)
			rest -= n * u.size
		}
	}
	return b.String()
}

// Parse reads a seed time, absolute or relative.
func Parse(s string) (Time, error) {
	if !strings.HasPrefix(s, prefix) {
		var at time.Time
		if err := at.UnmarshalText([]byte(s)); err != nil {
			return Time{}, fmt.Errorf("%w: %q: want %s", ErrSyntax, s, Syntax)
		}
		return Time{abs: at}, nil
	}
	d, err := parseOffset(s[len(prefix):])
	if err != nil {
		return Time{}, fmt.Errorf("%w: %q: %v (want %s)", ErrSyntax, s, err, Syntax)
	}
	return Time{offset: d, relative: true}, nil
}

// parseOffset reads the terms after "seed".
func parseOffset(s string) (time.Duration, error) {
	var total time.Duration
	next := 0 // index in units of the smallest unit still allowed
	for s != "" {
		sign := s[0]
		if sign != '+' && sign != '-' {
			return 0, fmt.Errorf("%q: a term starts with + or -", s)
		}
		i := 1
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		digits := s[1:i]
		switch {
		case digits == "":
			return 0, fmt.Errorf("%q: a number after %c", s, sign)
		case digits[0] == '0':
			return 0, fmt.Errorf("%q: a number from 1, without leading zeros", s)
		case len(digits) > len(strconv.Itoa(maxTerm)):
			return 0, fmt.Errorf("%q: at most %d of a unit", s, maxTerm)
		}
		n, _ := strconv.Atoi(digits)
		if n > maxTerm {
			return 0, fmt.Errorf("%q: at most %d of a unit", s, maxTerm)
		}
		if i == len(s) {
			return 0, fmt.Errorf("%q: a unit (d, h, m or s) after the number", s)
		}
		u := -1
		for j := range units {
			if units[j].name == s[i] {
				u = j
			}
		}
		switch {
		case u < 0:
			return 0, fmt.Errorf("%q: unit %q: want d, h, m or s", s, s[i])
		case u < next:
			return 0, fmt.Errorf("%q: units in the order d, h, m, s, each at most once", s)
		}
		next = u + 1
		d := time.Duration(n) * units[u].size
		if sign == '-' {
			d = -d
		}
		total += d
		s = s[i+1:]
	}
	if total > maxTotal || total < -maxTotal {
		return 0, fmt.Errorf("more than 100 years from seed time")
	}
	return total, nil
}

// UnmarshalJSON reads a JSON string (Parse); null leaves t unchanged, as
// for time.Time.
func (t *Time) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("%w: %s: want a JSON string, %s", ErrSyntax, b, Syntax)
	}
	v, err := Parse(s)
	if err != nil {
		return err
	}
	*t = v
	return nil
}

// MarshalJSON writes String as a JSON string; an absent time as null.
func (t Time) MarshalJSON() ([]byte, error) {
	if t.IsZero() {
		return []byte("null"), nil
	}
	return json.Marshal(t.String())
}
