package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/ciampdp/pdp/pdp/actorproof"
	"github.com/ciampdp/pdp/pdp/api"
)

// delegationCommand is the command-line client of the delegation admin API
// of a running PDP (POST/GET /v1/delegations…): the same rules, history and
// projection as any other caller.
func delegationCommand() *command {
	return &command{
		name:    "delegation",
		args:    "offer FILE|- | accept|revoke|renounce|suspend|resume ID | get ID | list",
		summary: "manage delegation records on a running PDP (offer, accept, revoke, renounce, suspend, resume; get and list the records the application may read)",
		flags: func(fs *pflag.FlagSet) {
			adminFlags(fs)
			fs.String("actor", "", "the user the change is made for, type:id (user:alice); required for accept, revoke, renounce, suspend, resume")
			fs.String("reason", "", "why (revoke, renounce, suspend); kept in the history")
			fs.String("principal", "", "list: delegations granted by this principal (user:alice, organisation:acme)")
			fs.String("agent", "", "list: delegations held by this agent (user:bob)")
			fs.String("parent", "", "list: sub-delegations of this delegation id")
		},
		run: runDelegation,
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func runDelegation(ctx context.Context, std stdio, fs *pflag.FlagSet, args []string) error {
	if len(args) == 0 {
		return usagef("name a subcommand: offer, accept, revoke, renounce, suspend, resume, get or list")
	}
	base, ctx, cancel, err := adminTarget(ctx, fs)
	if err != nil {
		return err
	}
	defer cancel()
	str := func(name string) string { v, _ := fs.GetString(name); return v }
	verb, rest := args[0], args[1:]
	var (
		method = http.MethodPost
		path   string
		body   []byte
		query  = url.Values{}
	)
	switch verb {
	case "offer":
		if len(rest) != 1 {
			return usagef("offer takes one argument: the JSON file of the offer, or - for stdin")
		}
		if body, err = readArg(std.in, rest[0]); err != nil {
			return err
		}
		path = api.DelegationsPath
	case "accept", "revoke", "renounce", "suspend", "resume":
		if len(rest) != 1 {
			return usagef("%s takes one argument: the delegation id", verb)
		}
		actor := str("actor")
		typ, id, ok := strings.Cut(actor, ":")
		if !ok || typ == "" || id == "" {
			return usagef("%s needs --actor type:id (the user the application acts for, e.g. user:alice)", verb)
		}
		change := map[string]any{"actor": map[string]string{"type": typ, "id": id}}
		if r := str("reason"); r != "" {
			change["reason"] = r
		}
		body, _ = json.Marshal(change)
		path = api.DelegationsPath + "/" + url.PathEscape(rest[0]) + "/" + verb
	case "get":
		if len(rest) != 1 {
			return usagef("get takes one argument: the delegation id")
		}
		method, path = http.MethodGet, api.DelegationsPath+"/"+url.PathEscape(rest[0])
	case "list":
		if len(rest) != 0 {
			return usagef("list takes no arguments; filter with --principal, --agent or --parent")
		}
		for _, k := range []string{"principal", "agent", "parent"} {
			if v := str(k); v != "" {
				query.Set(k, v)
			}
		}
		if len(query) == 0 {
			return usagef("list needs --principal, --agent or --parent")
		}
		method, path = http.MethodGet, api.DelegationsPath
	default:
		return usagef("unknown subcommand %q (want offer, accept, revoke, renounce, suspend, resume, get or list)", verb)
	}
	u := *base
	u.Path += path
	u.RawQuery = query.Encode()
	return adminCall(ctx, std.out, method, u.String(), body)
}

// readArg reads a file, or stdin for "-".
func readArg(stdin io.Reader, name string) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(io.LimitReader(stdin, 1<<20))
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// adminFlags adds the flags every admin client command shares.
func adminFlags(fs *pflag.FlagSet) {
	fs.String("server", envOr("PDP_SERVER", "http://127.0.0.1:8080"), "the PDP's base URL (env PDP_SERVER); the API key comes from PDP_API_KEY")
	fs.Duration("timeout", 10*time.Second, "deadline of the request")
}

// adminTarget reads --server and --timeout: the base URL, and ctx bounded
// by the timeout.
func adminTarget(ctx context.Context, fs *pflag.FlagSet) (*url.URL, context.Context, context.CancelFunc, error) {
	server, _ := fs.GetString("server")
	base, err := url.Parse(strings.TrimRight(server, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, nil, nil, usagef("--server %q: want an http(s) URL such as http://127.0.0.1:8080", server)
	}
	timeout, _ := fs.GetDuration("timeout")
	ctx, cancel := context.WithTimeout(ctx, timeout)
	return base, ctx, cancel, nil
}

// adminCall sends one admin request and prints the JSON answer, indented.
func adminCall(ctx context.Context, out io.Writer, method, u string, body []byte) error {
	raw, err := adminDo(ctx, method, u, body)
	if err != nil {
		return err
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, raw, "", "  "); err != nil {
		return errors.New("the server's answer is not JSON")
	}
	pretty.WriteByte('\n')
	_, err = out.Write(pretty.Bytes())
	return err
}

// adminDo sends one admin request with the API key of PDP_API_KEY (and,
// when set, the actor's token of PDP_ACTOR_TOKEN in the Actor-Token
// header, for a PDP with auth.actor_tokens) and returns the answer's body. A non-2xx answer is an error carrying the
// server's message.
func adminDo(ctx context.Context, method, u string, body []byte) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key := os.Getenv("PDP_API_KEY"); key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if tok := os.Getenv("PDP_ACTOR_TOKEN"); tok != "" {
		req.Header.Set(actorproof.Header, tok)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, u, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read the answer: %w", method, u, err)
	}
	if res.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(raw, &e) == nil && e.Error != "" {
			return nil, fmt.Errorf("%s (HTTP %d)", e.Error, res.StatusCode)
		}
		return nil, fmt.Errorf("%s %s: HTTP %d", method, u, res.StatusCode)
	}
	return raw, nil
}
