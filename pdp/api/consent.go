package api

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/ciampdp/pdp/pdp/consent"
)

// Consents records and reads consent; *consent.Ledger is the real one.
// Every write answers with the ledger position it was stored at: a
// decision after it never sees older consent state. The ledger records
// every change in the decision trail before it appends it (its Journal): a
// change that cannot be recorded is not applied (consent.ErrNotRecorded,
// 503).
type Consents interface {
	Give(ctx context.Context, r consent.ChoiceRequest) (consent.Event, string, error)
	Refuse(ctx context.Context, r consent.ChoiceRequest) (consent.Event, string, error)
	Withdraw(ctx context.Context, r consent.WithdrawRequest) ([]consent.Event, error)
	Renew(ctx context.Context, r consent.RenewRequest) (consent.Event, string, error)
	// The reads answer what the reader may see (consent.Reader).
	CurrentFor(ctx context.Context, subject consent.Ref, r consent.Reader) (consent.State, error)
	StateAtFor(ctx context.Context, subject consent.Ref, at time.Time, r consent.Reader) (consent.State, error)
	HistoryFor(ctx context.Context, subject consent.Ref, r consent.Reader) ([]consent.Event, error)
	ReceiptFor(ctx context.Context, eventID string, r consent.Reader) (string, error)
	PublicKey() ed25519.PublicKey
}

var _ Consents = (*consent.Ledger)(nil)

// ConsentsPath is the admin API of the consent ledger.
const ConsentsPath = "/v1/consents"

// consentAnswer is the answer to give, refuse and renew.
type consentAnswer struct {
	Event consent.Event `json:"event"`
	// Receipt is the signed consent receipt (JWS, EdDSA).
	Receipt  string `json:"receipt"`
	Position int64  `json:"position"`
}

func (s *Server) consentRoutes(e *echo.Echo) {
	if s.consents == nil {
		return
	}
	e.POST(ConsentsPath+"/give", s.consentChoice(s.consents.Give), withActorToken)
	e.POST(ConsentsPath+"/refuse", s.consentChoice(s.consents.Refuse), withActorToken)
	e.POST(ConsentsPath+"/withdraw", s.withdrawConsent, withActorToken)
	e.POST(ConsentsPath+"/renew", s.renewConsent, withActorToken)
	e.GET(ConsentsPath+"/receipt-key", s.receiptKey)
	e.GET(ConsentsPath+"/receipts/:id", s.consentReceipt)
	e.GET(ConsentsPath+"/subjects/:subject", s.consentState)
	e.GET(ConsentsPath+"/subjects/:subject/history", s.consentHistory)
}

// consentCaller authenticates the caller: any application with a key may
// record consent, but only for the purposes it may process for (the ledger
// checks). With authentication off the caller is "local", which no
// purpose lists.
func (s *Server) consentCaller(c echo.Context) (string, error) {
	app, err := s.keys.authenticate(c.Request())
	if err != nil {
		return "", err
	}
	if s.keys == nil {
		return LocalApplication, nil
	}
	return app, nil
}

// consentReader authenticates the caller of a consent read: a consent
// administrator (Config.ConsentAdmins, or anyone with authentication off)
// sees everything, any other application what it is party to.
func (s *Server) consentReader(c echo.Context) (consent.Reader, error) {
	app, err := s.consentCaller(c)
	if err != nil {
		return consent.Reader{}, err
	}
	return consent.Reader{Application: app, Admin: s.keys == nil || s.cfg.ConsentAdmins[app]}, nil
}

func (s *Server) consentChoice(do func(context.Context, consent.ChoiceRequest) (consent.Event, string, error)) echo.HandlerFunc {
	return func(c echo.Context) error {
		app, err := s.consentCaller(c)
		if err != nil {
			return err
		}
		req, err := decodeBody(s, c, consent.DecodeChoice)
		if err != nil {
			return err
		}
		req.Application = app
		ctx, done, err := s.changing(c)
		if err != nil {
			return err
		}
		ev, receipt, err := do(ctx, req)
		done()
		if err != nil {
			return err
		}
		return writeJSON(c, http.StatusCreated, consentAnswer{Event: ev, Receipt: receipt, Position: ev.Position})
	}
}

func (s *Server) withdrawConsent(c echo.Context) error {
	app, err := s.consentCaller(c)
	if err != nil {
		return err
	}
	req, err := decodeBody(s, c, consent.DecodeWithdraw)
	if err != nil {
		return err
	}
	req.Application = app
	ctx, done, err := s.changing(c)
	if err != nil {
		return err
	}
	evs, err := s.consents.Withdraw(ctx, req)
	done()
	if err != nil {
		return err
	}
	var pos int64
	for _, e := range evs {
		pos = max(pos, e.Position)
	}
	return writeJSON(c, http.StatusOK, struct {
		Events   []consent.Event `json:"events"`
		Position int64           `json:"position"`
	}{evs, pos})
}

func (s *Server) renewConsent(c echo.Context) error {
	app, err := s.consentCaller(c)
	if err != nil {
		return err
	}
	req, err := decodeBody(s, c, consent.DecodeRenew)
	if err != nil {
		return err
	}
	req.Application = app
	ctx, done, err := s.changing(c)
	if err != nil {
		return err
	}
	ev, receipt, err := s.consents.Renew(ctx, req)
	done()
	if err != nil {
		return err
	}
	return writeJSON(c, http.StatusOK, consentAnswer{Event: ev, Receipt: receipt, Position: ev.Position})
}

func subjectParam(c echo.Context) (consent.Ref, error) {
	r, err := consent.ParseRef(c.Param("subject"))
	if err != nil {
		return consent.Ref{}, fmt.Errorf("%w: subject %q: want type:id, as in user:alice", consent.ErrDecode, c.Param("subject"))
	}
	return r, nil
}

// consentState answers a subject's current consents, or with ?at= their
// state at a past time, recomputed from the ledger.
func (s *Server) consentState(c echo.Context) error {
	reader, err := s.consentReader(c)
	if err != nil {
		return err
	}
	subject, err := subjectParam(c)
	if err != nil {
		return err
	}
	var st consent.State
	if at := c.QueryParam("at"); at != "" {
		t, perr := time.Parse(time.RFC3339, at)
		if perr != nil {
			return fmt.Errorf("%w: at=%q: want an RFC 3339 time", consent.ErrDecode, at)
		}
		st, err = s.consents.StateAtFor(c.Request().Context(), subject, t, reader)
	} else {
		st, err = s.consents.CurrentFor(c.Request().Context(), subject, reader)
	}
	if err != nil {
		return err
	}
	return writeJSON(c, http.StatusOK, st)
}

func (s *Server) consentHistory(c echo.Context) error {
	reader, err := s.consentReader(c)
	if err != nil {
		return err
	}
	subject, err := subjectParam(c)
	if err != nil {
		return err
	}
	evs, err := s.consents.HistoryFor(c.Request().Context(), subject, reader)
	if err != nil {
		return err
	}
	if evs == nil {
		evs = []consent.Event{}
	}
	return writeJSON(c, http.StatusOK, struct {
		Events []consent.Event `json:"events"`
	}{evs})
}

func (s *Server) consentReceipt(c echo.Context) error {
	reader, err := s.consentReader(c)
	if err != nil {
		return err
	}
	jws, err := s.consents.ReceiptFor(c.Request().Context(), c.Param("id"), reader)
	if err != nil {
		return err
	}
	return writeJSON(c, http.StatusOK, struct {
		Receipt string `json:"receipt"`
	}{jws})
}

// receiptKey publishes the receipts' verification key as a JWK (OKP,
// Ed25519), so that anyone holding a receipt can check it.
func (s *Server) receiptKey(c echo.Context) error {
	pub := s.consents.PublicKey()
	if len(pub) == 0 {
		return errors.New("no receipt key")
	}
	return writeJSON(c, http.StatusOK, map[string]string{
		"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig",
		"x": base64.RawURLEncoding.EncodeToString(pub),
	})
}

// decodeBody reads a request body (bounded by Config.BodyLimit) and decodes
// it with decode, the strict decoder of the body's type.
func decodeBody[T any](s *Server, c echo.Context, decode func(io.Reader) (T, error)) (T, error) {
	buf, err := s.readBody(c.Request())
	if err != nil {
		var zero T
		return zero, err
	}
	defer putBuffer(buf)
	return decode(buf)
}
