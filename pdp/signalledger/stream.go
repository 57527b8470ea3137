package signalledger

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"time"
)

// Delivery method URNs of SSF streams.
const (
	PushMethod = "urn:ietf:rfc:8935"
	PollMethod = "urn:ietf:rfc:8936"
)

// maxStreamDocument bounds a transmitter's configuration or stream answer.
const maxStreamDocument = 1 << 20

// ErrStream: the transmitter's stream management could not be used.
var ErrStream = errors.New("SSF stream management")

// Stream is the PDP's event stream at a transmitter that offers stream
// management (OpenID SSF 1.0 §7, §8): Ensure reads its configuration
// metadata, reads the stream the PDP has there or creates one with the
// delivery method wanted, and asks for a verification event.
type Stream struct {
	// ConfigurationURL is the transmitter's /.well-known/ssf-configuration.
	ConfigurationURL string
	// Token is the bearer token of its configuration endpoint.
	Token string
	// Method is PushMethod or PollMethod.
	Method string
	// PushURL is where the transmitter pushes (PushMethod).
	PushURL string
	// Events are the event type URIs requested (empty: the transmitter's
	// choice).
	Events []string
	Client *http.Client
	Logger *slog.Logger
}

// TransmitterMetadata is the part of a transmitter's configuration
// metadata the PDP uses.
type TransmitterMetadata struct {
	Issuer                   string   `json:"issuer"`
	JWKSURI                  string   `json:"jwks_uri"`
	DeliveryMethodsSupported []string `json:"delivery_methods_supported"`
	ConfigurationEndpoint    string   `json:"configuration_endpoint"`
	VerificationEndpoint     string   `json:"verification_endpoint"`
}

// StreamConfig is a stream's configuration as the transmitter answers it.
type StreamConfig struct {
	StreamID string `json:"stream_id"`
	Delivery struct {
		Method      string `json:"method"`
		EndpointURL string `json:"endpoint_url,omitempty"`
	} `json:"delivery"`
	EventsRequested []string `json:"events_requested,omitempty"`
	EventsDelivered []string `json:"events_delivered,omitempty"`
}

// Ensure returns the PDP's stream at the transmitter, created when it has
// none with the wanted delivery method. The verification request that
// follows is best effort (its failure is logged): the verification event
// it brings is stored like any event and enforces nothing.
func (s *Stream) Ensure(ctx context.Context) (StreamConfig, error) {
	var md TransmitterMetadata
	if _, err := s.do(ctx, http.MethodGet, s.ConfigurationURL, false, nil, &md); err != nil {
		return StreamConfig{}, err
	}
	if md.ConfigurationEndpoint == "" {
		return StreamConfig{}, fmt.Errorf("%w: %s offers no configuration_endpoint", ErrStream, s.ConfigurationURL)
	}
	if len(md.DeliveryMethodsSupported) > 0 && !slices.Contains(md.DeliveryMethodsSupported, s.Method) {
		return StreamConfig{}, fmt.Errorf("%w: the transmitter does not support %s (it supports %v)", ErrStream, s.Method, md.DeliveryMethodsSupported)
	}
	st, found, err := s.read(ctx, md.ConfigurationEndpoint)
	if err != nil {
		return StreamConfig{}, err
	}
	if !found {
		req := StreamConfig{EventsRequested: s.Events}
		req.Delivery.Method = s.Method
		if s.Method == PushMethod {
			req.Delivery.EndpointURL = s.PushURL
		}
		if _, err := s.do(ctx, http.MethodPost, md.ConfigurationEndpoint, true, req, &st); err != nil {
			return StreamConfig{}, err
		}
		s.log().InfoContext(ctx, "SSF stream created", "stream_id", st.StreamID, "method", st.Delivery.Method, "endpoint", st.Delivery.EndpointURL)
	} else {
		s.log().InfoContext(ctx, "SSF stream read", "stream_id", st.StreamID, "method", st.Delivery.Method, "endpoint", st.Delivery.EndpointURL)
	}
	if st.Delivery.Method != s.Method {
		return StreamConfig{}, fmt.Errorf("%w: the stream's delivery method is %q, not %s", ErrStream, st.Delivery.Method, s.Method)
	}
	if s.Method == PollMethod && st.Delivery.EndpointURL == "" {
		return StreamConfig{}, fmt.Errorf("%w: the poll stream names no endpoint_url", ErrStream)
	}
	if md.VerificationEndpoint != "" {
		state := make([]byte, 12)
		_, _ = rand.Read(state)
		body := map[string]string{"stream_id": st.StreamID, "state": hex.EncodeToString(state)}
		if _, err := s.do(ctx, http.MethodPost, md.VerificationEndpoint, true, body, nil); err != nil {
			s.log().WarnContext(ctx, "SSF verification not requested", "stream_id", st.StreamID, "error", err)
		}
	}
	return st, nil
}

// read returns the PDP's stream with the wanted method: the endpoint may
// answer one stream object or a list of them (404 or an empty list:
// none).
func (s *Stream) read(ctx context.Context, endpoint string) (StreamConfig, bool, error) {
	var raw json.RawMessage
	code, err := s.do(ctx, http.MethodGet, endpoint, true, nil, &raw)
	if code == http.StatusNotFound {
		return StreamConfig{}, false, nil
	}
	if err != nil {
		return StreamConfig{}, false, err
	}
	st, found, err := decodeStreams(raw, s.Method)
	if err != nil {
		return StreamConfig{}, false, fmt.Errorf("%w: streams at %s: %w", ErrStream, endpoint, err)
	}
	return st, found, nil
}

// decodeStreams finds the stream with method in a configuration
// endpoint's answer: one stream object, or a list of them.
func decodeStreams(raw []byte, method string) (StreamConfig, bool, error) {
	var list []StreamConfig
	if bytes.HasPrefix(bytes.TrimSpace(raw), []byte("[")) {
		if err := json.Unmarshal(raw, &list); err != nil {
			return StreamConfig{}, false, err
		}
	} else {
		var one StreamConfig
		if err := json.Unmarshal(raw, &one); err != nil {
			return StreamConfig{}, false, err
		}
		list = []StreamConfig{one}
	}
	for _, st := range list {
		if st.StreamID != "" && st.Delivery.Method == method {
			return st, true, nil
		}
	}
	return StreamConfig{}, false, nil
}

// do sends one JSON request (the bearer token when auth) and decodes a
// 2xx answer into out (nil: ignored). It returns the status code.
func (s *Stream) do(ctx context.Context, method, url string, auth bool, in, out any) (int, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrStream, err)
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth && s.Token != "" {
		req.Header.Set("Authorization", "Bearer "+s.Token)
	}
	client := s.Client
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	res, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%w: %s %s: %w", ErrStream, method, url, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, maxStreamDocument+1))
	if err != nil {
		return res.StatusCode, fmt.Errorf("%w: %s %s: %w", ErrStream, method, url, err)
	}
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return res.StatusCode, fmt.Errorf("%w: %s %s answered %s", ErrStream, method, url, res.Status)
	}
	if len(raw) > maxStreamDocument {
		return res.StatusCode, fmt.Errorf("%w: %s %s: the answer is larger than %d bytes", ErrStream, method, url, maxStreamDocument)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return res.StatusCode, fmt.Errorf("%w: %s %s: %w", ErrStream, method, url, err)
		}
	}
	return res.StatusCode, nil
}

func (s *Stream) log() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}
