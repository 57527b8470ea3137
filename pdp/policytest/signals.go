package policytest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ciampdp/pdp/pdp/policy"
	"github.com/ciampdp/pdp/pdp/signalledger"
	"github.com/ciampdp/pdp/pdp/signals"
)

// suiteSignal is one signal a suite declares.
type suiteSignal struct {
	Event       string             `json:"event"`
	Subject     *signals.SubjectID `json:"subject"`
	Time        time.Time          `json:"time"`
	Transmitter string             `json:"transmitter"`
	JTI         string             `json:"jti"`
	Payload     json.RawMessage    `json:"payload"`
}

// suiteSignals gives a suite a fresh signal ledger in a temporary folder
// holding the signals it declares.
func suiteSignals(ctx context.Context, b *policy.Bundle, s Suite) (*signalledger.Ledger, func(), error) {
	raw := s.Signals
	if s.SignalsFile != "" {
		var err error
		if raw, err = os.ReadFile(s.SignalsFile); err != nil {
			return nil, nil, fmt.Errorf("%s: signals: %w", s.File, err)
		}
	}
	var list []suiteSignal
	if len(raw) > 0 {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&list); err != nil {
			return nil, nil, fmt.Errorf("%s: signals: %w", s.File, err)
		}
	}
	dir, err := os.MkdirTemp("", "pdp-test-signals-")
	if err != nil {
		return nil, nil, err
	}
	st, err := signalledger.OpenFile(filepath.Join(dir, "signals.jsonl"), nil)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, nil, err
	}
	done := func() { _ = st.Close(); _ = os.RemoveAll(dir) }
	l, err := signalledger.NewLedger(ctx, signalledger.LedgerConfig{Store: st, Registry: b.Signals})
	if err != nil {
		done()
		return nil, nil, err
	}
	for i, sg := range list {
		typ := sg.Event
		if !strings.Contains(typ, "://") && !strings.HasPrefix(typ, "urn:") {
			var ok bool
			if typ, ok = signals.TypeURI(sg.Event); !ok {
				done()
				return nil, nil, fmt.Errorf("%s: signals[%d]: unknown event %q (a CAEP/RISC short name or a URI)", s.File, i, sg.Event)
			}
		}
		if sg.Subject == nil || sg.Time.IsZero() {
			done()
			return nil, nil, fmt.Errorf("%s: signals[%d]: subject and time are required", s.File, i)
		}
		if err := sg.Subject.Validate(); err != nil {
			done()
			return nil, nil, fmt.Errorf("%s: signals[%d]: %w", s.File, i, err)
		}
		if sg.Transmitter == "" {
			sg.Transmitter = "pdp-test"
		}
		if sg.JTI == "" {
			sg.JTI = fmt.Sprintf("suite-signal-%d", i+1)
		}
		if len(sg.Payload) == 0 {
			sg.Payload = json.RawMessage("{}")
		}
		set := &signals.SET{Issuer: sg.Transmitter, JTI: sg.JTI, IssuedAt: sg.Time, SubID: sg.Subject,
			Events: []signals.SETEvent{{Type: typ, Subject: sg.Subject, Time: sg.Time, Payload: sg.Payload}}}
		if _, err := l.Receive(ctx, set); err != nil {
			done()
			if errors.Is(err, signalledger.ErrDuplicate) {
				return nil, nil, fmt.Errorf("%s: signals[%d]: jti %s is listed twice", s.File, i, sg.JTI)
			}
			return nil, nil, fmt.Errorf("%s: signals[%d]: %w", s.File, i, err)
		}
	}
	return l, done, nil
}
