//go:build unix

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// firstRunSections are the sections of the top-level README.md whose
// commands TestREADMEFirstRunWalkthrough runs, in order.
var firstRunSections = []string{"A five-minute walkthrough"}

// TestREADMEFirstRunWalkthrough is the newcomer's path: in a fresh clone
// (a copy of the repository's layout, as TestNorthbankREADMEWalkthrough
// makes), the README's first command, `go run ./cmd/pdp serve` with no
// configuration, serves the Northbank story, and the walkthrough's
// commands — a decision, a delegation revoked, a consent withdrawn, the
// auditor's view of both — print what the README shows. The README is
// read by the rules TestNorthbankREADMEWalkthrough documents.
func TestREADMEFirstRunWalkthrough(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("SKIPPED: the README walkthrough needs %s (apt-get install -y %s)", tool, tool)
		}
	}
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := readmeShellBlocks(string(data))
	serveArgs := firstRunServeArgs(t, blocks)
	var walk []mdBlock
	for _, b := range blocks {
		if slices.Contains(firstRunSections, b.section) {
			walk = append(walk, b)
		}
	}
	if len(walk) == 0 {
		t.Fatalf("README.md has no ```sh block under %q: update firstRunSections", firstRunSections)
	}

	bin := buildPDP(t)
	tmp := t.TempDir()
	root := readmeRepoCopy(t)
	tmpDir := filepath.Join(tmp, "tmp")
	home := filepath.Join(tmp, "home")
	for _, d := range []string{tmpDir, home} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "LANG=C.UTF-8"}
	srv := startReadmeServer(t, bin, root, env, serveArgs)
	for _, want := range []string{"serving the Northbank example", "key=demo-key-mobile-banking", "key=demo-key-auditor"} {
		if !strings.Contains(srv.log.String(), want) {
			t.Errorf("the startup log does not say %q:\n%s", want, srv.log)
		}
	}
	port := srv.addr[strings.LastIndex(srv.addr, ":")+1:]
	sh := startReadmeShell(t, root, append(env, "PDP_SERVER=http://"+srv.addr), bin)
	toShell := strings.NewReplacer("localhost:8080", "localhost:"+port, "/tmp/", tmpDir+"/")
	fromShell := strings.NewReplacer(tmpDir+"/", "/tmp/", "localhost:"+port, "localhost:8080", srv.addr, "127.0.0.1:8080")

	var outputs []string
	for _, b := range walk {
		cmds, err := splitShellCommands(b)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cmds {
			text, err := fillPlaceholders(toShell.Replace(c.text), outputs)
			if err != nil {
				t.Fatalf("README.md:%d: %v\n%s", c.line, err, indent(c.text))
			}
			out, code := sh.run(t, c, text)
			out = fromShell.Replace(out)
			outputs = append(outputs, out)
			got := outputLines(out)
			switch {
			case c.expect == nil && code != 0:
				t.Errorf("README.md:%d: exit status %d from\n%s\nit printed:\n%s\nserver log (tail):\n%s",
					c.line, code, indent(c.text), asComments(got), tail(srv.log.String(), 20))
			case c.expect != nil && !matchOutput(c.expect, got):
				t.Errorf("README.md:%d: the output of\n%s\ndiffers from the README's lines after it:\n%s\nit printed (exit status %d), as README lines:\n%s",
					c.line, indent(c.text), asComments(c.expect), code, asComments(got))
			}
		}
	}
	srv.stop(t)
	if t.Failed() {
		t.Log("to update README.md: paste the printed lines after the command, with … where a value changes from run to run (ids, times, durations)")
	}
}

// firstRunServeArgs finds the README's first command, `go run ./cmd/pdp
// serve` under "Two commands", and returns its arguments (none: the
// point is that it needs none).
func firstRunServeArgs(t *testing.T, blocks []mdBlock) []string {
	t.Helper()
	for _, b := range blocks {
		for _, l := range b.lines {
			cmd, _, _ := strings.Cut(l, "#")
			if rest, ok := strings.CutPrefix(strings.TrimSpace(cmd), "go run ./cmd/pdp serve"); ok && b.section == "Two commands" {
				return append([]string{"serve"}, strings.Fields(rest)...)
			}
		}
	}
	t.Fatal(`README.md: no "go run ./cmd/pdp serve" command under "Two commands"`)
	return nil
}
