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
// is opened: a file that cannot be read or parsed is a usage error, never
// skipped.
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
// FAILED line naming each one that does not hold and an OK line per file
// that holds entirely; false if any failed.
func checkWitnesses(ctx context.Context, std stdio, l pdpserver.TrailStore, vkey string, files []witnessFile) (bool, error) {
	ok := true
	for _, f := range files {
		signed := make([][]byte, len(f.cps))
		for i, c := range f.cps {
			signed[i] = c.Signed
		}
		errs, err := l.CheckWitnessed(ctx, vkey, signed)
		if err != nil {
			return false, fmt.Errorf("--witness %s: %w", f.name, err)
		}
		var largest uint64
		failed := 0
		for i, c := range f.cps {
			h, _ := trail.UnverifiedHead(c.Signed) // parsed already
			if errs[i] != nil {
				failed++
				fmt.Fprintf(std.out, "FAILED: witnessed checkpoint of %d records (root %s…, %s: checkpoint %d, line %d): %v\n",
					h.Size, rootPrefix(h), f.name, c.Index, c.Line, errs[i])
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
