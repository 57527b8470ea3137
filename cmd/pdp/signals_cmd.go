package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/google/uuid"
	"github.com/spf13/pflag"

	"github.com/ciampdp/pdp/pdp/api"
	"github.com/ciampdp/pdp/pdp/signals"
)

// Defaults of `pdp signals push`: the Northbank demo transmitter.
const (
	demoTransmitterKey = "examples/northbank/signals/demo-only-transmitter-key.json"
	demoTransmitter    = "https://risk.northbank.example/"
	demoReceiver       = "https://pdp.northbank.example/"
	demoIdP            = "https://idp.northbank.example/"
)

// signalsCommand plays a transmitter (push: sign a SET and push it to a
// running PDP) and reads the signals a PDP holds (list, history).
func signalsCommand() *command {
	return &command{
		name:    "signals",
		args:    "push EVENT SUB | list TYPE:ID | history TYPE:ID",
		summary: "push a signed risk signal (SET) to a running PDP as a transmitter would, and list a subject's active signals or their history",
		flags: func(fs *pflag.FlagSet) {
			adminFlags(fs)
			fs.String("key", demoTransmitterKey, "push: the transmitter's private JWK (default: the Northbank DEMO key)")
			fs.String("iss", demoTransmitter, "push: the transmitter (iss)")
			fs.String("aud", demoReceiver, "push: the receiver (aud)")
			fs.String("subject-iss", demoIdP, "push: the issuer of the subject (iss_sub format)")
			fs.String("session", "", "push: a session id: the subject becomes complex {user, session}")
			fs.String("jti", "", "push: the SET's jti (default: a new UUID)")
			fs.String("event-time", "", "push: event_timestamp, RFC 3339 or unix seconds (default: now)")
			fs.String("payload", "", "push: extra event members as a JSON object (e.g. {\"change_direction\":\"decrease\"})")
			fs.Bool("print", false, "push: print the signed SET instead of pushing it")
			fs.String("token", envOr("PDP_SIGNALS_PUSH_TOKEN", ""), "push: the transmitter's bearer token, when the PDP wants one (env PDP_SIGNALS_PUSH_TOKEN)")
		},
		run: runSignals,
	}
}

func runSignals(ctx context.Context, std stdio, fs *pflag.FlagSet, args []string) error {
	if len(args) == 0 {
		return usagef("want a subcommand: push EVENT SUB, list TYPE:ID, history TYPE:ID")
	}
	switch args[0] {
	case "push":
		if len(args) != 3 {
			return usagef("push wants an event type (a CAEP/RISC short name such as credential-compromise, or a URI) and a subject (the user id)")
		}
		return pushSignal(ctx, std, fs, args[1], args[2])
	case "list", "history":
		if len(args) != 2 {
			return usagef("%s wants a subject as TYPE:ID (e.g. user:bob)", args[0])
		}
		typ, id, ok := strings.Cut(args[1], ":")
		if !ok || typ == "" || id == "" {
			return usagef("subject %q: want TYPE:ID (e.g. user:bob)", args[1])
		}
		base, ctx, cancel, err := adminTarget(ctx, fs)
		if err != nil {
			return err
		}
		defer cancel()
		u := *base
		u.Path += api.SignalsPath + "/subjects/" + url.PathEscape(typ) + "/" + url.PathEscape(id)
		raw, err := adminDo(ctx, http.MethodGet, u.String(), nil)
		if err != nil {
			return err
		}
		var subj api.SignalSubject
		if err := json.Unmarshal(raw, &subj); err != nil {
			return fmt.Errorf("the server's answer: %w", err)
		}
		return printSignals(std.out, args[0], subj)
	}
	return usagef("unknown subcommand %q", args[0])
}

// printSignals writes a subject's active signals (list) or every event
// received for it (history), one a line.
func printSignals(w io.Writer, verb string, s api.SignalSubject) error {
	if verb == "list" {
		if len(s.Active) == 0 {
			_, err := fmt.Fprintf(w, "%s: no active signals\n", s.Entity)
			return err
		}
		for _, a := range s.Active {
			if _, err := fmt.Fprintf(w, "%s  %s  %s (%s)  from %s  jti %s  effects %v\n", a.Event.Time.Format(time.RFC3339), s.Entity,
				a.Rule, a.Reason, a.Event.Transmitter, a.Event.JTI, a.Effects); err != nil {
				return err
			}
		}
		return nil
	}
	if len(s.History) == 0 {
		_, err := fmt.Fprintf(w, "%s: no signals received\n", s.Entity)
		return err
	}
	for _, e := range s.History {
		name := signals.ShortName(e.Type)
		if name == "" {
			name = e.Type
		}
		if _, err := fmt.Fprintf(w, "%d  %s  %s  from %s  jti %s  received %s\n", e.Position, e.Time.Format(time.RFC3339), name,
			e.Transmitter, e.JTI, e.ReceivedAt.Format(time.RFC3339)); err != nil {
			return err
		}
	}
	return nil
}

// pushSignal signs a SET with one event for sub and pushes it (RFC 8935).
func pushSignal(ctx context.Context, std stdio, fs *pflag.FlagSet, event, sub string) error {
	get := func(name string) string { v, _ := fs.GetString(name); return v }
	uri := event
	if !strings.Contains(event, "://") {
		var ok bool
		if uri, ok = signals.TypeURI(event); !ok {
			return usagef("event %q: not a known CAEP/RISC short name; give its URI", event)
		}
	}
	raw, err := os.ReadFile(get("key"))
	if err != nil {
		return fmt.Errorf("--key: %w", err)
	}
	var key jose.JSONWebKey
	if err := key.UnmarshalJSON(raw); err != nil || key.IsPublic() {
		return fmt.Errorf("--key %s: not a private JWK", get("key"))
	}
	now := time.Now()
	at := now
	if s := get("event-time"); s != "" {
		if at, err = parseWhen(s); err != nil {
			return usagef("--event-time %q: want RFC 3339 or unix seconds", s)
		}
	}
	payload := map[string]any{}
	if p := get("payload"); p != "" {
		if err := json.Unmarshal([]byte(p), &payload); err != nil {
			return usagef("--payload: not a JSON object: %v", err)
		}
	}
	switch signals.ShortName(uri) {
	case "credential-compromise":
		setDefault(payload, "credential_type", "password")
	case "credential-change":
		setDefault(payload, "credential_type", "password")
		setDefault(payload, "change_type", "update")
	}
	payload["event_timestamp"] = at.Unix()
	subject := map[string]any{"format": signals.FormatIssSub, "iss": get("subject-iss"), "sub": sub}
	if s := get("session"); s != "" {
		subject = map[string]any{"format": signals.FormatComplex, "user": subject, "session": map[string]any{"format": signals.FormatOpaque, "id": s}}
	}
	jti := get("jti")
	if jti == "" {
		jti = uuid.NewString()
	}
	claims := map[string]any{"iss": get("iss"), "aud": get("aud"), "iat": now.Unix(), "jti": jti, "sub_id": subject,
		"events": map[string]any{uri: payload}}
	set, err := signals.Sign(key, claims)
	if err != nil {
		return err
	}
	if p, _ := fs.GetBool("print"); p {
		_, err := fmt.Fprintln(std.out, set)
		return err
	}
	base, ctx, cancel, err := adminTarget(ctx, fs)
	if err != nil {
		return err
	}
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base.String()+api.SSFEventsPath, strings.NewReader(set))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", api.SETContentType)
	if tok := get("token"); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("push: %w", err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	if res.StatusCode != http.StatusAccepted {
		return fmt.Errorf("push refused: %s %s", res.Status, strings.TrimSpace(string(body)))
	}
	_, err = fmt.Fprintf(std.out, "accepted: %s for %s, jti %s\n", event, sub, jti)
	return err
}

func setDefault(m map[string]any, k string, v any) {
	if _, ok := m[k]; !ok {
		m[k] = v
	}
}

// parseWhen reads RFC 3339 or unix seconds.
func parseWhen(s string) (time.Time, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, errors.New("not a time")
	}
	return t, nil
}
