package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ciampdp/pdp/pdp/signalledger"
	"github.com/ciampdp/pdp/pdp/signals"
)

// receiverFake stands in for the receiver (verifier and ledger, tested in
// their packages and end to end): the body names the outcome.
type receiverFake struct{ got []string }

func (r *receiverFake) Receive(_ context.Context, body []byte, bearer string) ([]signals.Event, error) {
	r.got = append(r.got, string(body))
	switch string(body) {
	case "needs-token":
		if bearer != "push-secret" {
			return nil, &signals.SETError{Code: signals.ErrCodeAuthentication, Description: "token"}
		}
		return nil, nil
	case "ok":
		return []signals.Event{{JTI: "j"}}, nil
	case "bad-key":
		return nil, &signals.SETError{Code: signals.ErrCodeInvalidKey, Description: "no key"}
	case "dup":
		return nil, fmt.Errorf("x: %w", signalledger.ErrDuplicate)
	case "trail":
		return nil, fmt.Errorf("x: %w", signalledger.ErrNotRecorded)
	}
	return nil, errors.New("disk on fire")
}

func (r *receiverFake) Subject(_ context.Context, typ, id string) (SignalSubject, error) {
	if typ != "user" {
		return SignalSubject{}, ErrUnknownType
	}
	return SignalSubject{Entity: `User::"` + id + `"`, Active: []ActiveSignal{}, History: []signals.Event{}}, nil
}

func (r *receiverFake) MaxBytes() int { return 16 }

func TestPushSET(t *testing.T) {
	rf := &receiverFake{}
	srv, err := New(Config{APIKeys: map[string]string{digest("k-admin"): "backoffice", digest("k-app"): "app"},
		SignalAdmins: map[string]bool{"backoffice": true}},
		Deps{Decider: &fakeDecider{}, Policies: loadedPolicies(), Registry: prometheus.NewRegistry(), Signals: rf})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	e := &env{t: t, url: hs.URL, srv: srv}
	for _, tc := range []struct {
		name, body, ctype string
		status            int
		err               string
	}{
		{"accepted", "ok", SETContentType, http.StatusAccepted, ""},
		{"media type parameters are fine", "ok", SETContentType + "; charset=utf-8", http.StatusAccepted, ""},
		{"wrong content type", "ok", "application/json", http.StatusBadRequest, "invalid_request"},
		{"too large", strings.Repeat("x", 17), SETContentType, http.StatusBadRequest, "invalid_request"},
		{"refused SET", "bad-key", SETContentType, http.StatusBadRequest, "invalid_key"},
		{"transmitter not authenticated", "needs-token", SETContentType, http.StatusUnauthorized, "authentication_failed"},
		{"replayed jti", "dup", SETContentType, http.StatusBadRequest, "invalid_request"},
		{"trail down", "trail", SETContentType, http.StatusServiceUnavailable, "trail_unavailable"},
		{"store down", "other", SETContentType, http.StatusServiceUnavailable, "temporarily_unavailable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, body := e.do(call{path: SSFEventsPath, body: tc.body, contentType: tc.ctype})
			if res.StatusCode != tc.status {
				t.Fatalf("%d %s, want %d", res.StatusCode, body, tc.status)
			}
			if tc.err == "" {
				if len(body) != 0 {
					t.Fatalf("a 202 with a body: %s", body)
				}
				return
			}
			var eb setErrorBody
			if err := json.Unmarshal(body, &eb); err != nil || eb.Err != tc.err || eb.Description == "" {
				t.Fatalf("body %s, want err %s", body, tc.err)
			}
		})
	}
	for _, tc := range []struct {
		name, path, key string
		status          int
	}{
		{"admin", "/v1/signals/subjects/user/bob", "k-admin", http.StatusOK},
		{"another application", "/v1/signals/subjects/user/bob", "k-app", http.StatusForbidden},
		{"no key", "/v1/signals/subjects/user/bob", "", http.StatusUnauthorized},
		{"unknown type", "/v1/signals/subjects/robot/r2", "k-admin", http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := map[string]string{}
			if tc.key != "" {
				h["Authorization"] = "Bearer " + tc.key
			}
			res, body := e.do(call{method: http.MethodGet, path: tc.path, header: h})
			if res.StatusCode != tc.status {
				t.Fatalf("%d %s, want %d", res.StatusCode, body, tc.status)
			}
		})
	}
}
