package main

import (
	"context"
	"fmt"
	"os"

	pdpserver "github.com/ciampdp/pdp/pdp/server"
	"github.com/ciampdp/pdp/pdp/trail"
)

// witnessFile is one --witness file of 'pdp log verify', parsed.
type witnessFile struct {
	name string
	cps  []trail.WitnessedCheckpoint
}

// readWitnessFiles reads and parses every --witness file before the trail
// is opened: a file that cannot be read or holds nothing is a usage error,
// never skipped; a chunk of it that is not a checkpoint is reported by
// checkWitnesses, beside the checkpoints before and after it.
func readWitnessFiles(names []string) ([]witnessFile, error) {
	var out []witnessFile
	for _, name := range names {
		data, err := os.ReadFile(name)
		if err != nil {
			return nil, usagef("--witness: %v", err)
		}
		cps, err := trail.ParseWitnessFile(data)
		if err != nil {
			return nil, usagef("--witness %s: %v", name, err)
		}
		out = append(out, witnessFile{name: name, cps: cps})
	}
	return out, nil
}

// checkWitnesses checks every witnessed checkpoint against l, prints a
// FAILED line naming each one that does not hold (and each chunk of a
// file that is not a checkpoint: a torn append, say) and an OK line per
// file that holds entirely; false if any failed.
func checkWitnesses(ctx context.Context, std stdio, l pdpserver.TrailStore, vkey string, files []witnessFile) (bool, error) {
	ok := true
	for _, f := range files {
		var signed [][]byte
		for _, c := range f.cps {
			if c.Err == nil {
				signed = append(signed, c.Signed)
			}
		}
		errs, err := l.CheckWitnessed(ctx, vkey, signed)
		if err != nil {
			return false, fmt.Errorf("--witness %s: %w", f.name, err)
		}
		var largest uint64
		failed, j := 0, 0
		for _, c := range f.cps {
			if c.Err != nil {
				failed++
				fmt.Fprintf(std.out, "FAILED: witness %s: checkpoint %d, line %d, is not a checkpoint: %v\n", f.name, c.Index, c.Line, c.Err)
				continue
			}
			h, _ := trail.UnverifiedHead(c.Signed) // parsed already
			cerr := errs[j]
			j++
			if cerr != nil {
				failed++
				fmt.Fprintf(std.out, "FAILED: witnessed checkpoint of %d records (root %s…, %s: checkpoint %d, line %d): %v\n",
					h.Size, rootPrefix(h), f.name, c.Index, c.Line, cerr)
				continue
			}
			largest = max(largest, h.Size)
		}
		if failed > 0 {
			ok = false
			continue
		}
		fmt.Fprintf(std.out, "OK: witness %s: %d checkpoints checked, the largest of %d records\n", f.name, len(f.cps), largest)
	}
	return ok, nil
}

// rootPrefix is the first characters of a tree head's root as the
// checkpoint writes it (base64), enough to find it in the file.
func rootPrefix(h trail.TreeHead) string {
	return h.Root.String()[:12]
}
