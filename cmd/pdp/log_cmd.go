package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"unicode"

	"github.com/spf13/pflag"

	pdpserver "github.com/ciampdp/pdp/pdp/server"
	"github.com/ciampdp/pdp/pdp/trail"
)

// logCommand is the auditor's view of a decision trail on disk.
func logCommand() *command {
	return &command{
		name:    "log",
		args:    "verify | prove DECISION-ID | checkpoint",
		summary: "check the decision trail against its signed checkpoints, prove a decision is in it, print its latest checkpoint",
		flags: func(fs *pflag.FlagSet) {
			fs.String("dir", envOr("PDP_TRAIL_DIR", pdpserver.DefaultTrail().Dir), "the trail directory (env PDP_TRAIL_DIR); the PDP using it must be stopped")
			fs.String("origin", envOr("PDP_TRAIL_ORIGIN", pdpserver.DefaultTrail().Origin), "the checkpoints' origin line, trail.origin (env PDP_TRAIL_ORIGIN)")
			fs.StringArray("key", nil, "verify, checkpoint: the checkpoints' verifier key (as served at "+"/v1/trail/key); repeatable: after a key rotation pass the old key(s) too, a checkpoint signed by any of them checks")
			fs.StringArray("key-file", nil, "verify, checkpoint: a file with the verifier key (or the signing key); repeatable")
			fs.Uint64("from", 0, "verify: first sequence number to check")
			fs.Uint64("to", math.MaxUint64, "verify: one past the last sequence number to check (default: the end)")
			fs.Bool("fail-unanchored", false, "verify: fail when records follow the latest checkpoint (no signature covers them yet)")
			fs.StringArray("witness", nil, "verify: also check the trail against the signed checkpoints in this file, kept outside it ('pdp log checkpoint >> FILE', or trail.witness_file); repeatable")
			postgresFlags(fs)
		},
		run: runLog,
	}
}

func runLog(ctx context.Context, std stdio, fs *pflag.FlagSet, args []string) error {
	if len(args) == 0 {
		return usagef("want a subcommand: verify, prove DECISION-ID or checkpoint")
	}
	verb, args := args[0], args[1:]
	want := 0
	if verb == "prove" {
		want = 1
	}
	switch verb {
	case "verify", "prove", "checkpoint":
		if len(args) != want {
			return usagef("%s takes %d argument(s), got %q", verb, want, args)
		}
	default:
		return usagef("unknown subcommand %q", verb)
	}
	dir, _ := fs.GetString("dir")
	witnessFiles, _ := fs.GetStringArray("witness")
	if len(witnessFiles) > 0 && verb != "verify" {
		return usagef("--witness goes with verify only")
	}
	witnesses, err := readWitnessFiles(witnessFiles)
	if err != nil {
		return err
	}
	l, _, closeLog, err := openTrailStore(ctx, std, fs)
	if err != nil {
		return err
	}
	defer closeLog()
	switch verb {
	case "verify":
		return logVerify(ctx, std, fs, l, dir, witnesses)
	case "prove":
		return logProve(std, l, args[0])
	default:
		return logCheckpoint(std, fs, l, dir)
	}
}

// logCheckpoint prints the latest stored checkpoint once it checks with
// the verifier key(s) and is of the trail's origin: a row planted in the
// database is refused, not copied into a witness file.
func logCheckpoint(std stdio, fs *pflag.FlagSet, l pdpserver.TrailStore, dir string) error {
	vkey, err := verifierFromFlags(std, fs, dir)
	if err != nil {
		return err
	}
	cps := l.Checkpoints()
	if len(cps) == 0 {
		return fmt.Errorf("%s has no checkpoint yet", dir)
	}
	cp := cps[len(cps)-1]
	h, err := trail.OpenCheckpoint(vkey, cp)
	if err != nil {
		return fmt.Errorf("the latest stored checkpoint does not check (run pdp log verify): %w", err)
	}
	if origin, _ := fs.GetString("origin"); h.Origin != origin {
		return fmt.Errorf("the latest stored checkpoint is of origin %q, not %q (--origin)", h.Origin, origin)
	}
	if size := l.Size(); h.Size > size {
		return fmt.Errorf("the latest stored checkpoint is of %d records, but the trail holds %d (run pdp log verify)", h.Size, size)
	}
	_, err = std.out.Write(cp)
	return err
}

// postgresFlags are the flags that point a command at a PostgreSQL trail.
func postgresFlags(fs *pflag.FlagSet) {
	fs.String("postgres-url", envOr("PDP_TRAIL_POSTGRES_URL", ""), "read the PostgreSQL trail at this URL instead of --dir (env PDP_TRAIL_POSTGRES_URL); it may be in use")
	fs.String("postgres-schema", envOr("PDP_TRAIL_POSTGRES_SCHEMA", "public"), "the PostgreSQL trail's schema (env PDP_TRAIL_POSTGRES_SCHEMA)")
}

// openTrailStore opens the trail the flags name, and its policy archive: the
// PostgreSQL trail with --postgres-url, else the files in --dir (locked:
// the PDP using them must be stopped).
func openTrailStore(ctx context.Context, std stdio, fs *pflag.FlagSet) (pdpserver.TrailStore, pdpserver.PolicyArchive, func(), error) {
	var o pdpserver.TrailReadOptions
	o.Origin, _ = fs.GetString("origin")
	o.PostgresURL, _ = fs.GetString("postgres-url")
	o.PostgresSchema, _ = fs.GetString("postgres-schema")
	o.Dir, _ = fs.GetString("dir")
	r, err := pdpserver.OpenTrailReader(ctx, o)
	if err != nil {
		return nil, nil, nil, err
	}
	if r.TruncatedBytes > 0 {
		fmt.Fprintf(std.err, "note: a torn final record (%d bytes, never acknowledged) was cut off on open\n", r.TruncatedBytes)
	}
	return r.Log, r.Archive, r.Close, nil
}

func logVerify(ctx context.Context, std stdio, fs *pflag.FlagSet, l pdpserver.TrailStore, dir string, witnesses []witnessFile) error {
	vkey, err := verifierFromFlags(std, fs, dir)
	if err != nil {
		return err
	}
	from, _ := fs.GetUint64("from")
	to, _ := fs.GetUint64("to")
	rep, err := l.Verify(ctx, vkey, from, to)
	if err != nil {
		return err
	}
	// The witnesses are checked whatever the trail's own checkpoints say:
	// a forgery consistent with those is what they are for.
	witnessed, err := checkWitnesses(ctx, std, l, vkey, witnesses)
	if err != nil {
		return err
	}
	if !rep.OK {
		fmt.Fprintf(std.out, "FAILED: %s at seq %d: %s\n", rep.Problem, rep.Seq, rep.Detail)
		return errReported
	}
	if !witnessed {
		return errReported
	}
	pruned := ""
	if rep.Pruned > 0 {
		pruned = fmt.Sprintf(" (%d pruned by retention)", rep.Pruned)
	}
	failUnanchored, _ := fs.GetBool("fail-unanchored")
	if failUnanchored && rep.Unanchored > 0 {
		fmt.Fprintf(std.out, "FAILED: %d records after the latest checkpoint (size %d) are unanchored: no signature covers them, so they could have been altered undetected\n",
			rep.Unanchored, rep.Anchored)
		return errReported
	}
	fmt.Fprintf(std.out, "OK: %d records checked [%d,%d)%s, %d checkpoints checked, %d records anchored by the latest, %d unanchored\n",
		rep.To-rep.From, rep.From, rep.To, pruned, rep.Checkpoints, rep.Anchored, rep.Unanchored)
	if rep.Unanchored > 0 {
		fmt.Fprintf(std.err, "warning: %d records after the latest checkpoint are unanchored: no signature covers them yet (the PDP writes one within trail.checkpoint_interval, and on a clean stop)\n", rep.Unanchored)
	}
	return nil
}

// verifierFromFlags is every --key and the key in every --key-file (as
// one string, the keys separated by new lines: trail.Verifiers), else the
// one derived from the signing key next to the log (which says so: a check
// independent of the trail's host needs the published key).
func verifierFromFlags(std stdio, fs *pflag.FlagSet, dir string) (string, error) {
	keys, _ := fs.GetStringArray("key")
	files, _ := fs.GetStringArray("key-file")
	if len(keys) == 0 && len(files) == 0 {
		file := filepath.Join(dir, pdpserver.TrailKeyFile)
		fmt.Fprintf(std.err, "note: verifier key derived from %s; pass --key with the key the PDP publishes at /v1/trail/key for an independent check\n", file)
		files = []string{file}
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("verifier key: %w", err)
		}
		k := strings.TrimSpace(string(data))
		if strings.HasPrefix(k, "PRIVATE+KEY+") {
			if k, err = pdpserver.VerifierKey(k); err != nil {
				return "", err
			}
		}
		keys = append(keys, k)
	}
	for _, k := range keys {
		if strings.ContainsFunc(k, unicode.IsSpace) || k == "" {
			return "", usagef("--key %q: a verifier key holds no white space", k)
		}
	}
	return strings.Join(keys, "\n"), nil
}

// proofOutput is what 'pdp log prove' prints: all a third party needs, with
// the verifier key, to run trail.CheckProof.
type proofOutput struct {
	Checkpoint string       `json:"checkpoint"`
	Record     trail.Record `json:"record"`
	Proof      trail.Proof  `json:"proof"`
}

func logProve(std stdio, l pdpserver.TrailStore, id string) error {
	var (
		rec   trail.Record
		found = errors.New("found")
	)
	err := l.Scan(0, l.Size(), func(r trail.Record) error {
		if r.ID == id {
			rec = r
			return found
		}
		return nil
	})
	switch {
	case err == nil:
		return fmt.Errorf("decision %s is not in the trail", id)
	case !errors.Is(err, found):
		return err
	}
	cps := l.Checkpoints()
	if len(cps) == 0 {
		return errors.New("the trail has no checkpoint yet")
	}
	cp := cps[len(cps)-1]
	p, err := l.Prove(rec.Seq, cp)
	if errors.Is(err, trail.ErrNotFound) {
		return fmt.Errorf("decision %s (seq %d) is not covered by the latest checkpoint yet; it will be after the next one: %w", id, rec.Seq, err)
	}
	if err != nil {
		return err
	}
	out, err := json.MarshalIndent(proofOutput{Checkpoint: string(cp), Record: rec, Proof: p}, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(std.out, "%s\n", out)
	return err
}
