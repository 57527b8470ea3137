//go:build unix

package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	git "github.com/go-git/go-git/v5"
)

// TestNorthbankREADMEWalkthrough runs the shell blocks of
// examples/northbank/README.md literally, in order, as a newcomer would
// (the sections in readmeWalkthroughSections), against a real `pdp serve
// --config examples/northbank/pdp.yaml`, with bash, curl and jq, and checks
// every output the README shows.
//
// How the README is read (what a README author must know):
//
//   - The blocks are the ```sh fences of those sections. Each command (a
//     line, with its continuations: open quotes, a trailing | or \, a
//     here-document) runs in one bash process that lives for the whole
//     walkthrough, so variables and functions carry from block to block
//     as in a terminal; each command's stdout and stderr are captured
//     together.
//   - Output: the "# " comment lines directly after a command, with no
//     blank line in between, are what it prints, line for line (the text
//     after "# "). Any other comment — before a command, after a blank
//     line, or at the end of a command's line — is prose and is not
//     checked. So a prose comment after an output goes after a blank line.
//   - In an output line, … matches any text within the line; a line that
//     is only … matches any number of lines. Nothing else is tolerant.
//   - A command with no output lines must exit 0; one with output lines is
//     judged by its output only (`log verify` after tampering exits 1).
//
// What the test changes, and how:
//
//   - The working folder is a temporary copy of the repository's layout:
//     examples/northbank without data/, as a Git work tree with one
//     commit (as in a clone), so the data the README writes lands in the
//     copy and never in the real examples/northbank/data.
//   - `go run ./cmd/pdp …` runs the binary built once by the test (a bash
//     function named go; the command text is unchanged).
//   - The PDP is the "Run it" section's `go run ./cmd/pdp serve …` command,
//     with --addr 127.0.0.1:0 added; localhost:8080 in the commands becomes
//     its port, and PDP_SERVER points `pdp delegation` and `pdp consent` at
//     it. "/tmp/" in the commands becomes a temporary folder. Both are
//     turned back in the output before it is compared.
//   - The PDP is stopped with SIGINT (the README's Ctrl-C) before a block
//     whose lead-in says the PDP is stopped, or after a block that says
//     Ctrl-C.
//   - Placeholders are filled from the output of earlier commands (the
//     newest output that has one): <id> with the first "id" value of a JSON
//     output (the record `pdp delegation offer` printed), <decision-id>
//     with the first decision id (the first line `pdp audit query`
//     printed).
//   - The environment is minimal (PATH, a temporary HOME, LANG): no PDP_*
//     variables of the test process, no proxies, no ~/.curlrc.
//
// A failure names the README line, the command, the README's output lines
// and what the command printed, as "# " lines ready to paste.
func TestNorthbankREADMEWalkthrough(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("SKIPPED: the README walkthrough needs %s (apt-get install -y %s)", tool, tool)
		}
	}
	data, err := os.ReadFile(filepath.Join(northbank, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := readmeShellBlocks(string(data))
	serveArgs := readmeServeArgs(t, blocks)
	var walk []mdBlock // in the README's order
	for _, b := range blocks {
		if slices.Contains(readmeWalkthroughSections, b.section) {
			walk = append(walk, b)
		}
	}
	for _, name := range readmeWalkthroughSections {
		if !slices.ContainsFunc(walk, func(b mdBlock) bool { return b.section == name }) {
			t.Fatalf("examples/northbank/README.md has no ```sh block under %q: update readmeWalkthroughSections", name)
		}
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
	port := srv.addr[strings.LastIndex(srv.addr, ":")+1:]
	sh := startReadmeShell(t, root, append(env, "PDP_SERVER=http://"+srv.addr), bin)
	toShell := strings.NewReplacer("localhost:8080", "localhost:"+port, "/tmp/", tmpDir+"/")
	fromShell := strings.NewReplacer(tmpDir+"/", "/tmp/", "localhost:"+port, "localhost:8080", srv.addr, "127.0.0.1:8080")

	var outputs []string // every command's output so far, newest last
	for i, b := range walk {
		if srv.running() && (readmeSaysStopped(b.lead) || i > 0 && strings.Contains(strings.Join(walk[i-1].lines, "\n"), "Ctrl-C")) {
			srv.stop(t)
		}
		cmds, err := splitShellCommands(b)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cmds {
			text, err := fillPlaceholders(toShell.Replace(c.text), outputs)
			if err != nil {
				t.Fatalf("examples/northbank/README.md:%d: %v\n%s", c.line, err, indent(c.text))
			}
			out, code := sh.run(t, c, text)
			out = fromShell.Replace(out)
			outputs = append(outputs, out)
			got := outputLines(out)
			switch {
			case c.expect == nil && code != 0:
				t.Errorf("examples/northbank/README.md:%d: exit status %d from\n%s\nit printed:\n%s\nserver log (tail):\n%s",
					c.line, code, indent(c.text), asComments(got), tail(srv.log.String(), 20))
			case c.expect != nil && !matchOutput(c.expect, got):
				t.Errorf("examples/northbank/README.md:%d: the output of\n%s\ndiffers from the README's lines after it:\n%s\nit printed (exit status %d), as README lines:\n%s",
					c.line, indent(c.text), asComments(c.expect), code, asComments(got))
			}
		}
	}
	if srv.running() {
		srv.stop(t)
	}
	if t.Failed() {
		t.Log("to update examples/northbank/README.md: paste the printed lines after the command, with … where a value changes from run to run (ids, times, durations)")
	}
}

// readmeWalkthroughSections are the sections of examples/northbank/README.md
// the walkthrough runs, in the README's order (the nginx and sidecar
// section has its own test: nginx_test.go).
var readmeWalkthroughSections = []string{
	"A delegation's life, with curl",
	"A consent's life, with curl",
	"The auditor's view: explain, verify, tamper, replay, what-if",
}

// mdBlock is one ```sh fence of a Markdown file.
type mdBlock struct {
	section string   // the ## heading it is under
	line    int      // the file's line of its first line
	lines   []string // its lines
	lead    string   // the prose between the previous fence (or the heading) and it
}

// readmeShellBlocks returns the ```sh fences of a Markdown text.
func readmeShellBlocks(md string) []mdBlock {
	var (
		blocks  []mdBlock
		section string
		lead    strings.Builder
		cur     *mdBlock
		inOther bool // in a fence that is not sh
	)
	for i, l := range strings.Split(md, "\n") {
		switch {
		case cur != nil && strings.HasPrefix(l, "```"):
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.lines = append(cur.lines, l)
		case inOther:
			inOther = !strings.HasPrefix(l, "```")
		case l == "```sh":
			cur = &mdBlock{section: section, line: i + 2, lead: lead.String()}
			lead.Reset()
		case strings.HasPrefix(l, "```"):
			inOther = true
		case strings.HasPrefix(l, "## "):
			section = strings.TrimPrefix(l, "## ")
			lead.Reset()
		default:
			lead.WriteString(l + "\n")
		}
	}
	return blocks
}

// readmeServeArgs finds the "Run it" section's serve command and returns
// its arguments.
func readmeServeArgs(t *testing.T, blocks []mdBlock) []string {
	t.Helper()
	for _, b := range blocks {
		for _, l := range b.lines {
			if rest, ok := strings.CutPrefix(l, "go run ./cmd/pdp serve "); ok && b.section == "Run it" {
				return append([]string{"serve"}, strings.Fields(rest)...)
			}
		}
	}
	t.Fatal(`examples/northbank/README.md: no "go run ./cmd/pdp serve …" command under "Run it"`)
	return nil
}

var stoppedRE = regexp.MustCompile(`(?i)\bPDP stopped\b`)

// readmeSaysStopped reports whether a block's lead-in says the PDP is stopped.
func readmeSaysStopped(lead string) bool { return stoppedRE.MatchString(lead) }

// shCommand is one command of a block and the output the README shows.
type shCommand struct {
	line   int      // README line of its first line
	text   string   // as written in the README
	expect []string // the "# " lines directly after it, without "# "; nil: none
}

var heredocRE = regexp.MustCompile(`<<-?\s*['"]?([A-Za-z_][A-Za-z0-9_]*)['"]?`)

// splitShellCommands splits a block into commands, bash deciding where a
// command is complete, and gives each the output lines after it.
func splitShellCommands(b mdBlock) ([]shCommand, error) {
	var (
		cmds     []shCommand
		cur      []string
		start    int
		heredoc  string
		inOutput bool // the previous line ended a command or was its output
	)
	for i, l := range b.lines {
		switch {
		case heredoc != "":
			cur = append(cur, l)
			if strings.TrimSpace(l) != heredoc {
				continue
			}
			heredoc = ""
		case len(cur) == 0 && strings.TrimSpace(l) == "":
			inOutput = false
			continue
		case len(cur) == 0 && strings.HasPrefix(strings.TrimSpace(l), "#"):
			if inOutput && strings.HasPrefix(l, "#") {
				c := &cmds[len(cmds)-1]
				c.expect = append(c.expect, strings.TrimPrefix(strings.TrimPrefix(l, "#"), " "))
			}
			continue
		default:
			if len(cur) == 0 {
				start = b.line + i
			}
			cur = append(cur, l)
			if m := heredocRE.FindStringSubmatch(l); m != nil {
				heredoc = m[1]
				continue
			}
			if strings.HasSuffix(l, `\`) {
				continue
			}
		}
		text := strings.Join(cur, "\n")
		if exec.Command("bash", "-n", "-c", placeholderWords.Replace(text)).Run() != nil {
			continue // an open quote, a trailing |, …
		}
		cmds = append(cmds, shCommand{line: start, text: text})
		cur, inOutput = nil, true
	}
	if len(cur) > 0 {
		return nil, fmt.Errorf("examples/northbank/README.md:%d: a command that does not end within its block:\n%s", start, strings.Join(cur, "\n"))
	}
	return cmds, nil
}

// placeholders fill the README's <…> with a value from an earlier output.
var placeholders = map[string]*regexp.Regexp{
	"<id>":          regexp.MustCompile(`"id":\s*"([^"]+)"`),
	"<decision-id>": regexp.MustCompile(`\b([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\b`),
}

// placeholderWords makes the placeholders words, for bash -n.
var placeholderWords = strings.NewReplacer("<id>", "ID", "<decision-id>", "DECISION_ID")

func fillPlaceholders(text string, outputs []string) (string, error) {
	for name, re := range placeholders {
		if !strings.Contains(text, name) {
			continue
		}
		value := ""
		for i := len(outputs) - 1; i >= 0 && value == ""; i-- {
			if m := re.FindStringSubmatch(outputs[i]); m != nil {
				value = m[1]
			}
		}
		if value == "" {
			return "", fmt.Errorf("no earlier output has a value for %s", name)
		}
		text = strings.ReplaceAll(text, name, value)
	}
	return text, nil
}

// outputLines splits an output into lines without trailing blanks.
func outputLines(out string) []string {
	out = strings.TrimRight(out, " \t\r\n")
	if out == "" {
		return []string{}
	}
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " \t\r")
	}
	return lines
}

// matchOutput compares output lines with the README's: … matches any text
// within a line, a line of only … any number of lines.
func matchOutput(want, got []string) bool {
	if len(want) == 0 {
		return len(got) == 0
	}
	if strings.TrimSpace(want[0]) == "…" {
		for k := 0; k <= len(got); k++ {
			if matchOutput(want[1:], got[k:]) {
				return true
			}
		}
		return false
	}
	return len(got) > 0 && matchLine(strings.TrimRight(want[0], " \t"), got[0]) && matchOutput(want[1:], got[1:])
}

func matchLine(want, got string) bool {
	parts := strings.Split(want, "…")
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	return regexp.MustCompile("^" + strings.Join(parts, ".*") + "$").MatchString(got)
}

func asComments(lines []string) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(strings.TrimRight("# "+l, " ") + "\n")
	}
	return b.String()
}

func indent(text string) string { return "    " + strings.ReplaceAll(text, "\n", "\n    ") }

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// readmeRepoCopy copies examples/northbank (without data/) into a fresh
// folder laid out as the repository, made a Git work tree with one commit
// as a clone is, and returns its root.
func readmeRepoCopy(t *testing.T) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "repo")
	dst := filepath.Join(root, "examples", "northbank")
	err := filepath.WalkDir(northbank, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(northbank, path)
		if d.IsDir() && rel == "data" {
			return filepath.SkipDir
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	repo, err := git.PlainInit(root, false)
	if err != nil {
		t.Fatal(err)
	}
	(&policyRepo{dir: root, repo: repo}).commit(t, "a clone of the repository")
	return root
}

// readmeServer is the PDP the README's "Run it" command starts.
type readmeServer struct {
	cmd  *exec.Cmd
	log  *lockedBuffer
	addr string
	done chan error
}

var listeningRE = regexp.MustCompile(`(?:msg=listening addr=|"msg":"listening".*?"addr":")([0-9.]+:[0-9]+)`)

func startReadmeServer(t *testing.T, bin, root string, env, args []string) *readmeServer {
	t.Helper()
	s := &readmeServer{log: &lockedBuffer{}, done: make(chan error, 1)}
	s.cmd = exec.Command(bin, append(args, "--addr", "127.0.0.1:0")...)
	s.cmd.Dir, s.cmd.Env, s.cmd.Stdout, s.cmd.Stderr = root, env, s.log, s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- s.cmd.Wait() }()
	t.Cleanup(func() {
		if s.running() {
			_ = s.cmd.Process.Kill()
			<-s.done
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		if m := listeningRE.FindStringSubmatch(s.log.String()); m != nil {
			s.addr = m[1]
			return s
		}
		select {
		case err := <-s.done:
			s.done <- err
			t.Fatalf("pdp %s exited before listening (%v):\n%s", strings.Join(args, " "), err, s.log)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("pdp %s did not log that it listens within 60s:\n%s", strings.Join(args, " "), s.log)
		}
	}
}

func (s *readmeServer) running() bool { return len(s.done) == 0 }

// stop is the README's Ctrl-C: SIGINT, then a clean exit.
func (s *readmeServer) stop(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.done:
		s.done <- err
		if err != nil {
			t.Errorf("pdp serve after Ctrl-C: %v\n%s", err, tail(s.log.String(), 20))
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("pdp serve did not stop within 30s of Ctrl-C:\n%s", tail(s.log.String(), 20))
	}
}

// readmeShell is one bash process, the newcomer's terminal: commands are
// written to its stdin one at a time, each with its output to a file.
type readmeShell struct {
	stdin  io.WriteCloser
	done   chan string // the lines bash prints: only the end markers
	stderr *lockedBuffer
	dir    string
	n      int
	seen   int // how much of stderr earlier commands had
}

const readmeDone = "@@readme-walkthrough-done"

func startReadmeShell(t *testing.T, root string, env []string, bin string) *readmeShell {
	t.Helper()
	sh := &readmeShell{done: make(chan string, 1), stderr: &lockedBuffer{}, dir: t.TempDir()}
	cmd := exec.Command("bash", "--noprofile", "--norc")
	cmd.Dir, cmd.Env, cmd.Stderr = root, env, sh.stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its commands are killed with it
	var err error
	if sh.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = sh.stdin.Close()
		select {
		case <-sh.done:
		case <-time.After(5 * time.Second):
		}
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // anything a command left running
		_ = cmd.Wait()
	})
	go func() {
		defer close(sh.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			sh.done <- sc.Text()
		}
	}()
	// `go run ./cmd/pdp ARGS` is the binary the test built.
	fmt.Fprintf(sh.stdin, `go() { if [[ $1 == run && $2 == ./cmd/pdp ]]; then shift 2; %q "$@"; else echo "README walkthrough: only go run ./cmd/pdp is provided, not: go $*" >&2; return 127; fi; }`+"\n", bin)
	return sh
}

// run runs one command and returns what it printed and its exit status.
func (sh *readmeShell) run(t *testing.T, c shCommand, text string) (string, int) {
	t.Helper()
	sh.n++
	out := filepath.Join(sh.dir, fmt.Sprintf("%03d.out", sh.n))
	if _, err := fmt.Fprintf(sh.stdin, "{\n%s\n} </dev/null >%q 2>&1\nprintf '%s %%d\\n' $?\n", text, out, readmeDone); err != nil {
		t.Fatalf("examples/northbank/README.md:%d: writing to bash: %v", c.line, err)
	}
	select {
	case l, ok := <-sh.done:
		if !ok {
			t.Fatalf("examples/northbank/README.md:%d: bash ended while running\n%s\nits stderr:\n%s", c.line, indent(c.text), sh.stderr)
		}
		var code int
		if _, err := fmt.Sscanf(l, readmeDone+" %d", &code); err != nil {
			t.Fatalf("bash printed %q, not the end marker", l)
		}
		b, err := os.ReadFile(out)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		// bash's own messages (a syntax error is reported before the
		// redirection applies) belong to this command's output too.
		errs := sh.stderr.String()
		b = append(b, errs[sh.seen:]...)
		sh.seen = len(errs)
		return string(b), code
	case <-time.After(90 * time.Second):
		b, _ := os.ReadFile(out)
		t.Fatalf("examples/northbank/README.md:%d: no end within 90s of\n%s\nso far:\n%s", c.line, indent(c.text), b)
	}
	return "", 0
}
