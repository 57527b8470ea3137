package signalledger

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// ssfTransmitter is a transmitter's stream management at the edge: its
// configuration metadata, one configuration endpoint (bearer token
// "tx-secret") and a verification endpoint.
type ssfTransmitter struct {
	*httptest.Server
	methods  []string
	listForm bool // GET answers a list
	mu       sync.Mutex
	streams  []StreamConfig
	created  []StreamConfig
	verified []map[string]string
}

func newSSFTransmitter(t *testing.T, methods ...string) *ssfTransmitter {
	tx := &ssfTransmitter{methods: methods}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/ssf-configuration", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": tx.URL + "/", "jwks_uri": tx.URL + "/jwks",
			"delivery_methods_supported": tx.methods, "configuration_endpoint": tx.URL + "/ssf/stream", "verification_endpoint": tx.URL + "/ssf/verify"})
	})
	auth := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer tx-secret" {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			tx.mu.Lock()
			defer tx.mu.Unlock()
			h(w, r)
		}
	}
	mux.HandleFunc("GET /ssf/stream", auth(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case tx.listForm:
			_ = json.NewEncoder(w).Encode(tx.streams)
		case len(tx.streams) == 0:
			w.WriteHeader(http.StatusNotFound)
		default:
			_ = json.NewEncoder(w).Encode(tx.streams[0])
		}
	}))
	mux.HandleFunc("POST /ssf/stream", auth(func(w http.ResponseWriter, r *http.Request) {
		var st StreamConfig
		if err := json.NewDecoder(r.Body).Decode(&st); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		tx.created = append(tx.created, st)
		st.StreamID = "stream-1"
		if st.Delivery.Method == PollMethod {
			st.Delivery.EndpointURL = tx.URL + "/ssf/poll"
		}
		tx.streams = append(tx.streams, st)
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(st)
	}))
	mux.HandleFunc("POST /ssf/verify", auth(func(w http.ResponseWriter, r *http.Request) {
		var v map[string]string
		_ = json.NewDecoder(r.Body).Decode(&v)
		tx.verified = append(tx.verified, v)
		w.WriteHeader(http.StatusNoContent)
	}))
	tx.Server = httptest.NewServer(mux)
	t.Cleanup(tx.Close)
	return tx
}

func TestStreamEnsure(t *testing.T) {
	existing := StreamConfig{StreamID: "old-1"}
	existing.Delivery.Method = PushMethod
	existing.Delivery.EndpointURL = "https://pdp.example/ssf/events"
	tests := []struct {
		name      string
		methods   []string
		streams   []StreamConfig
		listForm  bool
		method    string
		token     string
		wantID    string
		wantNew   bool
		wantError bool
	}{
		{"creates a push stream", []string{PushMethod, PollMethod}, nil, false, PushMethod, "tx-secret", "stream-1", true, false},
		{"creates a poll stream and learns its endpoint", []string{PollMethod}, nil, false, PollMethod, "tx-secret", "stream-1", true, false},
		{"reads the stream it has", []string{PushMethod}, []StreamConfig{existing}, false, PushMethod, "tx-secret", "old-1", false, false},
		{"reads it from a list", []string{PushMethod}, []StreamConfig{existing}, true, PushMethod, "tx-secret", "old-1", false, false},
		{"creates when the list has none of its method", []string{PushMethod, PollMethod}, []StreamConfig{existing}, true, PollMethod, "tx-secret", "stream-1", true, false},
		{"the method is not supported", []string{PushMethod}, nil, false, PollMethod, "tx-secret", "", false, true},
		{"the token is wrong", []string{PushMethod}, nil, false, PushMethod, "nope", "", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tx := newSSFTransmitter(t, tt.methods...)
			tx.streams, tx.listForm = tt.streams, tt.listForm
			s := &Stream{ConfigurationURL: tx.URL + "/.well-known/ssf-configuration", Token: tt.token, Method: tt.method,
				PushURL: "https://pdp.example/ssf/events", Events: []string{"https://schemas.openid.net/secevent/caep/event-type/session-revoked"}}
			st, err := s.Ensure(context.Background())
			if tt.wantError {
				if err == nil || !errors.Is(err, ErrStream) {
					t.Fatalf("Ensure = %+v, %v; want an ErrStream", st, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if st.StreamID != tt.wantID || st.Delivery.Method != tt.method {
				t.Fatalf("stream %+v", st)
			}
			if tt.method == PollMethod && st.Delivery.EndpointURL != tx.URL+"/ssf/poll" {
				t.Errorf("poll endpoint %q", st.Delivery.EndpointURL)
			}
			tx.mu.Lock()
			defer tx.mu.Unlock()
			if (len(tx.created) == 1) != tt.wantNew {
				t.Fatalf("created %+v", tx.created)
			}
			if tt.wantNew {
				c := tx.created[0]
				if len(c.EventsRequested) != 1 || (tt.method == PushMethod && c.Delivery.EndpointURL != "https://pdp.example/ssf/events") {
					t.Errorf("create request %+v", c)
				}
			}
			if len(tx.verified) != 1 || tx.verified[0]["stream_id"] != tt.wantID || tx.verified[0]["state"] == "" {
				t.Errorf("verification requests %v", tx.verified)
			}
		})
	}
}

// FuzzDecodeStreams: a configuration endpoint's answer never panics the
// decoder, and a stream found has an id and the method asked for.
func FuzzDecodeStreams(f *testing.F) {
	f.Add([]byte(`{"stream_id":"s","delivery":{"method":"urn:ietf:rfc:8935"}}`))
	f.Add([]byte(`[{"stream_id":"s","delivery":{"method":"urn:ietf:rfc:8936","endpoint_url":"https://x/poll"}}]`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		st, found, err := decodeStreams(raw, PushMethod)
		if err == nil && found && (st.StreamID == "" || st.Delivery.Method != PushMethod) {
			t.Fatalf("found %+v", st)
		}
	})
}
