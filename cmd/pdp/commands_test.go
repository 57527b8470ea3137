package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// result is what one run of the program gave.
type result struct {
	code           int
	stdout, stderr string
}

func runCLI(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(t.Context(), args, strings.NewReader(stdin), &out, &errOut)
	return result{code: code, stdout: out.String(), stderr: errOut.String()}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

func TestUsage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		args       []string
		code       int
		stdout     string // substring, when set
		stderr     string // substring, when set
		emptyOther bool   // nothing on the other stream
	}{
		{name: "no command", args: nil, code: exitUsage, stderr: "Commands:"},
		{name: "help flag", args: []string{"--help"}, code: exitOK, stdout: "Commands:"},
		{name: "short help flag", args: []string{"-h"}, code: exitOK, stdout: "serve"},
		{name: "help command", args: []string{"help"}, code: exitOK, stdout: "hash-key"},
		{name: "help for a command", args: []string{"help", "serve"}, code: exitOK, stdout: "--addr"},
		{name: "unknown command", args: []string{"deploy"}, code: exitUsage, stderr: `unknown command "deploy"`},
		{name: "command help", args: []string{"serve", "-h"}, code: exitOK, stdout: "--log-level"},
		{name: "command help long", args: []string{"test", "--help"}, code: exitOK, stdout: "--verbose"},
		{name: "unknown flag", args: []string{"serve", "--port", "1"}, code: exitUsage, stderr: "unknown flag: --port"},
		{name: "bad flag value", args: []string{"serve", "--reload-interval", "soon"}, code: exitUsage, stderr: "invalid argument"},
		{name: "serve takes no argument", args: []string{"serve", "policies"}, code: exitUsage, stderr: "--dir"},
		{name: "validate takes one folder", args: []string{"validate", "a", "b"}, code: exitUsage, stderr: "at most one folder"},
		{name: "validate needs a folder", args: []string{"validate", "no/such/dir"}, code: exitUsage, stderr: "not a folder"},
		{name: "version takes no argument", args: []string{"version", "x"}, code: exitUsage, stderr: "no arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, "", tt.args...)
			if r.code != tt.code {
				t.Errorf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, tt.code, r.stdout, r.stderr)
			}
			if tt.stdout != "" && !strings.Contains(r.stdout, tt.stdout) {
				t.Errorf("stdout lacks %q:\n%s", tt.stdout, r.stdout)
			}
			if tt.stderr != "" && !strings.Contains(r.stderr, tt.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tt.stderr, r.stderr)
			}
			if tt.code == exitOK && r.stderr != "" {
				t.Errorf("help wrote to stderr:\n%s", r.stderr)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	t.Run("examples", func(t *testing.T) {
		for _, dir := range []string{todoDir, certificationDir} {
			r := runCLI(t, "", "validate", dir)
			if r.code != exitOK {
				t.Fatalf("validate %s: exit %d\n%s%s", dir, r.code, r.stdout, r.stderr)
			}
			for _, want := range []string{"valid: ", "version:  sha256:", "commit:", "policies: ", "entities: "} {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("validate %s: output lacks %q:\n%s", dir, want, r.stdout)
				}
			}
		}
	})

	tests := []struct {
		name    string
		file    string // relative to the bundle root
		content string
		want    []string // regular expressions, each matching a line of stdout
	}{
		{
			name: "policy for an undeclared action", file: "policies/broken.cedar", content: brokenPolicy,
			want: []string{`^POLICIES/broken\.cedar:\d+: policy "todo-broken": .+`, `^invalid: .* 1 problem$`},
		},
		{
			name: "syntax error", file: "policies/syntax.cedar", content: "@id(\"half\")\npermit (principal, action,\n",
			want: []string{`^POLICIES/syntax\.cedar:\d+: .+`},
		},
		{
			name: "two bad policies", file: "policies/two.cedar",
			content: "@id(\"a\")\npermit (principal, action == Action::\"nope\", resource);\n\n@id(\"b\")\npermit (principal, action, resource) when { resource.colour == \"red\" };\n",
			want:    []string{`^POLICIES/two\.cedar:1: policy "a": `, `^POLICIES/two\.cedar:4: policy "b": `, `^invalid: .* 2 problems$`},
		},
		{
			name: "entities that do not fit the schema", file: "policies/more.entities.json",
			content: `[{"uid": {"type": "Todo", "id": "x"}, "attrs": {"ownerID": 42}, "parents": []}]`,
			want:    []string{`^POLICIES/more\.entities\.json: entities do not match the schema`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := copyBundle(t, todoDir)
			writeFile(t, filepath.Join(dir, filepath.FromSlash(tt.file)), tt.content)
			r := runCLI(t, "", "validate", dir)
			if r.code != exitFailure {
				t.Fatalf("exit %d, want %d\n%s%s", r.code, exitFailure, r.stdout, r.stderr)
			}
			for _, w := range tt.want {
				w = strings.ReplaceAll(w, "POLICIES", regexp.QuoteMeta(filepath.Join(dir, "policies")))
				if !regexp.MustCompile(`(?m)` + w).MatchString(r.stdout) {
					t.Errorf("no line matches %s:\n%s", w, r.stdout)
				}
			}
		})
	}

	t.Run("no schema", func(t *testing.T) {
		t.Parallel()
		dir := copyBundle(t, todoDir)
		if err := os.RemoveAll(filepath.Join(dir, "schema")); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(filepath.Join(dir, "policies", "entities.json")); err != nil {
			t.Fatal(err)
		}
		r := runCLI(t, "", "validate", dir)
		if r.code != exitFailure || !strings.Contains(r.stderr, "no Cedar schema") {
			t.Errorf("exit %d, stderr:\n%s", r.code, r.stderr)
		}
	})
}

var summaryLine = regexp.MustCompile(`^(\d+) passed, (\d+) failed$`)

func TestTest(t *testing.T) {
	t.Parallel()
	// failing expects an allow the todo policies do not give.
	const failing = `name: wrong
cases:
  - name: a viewer creates a todo
    request:
      subject: {type: user, id: ` + beth + `}
      action: {name: can_create_todo}
      resource: {type: todo, id: t1}
    expect: {decision: true}
`
	// nested puts a copy of the bundle, with a failing suite, inside the
	// bundle: its suites belong to it, not to the outer bundle.
	nested := func(t *testing.T, dir string) {
		inner := filepath.Join(dir, "examples", "inner")
		if err := os.CopyFS(inner, os.DirFS(todoDir)); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(inner, "tests", "failing_test.yaml"), failing)
	}
	tests := []struct {
		name    string
		src     string
		setup   func(t *testing.T, dir string)
		args    []string
		code    int
		failed  string // the "N failed" count the last line must show
		stdout  string
		stderr  string
		minPass int
	}{
		{name: "todo example", src: todoDir, code: exitOK, failed: "0", minPass: 40},
		{name: "certification example", src: certificationDir, code: exitOK, failed: "0", minPass: 8},
		{name: "verbose", src: todoDir, args: []string{"-v"}, code: exitOK, failed: "0", stdout: "--- PASS: "},
		{name: "a failing case", src: todoDir, code: exitFailure, failed: "1", minPass: 40,
			setup: func(t *testing.T, dir string) {
				writeFile(t, filepath.Join(dir, "tests", "failing_test.yaml"), failing)
			},
			stdout: "--- FAIL: wrong / a viewer creates a todo"},
		{name: "nested bundles are skipped", src: todoDir, setup: nested, code: exitOK, failed: "0", minPass: 40},
		{name: "no test files", src: todoDir, code: exitFailure, stderr: "no test files",
			setup: func(t *testing.T, dir string) { _ = os.RemoveAll(filepath.Join(dir, "tests")) }},
		{name: "an invalid test file", src: todoDir, code: exitFailure, stdout: "bad_test.yaml:",
			setup: func(t *testing.T, dir string) {
				writeFile(t, filepath.Join(dir, "tests", "bad_test.yaml"), "cases: 3\n")
			}},
		{name: "a broken bundle", src: todoDir, code: exitFailure, stdout: `policy "todo-broken"`,
			setup: func(t *testing.T, dir string) { writeFile(t, filepath.Join(dir, "policies", "b.cedar"), brokenPolicy) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := tt.src
			if tt.setup != nil {
				dir = copyBundle(t, tt.src)
				tt.setup(t, dir)
			}
			r := runCLI(t, "", append(append([]string{"test"}, tt.args...), dir)...)
			if r.code != tt.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, tt.code, r.stdout, r.stderr)
			}
			if tt.failed != "" {
				m := summaryLine.FindStringSubmatch(lastLine(r.stdout))
				if m == nil {
					t.Fatalf("last line is not 'N passed, N failed':\n%s", r.stdout)
				}
				if m[2] != tt.failed {
					t.Errorf("%s failed, want %s", m[2], tt.failed)
				}
				if n, _ := strconv.Atoi(m[1]); n < tt.minPass {
					t.Errorf("%s passed, want at least %d", m[1], tt.minPass)
				}
			}
			if tt.stdout != "" && !strings.Contains(r.stdout, tt.stdout) {
				t.Errorf("stdout lacks %q:\n%s", tt.stdout, r.stdout)
			}
			if tt.stderr != "" && !strings.Contains(r.stderr, tt.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tt.stderr, r.stderr)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	r := runCLI(t, "", "version")
	if r.code != exitOK || !strings.HasPrefix(r.stdout, "pdp ") || !strings.Contains(r.stdout, "go: go1.") {
		t.Errorf("exit %d, output:\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func TestHashKey(t *testing.T) {
	t.Parallel()
	const key = "k3y-0123456789abcdef0123456789abcdef"
	sum := sha256.Sum256([]byte(key))
	digest := hex.EncodeToString(sum[:])
	tests := []struct {
		name, stdin string
		args        []string
		code        int
		stdout      string
		stderr      string
	}{
		{name: "key", stdin: key, code: exitOK, stdout: digest + "\n"},
		{name: "key with newline", stdin: key + "\n", code: exitOK, stdout: digest + "\n"},
		{name: "key with CRLF and blanks", stdin: "  " + key + " \r\n", code: exitOK, stdout: digest + "\n"},
		{name: "config entry", stdin: key, args: []string{"--application", "mobile-banking"}, code: exitOK,
			stdout: `- {application: "mobile-banking", sha256: ` + digest + "}\n"},
		{name: "short key warns", stdin: "abc", code: exitOK, stdout: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n", stderr: "warning"},
		{name: "empty", stdin: "\n", code: exitFailure, stderr: "no key on stdin"},
		{name: "two keys", stdin: key + "\n" + key + "\n", code: exitFailure, stderr: "white space"},
		{name: "key as argument", stdin: "", args: []string{key}, code: exitUsage, stderr: "stdin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, tt.stdin, append([]string{"hash-key"}, tt.args...)...)
			if r.code != tt.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", r.code, tt.code, r.stderr)
			}
			if tt.code == exitOK && r.stdout != tt.stdout {
				t.Errorf("stdout = %q, want %q", r.stdout, tt.stdout)
			}
			if tt.stderr != "" && !strings.Contains(r.stderr, tt.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tt.stderr, r.stderr)
			}
			if tt.stderr == "" && r.stderr != "" {
				t.Errorf("unexpected stderr:\n%s", r.stderr)
			}
		})
	}
}
