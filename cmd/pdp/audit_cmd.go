package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/ciampdp/pdp/pdp/audit"
	"github.com/ciampdp/pdp/pdp/policy"
	pdpserver "github.com/ciampdp/pdp/pdp/server"
	"github.com/ciampdp/pdp/pdp/trail"
)

// trailFlags are the flags every auditor command shares.
func trailFlags(fs *pflag.FlagSet) {
	fs.String("dir", envOr("PDP_TRAIL_DIR", pdpserver.DefaultTrail().Dir), "the trail directory (env PDP_TRAIL_DIR); the PDP using it must be stopped (a running PDP answers auditors at /v1/audit/…)")
	fs.String("origin", envOr("PDP_TRAIL_ORIGIN", pdpserver.DefaultTrail().Origin), "the checkpoints' origin line, trail.origin (env PDP_TRAIL_ORIGIN)")
	fs.Bool("json", false, "print JSON instead of text")
	postgresFlags(fs)
	fs.String("identity-file", "", "age identities (AGE-SECRET-KEY-1…, one per line) that open fields redacted with trail.redact method encrypt")
}

// revealerFromFlags reads --identity-file.
func revealerFromFlags(fs *pflag.FlagSet) (audit.Revealer, error) {
	path, _ := fs.GetString("identity-file")
	if path == "" {
		return audit.RevealWith(nil), nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--identity-file: %w", err)
	}
	var ids []string
	for _, line := range strings.Split(string(data), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			ids = append(ids, line)
		}
	}
	return audit.RevealWith(ids), nil
}

func explainCommand() *command {
	return &command{
		name:    "explain",
		args:    "DECISION-ID",
		summary: "explain one recorded decision in words: who asked, for whom, which policies, delegation chain and consent grant, at which revisions",
		flags:   trailFlags,
		run: func(ctx context.Context, std stdio, fs *pflag.FlagSet, args []string) error {
			if len(args) != 1 {
				return usagef("explain takes one decision id, got %q", args)
			}
			l, ar, done, err := openTrailStore(ctx, std, fs)
			if err != nil {
				return err
			}
			defer done()
			rec, err := audit.Find(ctx, l, args[0])
			if err != nil {
				return err
			}
			reveal, err := revealerFromFlags(fs)
			if err != nil {
				return err
			}
			ex, err := audit.Explain(rec, ar, reveal)
			if err != nil {
				return err
			}
			if asJSON, _ := fs.GetBool("json"); asJSON {
				return printJSON(std.out, ex)
			}
			_, err = io.WriteString(std.out, ex.Text())
			return err
		},
	}
}

func auditCommand() *command {
	return &command{
		name:    "audit",
		args:    "query | keygen",
		summary: "find recorded decisions by subject, on-behalf-of, resource, action, application, result, reason and time; make an auditor key pair",
		flags: func(fs *pflag.FlagSet) {
			trailFlags(fs)
			fs.String("subject", "", "the subject, type:id (user:bob)")
			fs.String("on-behalf-of", "", "whom the subject acted for, type:id (user:alice)")
			fs.String("resource", "", "the resource, type:id (account:acc-alice)")
			fs.String("action", "", "the action name")
			fs.String("application", "", "the calling application")
			fs.String("result", "", "allow or deny")
			fs.String("reason", "", "a reason code (delegation_revoked, consent_withdrawn, …)")
			fs.String("since", "", "decisions at or after this time (RFC 3339)")
			fs.String("until", "", "decisions before this time (RFC 3339)")
			fs.Int("limit", 1000, "list at most this many (all are counted)")
		},
		run: runAuditQuery,
	}
}

func runAuditQuery(ctx context.Context, std stdio, fs *pflag.FlagSet, args []string) error {
	if len(args) == 1 && args[0] == "keygen" {
		identity, recipient, err := trail.NewAuditorIdentity()
		if err != nil {
			return err
		}
		fmt.Fprintf(std.err, "# the public recipient, for trail.auditor_recipients:\n# %s\n# keep what follows secret: it opens redacted fields (pdp replay|explain --identity-file)\n", recipient)
		_, err = fmt.Fprintln(std.out, identity)
		return err
	}
	if len(args) != 1 || args[0] != "query" {
		return usagef("want: audit query [flags], or audit keygen")
	}
	var f audit.Filter
	f.Subject, _ = fs.GetString("subject")
	f.OnBehalfOf, _ = fs.GetString("on-behalf-of")
	f.Resource, _ = fs.GetString("resource")
	f.Action, _ = fs.GetString("action")
	f.Application, _ = fs.GetString("application")
	f.Result, _ = fs.GetString("result")
	f.Reason, _ = fs.GetString("reason")
	var err error
	if f.Since, err = timeFlag(fs, "since"); err != nil {
		return err
	}
	if f.Until, err = timeFlag(fs, "until"); err != nil {
		return err
	}
	if err := f.Validate(); err != nil {
		return usagef("%v", err)
	}
	limit, _ := fs.GetInt("limit")
	l, _, done, err := openTrailStore(ctx, std, fs)
	if err != nil {
		return err
	}
	defer done()
	res, err := audit.Query(ctx, l, f, limit)
	if err != nil {
		return err
	}
	if asJSON, _ := fs.GetBool("json"); asJSON {
		return printJSON(std.out, res)
	}
	for _, e := range res.Entries {
		verdict := "deny "
		if e.Allowed {
			verdict = "allow"
		}
		line := fmt.Sprintf("%s  %s  %s  %s %s %s", e.Time.UTC().Format(time.RFC3339Nano), e.DecisionID, verdict, e.Subject, e.Action, e.Resource)
		if e.OnBehalfOf != "" {
			line += " for " + e.OnBehalfOf
		}
		if e.Application != "" {
			line += "  app=" + e.Application
		}
		if len(e.Reasons) > 0 {
			line += "  reasons=" + strings.Join(e.Reasons, ",")
		}
		if len(e.Policies) > 0 {
			line += "  policies=" + strings.Join(e.Policies, ",")
		}
		fmt.Fprintln(std.out, audit.Printable(line))
	}
	more := ""
	if res.Truncated {
		more = fmt.Sprintf(" (first %d listed)", len(res.Entries))
	}
	fmt.Fprintf(std.out, "%d matching of %d records scanned%s\n", res.Matched, res.Scanned, more)
	return nil
}

func replayCommand() *command {
	return &command{
		name:    "replay",
		summary: "re-evaluate recorded decisions under the policy version each names (or, with --policies, a proposed one: what-if)",
		flags: func(fs *pflag.FlagSet) {
			trailFlags(fs)
			fs.Uint64("from", 0, "first sequence number to replay")
			fs.Uint64("to", math.MaxUint64, "one past the last sequence number (default: the end)")
			fs.String("since", "", "only decisions at or after this time (RFC 3339)")
			fs.String("until", "", "only decisions before this time (RFC 3339)")
			fs.String("policies", "", "what-if: a bundle folder, or a Git revision (branch, tag, commit) of --repo")
			fs.String("repo", ".", "what-if: the Git repository --policies names a revision of")
			fs.String("root", ".", "what-if: the bundle's folder inside --repo (holding policies/ and schema/)")
			fs.Bool("fail-on-flip", false, "what-if: exit 1 when any decision would flip (for pull-request CI)")
			fs.Int("max-items", 10000, "list at most this many differences or flips (all are counted)")
			fs.Bool("quiet", false, "no progress on stderr")
		},
		run: runReplay,
	}
}

func runReplay(ctx context.Context, std stdio, fs *pflag.FlagSet, args []string) error {
	if len(args) != 0 {
		return usagef("replay takes no arguments, got %q", args)
	}
	var opts audit.ReplayOptions
	opts.From, _ = fs.GetUint64("from")
	opts.To, _ = fs.GetUint64("to")
	if opts.To == math.MaxUint64 {
		opts.To = 0
	}
	var err error
	if opts.Since, err = timeFlag(fs, "since"); err != nil {
		return err
	}
	if opts.Until, err = timeFlag(fs, "until"); err != nil {
		return err
	}
	opts.MaxItems, _ = fs.GetInt("max-items")
	if opts.Reveal, err = revealerFromFlags(fs); err != nil {
		return err
	}
	if quiet, _ := fs.GetBool("quiet"); !quiet {
		start := time.Now()
		opts.ProgressEvery = 50000
		opts.Progress = func(done, total uint64) {
			rate := float64(done) / max(time.Since(start).Seconds(), 1e-9)
			fmt.Fprintf(std.err, "replay: %d of %d records (%.0f/s)\n", done, total, rate)
		}
	}
	proposedArg, _ := fs.GetString("policies")
	var proposed *policy.Bundle
	if proposedArg != "" {
		repo, _ := fs.GetString("repo")
		root, _ := fs.GetString("root")
		if proposed, err = pdpserver.LoadProposed(ctx, proposedArg, repo, root); err != nil {
			return err
		}
	}
	l, ar, done, err := openTrailStore(ctx, std, fs)
	if err != nil {
		return err
	}
	defer done()
	asJSON, _ := fs.GetBool("json")
	if proposed == nil {
		rep, err := audit.Replay(ctx, l, ar, opts)
		if err != nil {
			return err
		}
		if asJSON {
			if err := printJSON(std.out, rep); err != nil {
				return err
			}
		} else {
			printReplay(std.out, rep)
		}
		if !rep.OK() {
			return errReported
		}
		return nil
	}
	rep, err := audit.WhatIf(ctx, l, proposed, opts)
	if err != nil {
		return err
	}
	if asJSON {
		if err := printJSON(std.out, rep); err != nil {
			return err
		}
	} else {
		printWhatIf(std.out, rep, proposedArg)
	}
	if failOnFlip, _ := fs.GetBool("fail-on-flip"); failOnFlip && rep.Flipped() > 0 {
		return errReported
	}
	return nil
}

func printReplay(w io.Writer, rep audit.ReplayReport) {
	for _, it := range rep.Items {
		printLine(w, "%s seq %d decision %s (%s %s %s, policy %s): %s", strings.ToUpper(it.Outcome), it.Seq, it.DecisionID,
			it.Subject, it.Action, it.Resource, shortHash(it.PolicyVersion), strings.Join(append(it.Differences, it.Missing...), "; "))
	}
	fmt.Fprintf(w, "%d decisions replayed under %d policy version(s) in %s: %d reproduced, %d differs, %d not_replayable (%d other records)\n",
		rep.Decisions, len(rep.Versions), rep.Elapsed.Round(time.Millisecond), rep.Reproduced, rep.Differs, rep.NotReplayable, rep.OtherRecords)
}

func printWhatIf(w io.Writer, rep audit.WhatIfReport, proposed string) {
	fmt.Fprintf(w, "what-if: %d decisions replayed under %s (%s) in %s\n", rep.Decisions, proposed, shortHash(rep.Proposed.Hash), rep.Elapsed.Round(time.Millisecond))
	fmt.Fprintf(w, "  %d unchanged, %d allow→deny, %d deny→allow, %d same decision with other reasons, %d not_replayable\n",
		rep.Unchanged, rep.AllowToDeny, rep.DenyToAllow, rep.OtherChanges, rep.NotReplayable)
	for _, g := range rep.Groups {
		printLine(w, "  action %s, policies %s: %d allow→deny, %d deny→allow", g.Action, strings.Join(g.Policies, ","), g.AllowToDeny, g.DenyToAllow)
	}
	for _, it := range rep.Flips {
		was, now := "deny", "allow"
		if it.Recorded.Allowed {
			was, now = "allow", "deny"
		}
		reasons := ""
		if it.Replayed != nil && len(it.Replayed.Reasons) > 0 {
			reasons = " (" + strings.Join(it.Replayed.Reasons, ",") + ")"
		}
		printLine(w, "  FLIP %s→%s%s  %s  %s %s %s", was, now, reasons, it.DecisionID, it.Subject, it.Action, it.Resource)
	}
	for _, it := range rep.Unreplayable {
		printLine(w, "  NOT_REPLAYABLE %s: %s", it.DecisionID, strings.Join(it.Missing, "; "))
	}
}

// printLine writes one line of text output, made terminal-safe
// (audit.Printable): the values in it were recorded from callers.
func printLine(w io.Writer, format string, args ...any) {
	fmt.Fprintln(w, audit.Printable(fmt.Sprintf(format, args...)))
}

func shortHash(h string) string {
	if s, ok := strings.CutPrefix(h, "sha256:"); ok && len(s) > 12 {
		return s[:12]
	}
	return h
}

func timeFlag(fs *pflag.FlagSet, name string) (time.Time, error) {
	s, _ := fs.GetString(name)
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return t, usagef("--%s %q: want an RFC 3339 time such as 2026-11-28T12:00:00Z", name, s)
	}
	return t, nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
