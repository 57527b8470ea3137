package signalledger

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/ciampdp/pdp/pdp/signals"
)

// Poll delivery (RFC 8936): the receiver asks the transmitter's poll
// endpoint for SETs, and acknowledges each jti once it is durably stored
// (or was stored before), or reports why it refused it (setErrs).

// DefaultPollInterval is the pause between polls when nothing is pending.
const DefaultPollInterval = 10 * time.Second

// maxPollAnswer bounds a poll answer.
const maxPollAnswer = 8 << 20

// Poller polls one transmitter. It is not safe for concurrent use: one
// goroutine runs it.
type Poller struct {
	URL string
	// Token, when set, is sent as a bearer token.
	Token     string
	Client    *http.Client
	Verify    func(raw []byte, now time.Time) (*signals.SET, error)
	Ledger    *Ledger
	Interval  time.Duration
	MaxEvents int
	Logger    *slog.Logger
	Now       func() time.Time

	ack    []string
	setErr map[string]pollErr
}

type pollErr struct {
	Err         string `json:"err"`
	Description string `json:"description"`
}

type pollRequest struct {
	Ack               []string           `json:"ack,omitempty"`
	SetErrs           map[string]pollErr `json:"setErrs,omitempty"`
	MaxEvents         int                `json:"maxEvents"`
	ReturnImmediately bool               `json:"returnImmediately"`
}

type pollAnswer struct {
	Sets          map[string]string `json:"sets"`
	MoreAvailable bool              `json:"moreAvailable"`
}

// Run polls until ctx ends: again at once while the transmitter has more,
// else after Interval. Errors are logged and retried.
func (p *Poller) Run(ctx context.Context) {
	interval := p.Interval
	if interval <= 0 {
		interval = DefaultPollInterval
	}
	for {
		more, err := p.Poll(ctx)
		if err != nil && ctx.Err() == nil {
			p.log().WarnContext(ctx, "signal poll failed; retrying", "url", p.URL, "error", err)
		}
		if more && err == nil {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}

func (p *Poller) log() *slog.Logger {
	if p.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return p.Logger
}

// Poll makes one poll request, carrying the acknowledgements and errors
// of the previous one, and stores the SETs it returns. It reports whether
// the transmitter has more.
func (p *Poller) Poll(ctx context.Context) (bool, error) {
	maxEvents := p.MaxEvents
	if maxEvents <= 0 {
		maxEvents = 50
	}
	body, err := json.Marshal(pollRequest{Ack: p.ack, SetErrs: p.setErr, MaxEvents: maxEvents, ReturnImmediately: true})
	if err != nil {
		return false, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.URL, bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if p.Token != "" {
		req.Header.Set("Authorization", "Bearer "+p.Token)
	}
	client := p.Client
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	res, err := client.Do(req)
	if err != nil {
		return false, fmt.Errorf("poll %s: %w", p.URL, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, maxPollAnswer+1))
	if err != nil {
		return false, fmt.Errorf("poll %s: read: %w", p.URL, err)
	}
	if res.StatusCode != http.StatusOK {
		return false, fmt.Errorf("poll %s: %s", p.URL, res.Status)
	}
	// The transmitter has the acknowledgements now.
	p.ack, p.setErr = nil, nil
	if len(raw) > maxPollAnswer {
		return false, fmt.Errorf("poll %s: the answer is larger than %d bytes", p.URL, maxPollAnswer)
	}
	var ans pollAnswer
	if err := json.Unmarshal(raw, &ans); err != nil {
		return false, fmt.Errorf("poll %s: the answer is not {\"sets\":…}: %w", p.URL, err)
	}
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	for jti, set := range ans.Sets {
		s, err := p.Verify([]byte(set), now())
		var se *signals.SETError
		switch {
		case errors.As(err, &se):
			p.refuse(jti, se.Code, se.Description)
			continue
		case err != nil:
			return false, err
		case s.JTI != jti:
			p.refuse(jti, signals.ErrCodeInvalidRequest, "the SET's jti is not the key it was delivered under")
			continue
		}
		// Carried through when the pollers stop: a store write cancelled
		// mid-commit would leave its outcome unknown (and a not_applied
		// record for a SET the store may hold). Close waits for the poll.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), receiveBound)
		_, err = p.Ledger.Receive(rctx, s)
		cancel()
		if err != nil && !errors.Is(err, ErrDuplicate) {
			// Not stored: not acknowledged, the transmitter delivers it again.
			p.log().WarnContext(ctx, "polled SET not stored; it will be delivered again", "jti", jti, "error", err)
			continue
		}
		p.ack = append(p.ack, jti)
	}
	return ans.MoreAvailable, nil
}

// receiveBound bounds the receive of one polled SET (its trail record,
// its store write, the sidecars' acknowledgements).
const receiveBound = 30 * time.Second

func (p *Poller) refuse(jti, code, desc string) {
	if p.setErr == nil {
		p.setErr = map[string]pollErr{}
	}
	p.setErr[jti] = pollErr{Err: code, Description: desc}
	p.log().Info("polled SET refused", "jti", jti, "err", code, "description", desc)
}
