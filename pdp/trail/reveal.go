package trail

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"filippo.io/age"
)

// Reveal reads a redacted body. It decrypts every age marker that one of
// identities ("AGE-SECRET-KEY-1…") opens, restoring the value's JSON text,
// unwraps literal markers, and returns the body compacted with the paths of
// the markers that stay hidden (hash markers, age markers no identity
// opens), in body order. A hidden path is concrete
// (decision.input.entities.3.attrs.email) and escaped like a rule path.
// With no identities every marker stays hidden; Reveal(body, nil) is how a
// redacted body is read when no key is held.
func Reveal(body []byte, identities []string) (revealed []byte, hidden []string, err error) {
	ids, err := parseIdentities(identities)
	if err != nil {
		return nil, nil, err
	}
	v := &revelation{ids: ids}
	w := walker{lexer: lexer{in: body, out: make([]byte, 0, len(body)), max: maxDepthOut}, v: v}
	if err := w.top(frame{}); err != nil {
		return nil, nil, err
	}
	return w.out, v.hidden, nil
}

// NotReplayable returns the hidden paths (from Reveal) that replay needs:
// those at or under decision.input, or above it. Replay reports each as
// "not_replayable: <path>"; values hidden elsewhere (the request as
// received, say) do not hinder it.
func NotReplayable(hidden []string) []string {
	var out []string
	for _, p := range hidden {
		if p == "" || p == ReplayInput || strings.HasPrefix(p, ReplayInput+".") || strings.HasPrefix(ReplayInput, p+".") {
			out = append(out, p)
		}
	}
	return out
}

// revelation is the visitor of Reveal: it reads markers, and keeps the
// path of the value it is at.
type revelation struct {
	ids    []age.Identity
	path   []string // path[:f.d] is the path of a value in frame f
	hidden []string
}

func (v *revelation) markerErr(f frame, format string, args ...any) error {
	return fmt.Errorf("%w at %q: %s", ErrBadMarker, formatPath(v.path[:f.d]), fmt.Sprintf(format, args...))
}

func (v *revelation) value(*walker, frame) (bool, error) { return false, nil }

// member reads a marker in place of the object that starts with
// "$redacted"; anywhere else that key is an error, but in the object a
// literal wraps, where it is a key like any other.
func (v *revelation) member(w *walker, f frame, k member, first bool, start int) (frame, bool, error) {
	if !f.literal && k.isMarker() {
		if !first {
			return frame{}, false, v.markerErr(f, "%s is not the first key of its object", markerKey)
		}
		w.out = w.out[:start]
		return frame{}, true, v.marker(w, f)
	}
	v.path = append(v.path[:f.d], k.text())
	return frame{d: f.d + 1}, false, nil
}

func (v *revelation) element(f frame, n int) frame {
	v.path = append(v.path[:f.d], strconv.Itoa(n))
	return frame{d: f.d + 1}
}

func (v *revelation) closed(*walker, frame, int, bool) {}

// marker reads a marker after its `{"$redacted"`, up to its closing brace.
func (v *revelation) marker(w *walker, f frame) error {
	if err := w.expect(':'); err != nil {
		return err
	}
	if w.peek() != '"' {
		return v.markerErr(f, "the method is not a string")
	}
	raw, esc, err := w.str()
	if err != nil {
		return err
	}
	method := key(raw, esc)
	if err := w.expect(','); err != nil {
		return err
	}
	if raw, esc, err = w.str(); err != nil {
		return err
	} else if key(raw, esc) != "value" {
		return v.markerErr(f, "want the member \"value\" second")
	}
	if err := w.expect(':'); err != nil {
		return err
	}
	switch method {
	case MarkerLiteral:
		if w.peek() != '{' {
			return v.markerErr(f, "a literal's value is not an object")
		}
		if err := w.object(frame{d: f.d, literal: true}); err != nil {
			return err
		}
	case MarkerHMAC, MarkerAge:
		if w.peek() != '"' {
			return v.markerErr(f, "the value is not a string")
		}
		if raw, esc, err = w.str(); err != nil {
			return err
		}
		var plain []byte
		if method == MarkerAge && len(v.ids) > 0 {
			if plain, err = v.open(w, f, key(raw, esc)); err != nil {
				return err
			}
		}
		if plain != nil {
			w.out = append(w.out, plain...)
			break
		}
		w.out = append(w.out, `{"`+markerKey+`":"`...)
		w.out = append(w.out, method...)
		w.out = append(w.out, `","value":`...)
		w.out = append(w.out, raw...)
		w.out = append(w.out, '}')
		v.hidden = append(v.hidden, formatPath(v.path[:f.d]))
	default:
		return v.markerErr(f, "unknown method %q", method)
	}
	if w.peek() != '}' {
		return v.markerErr(f, "members beyond %q and \"value\"", markerKey)
	}
	w.i++
	return nil
}

// open decrypts an age marker's value; nil when no identity opens it.
func (v *revelation) open(w *walker, f frame, value string) ([]byte, error) {
	ct, err := base64.StdEncoding.DecodeString(value)
	if err != nil {
		return nil, v.markerErr(f, "the value is not base64")
	}
	r, err := age.Decrypt(bytes.NewReader(ct), v.ids...)
	if _, ok := errors.AsType[*age.NoIdentityMatchError](err); ok {
		return nil, nil
	}
	if err != nil {
		return nil, v.markerErr(f, "age: %v", err)
	}
	pt, err := io.ReadAll(r)
	if err != nil {
		return nil, v.markerErr(f, "age: %v", err)
	}
	// One JSON value, compacted, nested no deeper than the marker may be.
	c := walker{lexer: lexer{in: pt, out: make([]byte, 0, len(pt)), depth: w.depth - 1, max: w.max}, v: copier{}}
	if err := c.top(frame{}); err != nil {
		return nil, v.markerErr(f, "the decrypted value is not JSON: %v", err)
	}
	return c.out, nil
}

func parseIdentities(ss []string) ([]age.Identity, error) {
	ids := make([]age.Identity, 0, len(ss))
	for i, s := range ss {
		s = strings.TrimSpace(s)
		var id age.Identity
		var err error
		switch {
		case strings.HasPrefix(s, "AGE-SECRET-KEY-PQ-1"):
			id, err = age.ParseHybridIdentity(s)
		case strings.HasPrefix(s, "AGE-SECRET-KEY-1"):
			id, err = age.ParseX25519Identity(s)
		default:
			err = errors.New("not an age identity (AGE-SECRET-KEY-1…)")
		}
		if err != nil {
			// age's errors do not quote the key; neither do we.
			return nil, fmt.Errorf("%w %d: %v", ErrBadIdentity, i+1, err)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// NewAuditorIdentity generates an auditor key pair: the identity (secret,
// "AGE-SECRET-KEY-1…") for the auditor, and its recipient ("age1…") for
// the PDP's configuration.
func NewAuditorIdentity() (identity, recipient string, err error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return "", "", fmt.Errorf("trail: generate auditor identity: %w", err)
	}
	return id.String(), id.Recipient().String(), nil
}
