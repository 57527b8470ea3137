package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/ciampdp/pdp/pdp/api"
)

// dormancyCommand is the command-line client of a running PDP's dormancy
// API: revalidate an identity, re-confirm a delegation (as its principal),
// and the auditor's report.
func dormancyCommand() *command {
	return &command{
		name:    "dormancy",
		args:    "revalidate SUBJECT | reconfirm DELEGATION-ID | report",
		summary: "end an identity's or a delegation's dormancy on a running PDP, and report the dormant population (auditor key)",
		flags: func(fs *pflag.FlagSet) {
			adminFlags(fs)
			fs.String("actor", "", "revalidate: who revalidates (staff:kim); reconfirm: the delegation's principal (user:alice)")
			fs.String("reason", "", "why; kept in the revalidation and the trail")
			fs.String("format", "json", "report: json or csv")
			fs.String("from", "", "report: revalidations from this RFC 3339 time")
			fs.String("to", "", "report: revalidations before this RFC 3339 time")
		},
		run: runDormancy,
	}
}

func runDormancy(ctx context.Context, std stdio, fs *pflag.FlagSet, args []string) error {
	if len(args) == 0 {
		return usagef("name a subcommand: revalidate SUBJECT, reconfirm DELEGATION-ID or report")
	}
	base, ctx, cancel, err := adminTarget(ctx, fs)
	if err != nil {
		return err
	}
	defer cancel()
	str := func(name string) string { v, _ := fs.GetString(name); return v }
	verb, rest := args[0], args[1:]
	u := *base
	switch verb {
	case "revalidate", "reconfirm":
		if len(rest) != 1 {
			return usagef("%s takes one argument: the %s", verb, map[bool]string{true: "subject (user:heidi)", false: "delegation id"}[verb == "revalidate"])
		}
		typ, id, ok := strings.Cut(str("actor"), ":")
		if !ok || typ == "" || id == "" {
			return usagef("%s needs --actor type:id", verb)
		}
		change := map[string]any{"actor": map[string]string{"type": typ, "id": id}}
		if r := str("reason"); r != "" {
			change["reason"] = r
		}
		body, _ := json.Marshal(change)
		if verb == "revalidate" {
			u.Path += api.DormancyPath + "/identities/" + url.PathEscape(rest[0]) + "/revalidate"
		} else {
			u.Path += api.DormancyPath + "/delegations/" + url.PathEscape(rest[0]) + "/reconfirm"
		}
		return adminCall(ctx, std.out, http.MethodPost, u.String(), body)
	case "report":
		if len(rest) != 0 {
			return usagef("report takes no arguments")
		}
		q := url.Values{}
		for _, k := range []string{"format", "from", "to"} {
			if v := str(k); v != "" {
				q.Set(k, v)
			}
		}
		if f := q.Get("format"); f != "json" && f != "csv" {
			return usagef("--format %q: want json or csv", f)
		}
		u.Path += api.AuditDormancyPath
		u.RawQuery = q.Encode()
		return streamReport(ctx, std, u.String())
	}
	return usagef("unknown subcommand %q (want revalidate, reconfirm or report)", verb)
}

// streamReport copies the report to stdout as it arrives (a report on a
// large population can exceed what adminDo buffers), saying on stderr how
// much came.
func streamReport(ctx context.Context, std stdio, u string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	if key := os.Getenv("PDP_API_KEY"); key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(raw, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s (HTTP %d)", e.Error, res.StatusCode)
		}
		return fmt.Errorf("GET %s: HTTP %d", u, res.StatusCode)
	}
	n, err := io.Copy(std.out, res.Body)
	if err != nil {
		return fmt.Errorf("GET %s: read the report: %w", u, err)
	}
	fmt.Fprintf(std.err, "dormancy report: %d bytes\n", n)
	return nil
}
