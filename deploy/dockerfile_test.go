package deploy

import (
	"bufio"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/mod/modfile"
)

// repoRoot is the repository root, seen from this package's folder.
const repoRoot = ".."

// instruction is one Dockerfile instruction: its keyword (upper case) and
// the rest of its line, continuation lines joined.
type instruction struct {
	line int
	cmd  string
	args string
}

// stage is one FROM … and the instructions under it.
type stage struct {
	image, name string
	ins         []instruction
}

// parseDockerfile splits a Dockerfile into its global ARGs and its stages.
// It understands what deploy/Dockerfile uses: comments, parser directives,
// backslash continuations and "FROM image AS name".
func parseDockerfile(text string) (args map[string]string, stages []stage, err error) {
	args = map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(text))
	var cur strings.Builder
	start := 0
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if cur.Len() == 0 {
			start = n
		}
		if strings.HasPrefix(line, "#") { // a comment inside a continued instruction
			continue
		}
		if s, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(line)
		cmd, rest, _ := strings.Cut(cur.String(), " ")
		cur.Reset()
		in := instruction{line: start, cmd: strings.ToUpper(cmd), args: strings.TrimSpace(rest)}
		switch {
		case in.cmd == "FROM":
			f := strings.Fields(in.args)
			if len(f) == 0 {
				return nil, nil, fmt.Errorf("line %d: FROM without an image", in.line)
			}
			st := stage{image: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.name = f[2]
			} else if len(f) != 1 {
				return nil, nil, fmt.Errorf("line %d: FROM %s: want FROM image [AS name]", in.line, in.args)
			}
			stages = append(stages, st)
		case len(stages) == 0 && in.cmd == "ARG":
			k, v, _ := strings.Cut(in.args, "=")
			args[k] = v
		case len(stages) == 0:
			return nil, nil, fmt.Errorf("line %d: %s before the first FROM", in.line, in.cmd)
		default:
			stages[len(stages)-1].ins = append(stages[len(stages)-1].ins, in)
		}
	}
	if cur.Len() > 0 {
		return nil, nil, fmt.Errorf("line %d: the file ends in a continuation", start)
	}
	return args, stages, sc.Err()
}

// jsonForm parses the exec form of ENTRYPOINT, CMD and VOLUME: ["a", "b"].
func jsonForm(s string) ([]string, bool) {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "[") || !strings.HasSuffix(s, "]") {
		return nil, false
	}
	var out []string
	for f := range strings.SplitSeq(strings.Trim(s, "[]"), ",") {
		f = strings.TrimSpace(f)
		u, err := strconv.Unquote(f)
		if err != nil {
			return nil, false
		}
		out = append(out, u)
	}
	return out, true
}

// copyFrom is one COPY instruction: --from and --chown, sources, destination.
type copyFrom struct {
	from, chown string
	src         []string
	dst         string
}

func parseCopy(args string) copyFrom {
	var c copyFrom
	f := strings.Fields(args)
	for len(f) > 0 && strings.HasPrefix(f[0], "--") {
		k, v, _ := strings.Cut(strings.TrimPrefix(f[0], "--"), "=")
		switch k {
		case "from":
			c.from = v
		case "chown":
			c.chown = v
		}
		f = f[1:]
	}
	if len(f) >= 2 {
		c.src, c.dst = f[:len(f)-1], f[len(f)-1]
	}
	return c
}

var (
	numericUser = regexp.MustCompile(`^([0-9]+)(:([0-9]+))?$`)
	goBuildLine = regexp.MustCompile(`go build .*-o (\S+) (\./cmd/pdp)$`)
)

// dockerfile reads and parses deploy/Dockerfile.
func dockerfile(t *testing.T) []stage {
	t.Helper()
	data, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	_, stages, err := parseDockerfile(string(data))
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	return stages
}

// TestDockerfile checks what deploy/Dockerfile promises (there is no
// container engine here to build it): a Go builder stage that builds
// ./cmd/pdp static with CGO off, a distroless or scratch final stage with
// only the binary and the bundle, a numeric non-root user, writable paths
// only under declared volumes, nothing fetched from URLs, and the Go
// version of go.mod.
func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range dockerfileProblems(string(data), goVersion(t)) {
		t.Error(p)
	}
}

// goVersion is the go line of go.mod.
func goVersion(t *testing.T) string {
	t.Helper()
	modData, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	mod, err := modfile.ParseLax("go.mod", modData, nil)
	if err != nil {
		t.Fatal(err)
	}
	return mod.Go.Version
}

// dockerfileProblems lists what a Dockerfile breaks of TestDockerfile's
// rules; goVersion is go.mod's.
func dockerfileProblems(text, goVersion string) []string {
	var problems []string
	errorf := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
	args, stages, err := parseDockerfile(text)
	if err != nil {
		return []string{err.Error()}
	}
	if len(stages) < 2 {
		return []string{fmt.Sprintf("%d stages, want a builder and a final stage", len(stages))}
	}
	build, final := stages[0], stages[len(stages)-1]

	// The builder: the golang image at go.mod's Go version.
	image := strings.ReplaceAll(build.image, "${GO_VERSION}", args["GO_VERSION"])
	if want := "golang:" + goVersion; !strings.HasPrefix(image, want) {
		errorf("builder FROM %s (GO_VERSION=%q): want %s… (go.mod's go line)", build.image, args["GO_VERSION"], want)
	}
	if build.name == "" {
		errorf("builder stage has no name (FROM … AS build)")
	}

	// The build: CGO off, -trimpath, ./cmd/pdp, the output copied into
	// the final stage and run as its entrypoint.
	var out string
	for _, in := range build.ins {
		if in.cmd != "RUN" || !strings.Contains(in.args, "go build") {
			continue
		}
		if !strings.Contains(in.args, "CGO_ENABLED=0") || !strings.Contains(in.args, "-trimpath") {
			errorf("line %d: RUN %s: want CGO_ENABLED=0 and -trimpath", in.line, in.args)
		}
		m := goBuildLine.FindStringSubmatch(in.args)
		if m == nil {
			errorf("line %d: RUN %s: want go build … -o FILE ./cmd/pdp", in.line, in.args)
			continue
		}
		out = m[1]
	}
	if out == "" {
		return append(problems, "no RUN … go build … ./cmd/pdp in the builder stage")
	}

	// The final stage: distroless/static or scratch, nothing from a URL.
	if !strings.HasPrefix(final.image, "gcr.io/distroless/static") && final.image != "scratch" {
		errorf("final FROM %s: want gcr.io/distroless/static… or scratch (a static binary needs no more)", final.image)
	}
	var binary, user, workdir string
	var volumes, entrypoint []string
	for _, st := range stages {
		for _, in := range st.ins {
			if in.cmd == "ADD" {
				errorf("line %d: ADD %s: use COPY (ADD fetches URLs and unpacks archives)", in.line, in.args)
			}
		}
	}
	for _, in := range final.ins {
		switch in.cmd {
		case "RUN":
			errorf("line %d: RUN in the final stage: it has no shell", in.line)
		case "COPY":
			c := parseCopy(in.args)
			if c.from != build.name {
				errorf("line %d: COPY %s: the final stage copies from the builder only", in.line, in.args)
			}
			for _, src := range c.src {
				if src == out {
					binary = c.dst
				}
				// What the builder copied from the context (COPY . .
				// into its WORKDIR /src) must exist in the repository.
				if rel, ok := strings.CutPrefix(src, "/src/"); ok {
					if _, err := os.Stat(filepath.Join(repoRoot, rel)); err != nil {
						errorf("line %d: COPY %s: %v", in.line, src, err)
					}
				}
			}
		case "USER":
			user = in.args
		case "WORKDIR":
			workdir = in.args
		case "VOLUME":
			v, ok := jsonForm(in.args)
			if !ok {
				errorf("line %d: VOLUME %s: want the JSON form", in.line, in.args)
			}
			volumes = append(volumes, v...)
		case "ENTRYPOINT":
			e, ok := jsonForm(in.args)
			if !ok {
				errorf("line %d: ENTRYPOINT %s: want the exec (JSON) form", in.line, in.args)
			}
			entrypoint = e
		}
	}
	if binary == "" {
		errorf("the final stage does not copy the builder's %s", out)
	}
	if len(entrypoint) == 0 || entrypoint[0] != binary {
		errorf("ENTRYPOINT %q: want the binary %s", entrypoint, binary)
	}
	m := numericUser.FindStringSubmatch(user)
	switch {
	case m == nil:
		errorf("USER %q: want a numeric uid[:gid] (runAsNonRoot can only verify a number)", user)
	case m[1] == "0" || m[3] == "0":
		errorf("USER %q: not root", user)
	}
	// With a read-only root filesystem the PDP writes only under volumes:
	// its working directory (relative default paths: pdp-data/, .data/)
	// and /tmp.
	for _, p := range []string{workdir, "/tmp"} {
		if !slices.ContainsFunc(volumes, func(v string) bool { return p == v || strings.HasPrefix(p, v+"/") }) {
			errorf("%s is not under a VOLUME %q: it would be written on the read-only root filesystem", p, volumes)
		}
	}
	if !path.IsAbs(workdir) {
		errorf("WORKDIR %q: want an absolute path", workdir)
	}
	return problems
}

// TestDockerignoreKeepsTheSources: Dockerfile.dockerignore leaves in the
// build context what the build needs (a pattern such as /pdp would drop
// the pdp/ packages).
func TestDockerignoreKeepsTheSources(t *testing.T) {
	data, err := os.ReadFile("Dockerfile.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	needed := []string{"go.mod", "go.sum", "cmd/pdp/main.go", "pdp/server/config.go", "sidecar/sidecar.go", "examples/northbank/policies", "examples/northbank/schema/northbank.zed"}
	for _, n := range needed {
		if _, err := os.Stat(filepath.Join(repoRoot, n)); err != nil {
			t.Fatalf("%s: %v (update this list)", n, err)
		}
	}
	for line := range strings.Lines(string(data)) {
		p := strings.TrimSpace(line)
		if p == "" || strings.HasPrefix(p, "#") || strings.HasPrefix(p, "!") {
			continue
		}
		p = strings.TrimPrefix(p, "/")
		for _, n := range needed {
			for prefix := n; prefix != "." && prefix != ""; prefix = path.Dir(prefix) {
				m, err := path.Match(p, prefix)
				if rest, ok := strings.CutPrefix(p, "**/"); ok && !m {
					m, err = path.Match(rest, path.Base(prefix))
				}
				if err != nil {
					t.Errorf("pattern %q: %v", p, err)
				}
				if m {
					t.Errorf("pattern %q leaves %s out of the build context", p, prefix)
				}
			}
		}
	}
}

// TestDockerfileBuildsStaticBinary runs the Dockerfile's go build command
// here (into a temporary file) and checks that the binary is static — no
// ELF interpreter, no shared libraries — so that it runs on
// distroless/static or scratch, and that it starts.
func TestDockerfileBuildsStaticBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIPPED in -short: builds ./cmd/pdp with CGO_ENABLED=0 (a full build, SpiceDB included)")
	}
	stages := dockerfile(t)
	var run string
	for _, in := range stages[0].ins {
		if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
			run = in.args
		}
	}
	// The command as the Dockerfile writes it: VAR=value… go build flags… -o OUT ./cmd/pdp.
	fields, err := splitShell(run)
	if err != nil {
		t.Fatalf("RUN %s: %v", run, err)
	}
	bin := filepath.Join(t.TempDir(), "pdp")
	env := os.Environ()
	for len(fields) > 0 && strings.Contains(fields[0], "=") {
		env = append(env, fields[0])
		fields = fields[1:]
	}
	if len(fields) < 2 || fields[0] != "go" || fields[1] != "build" {
		t.Fatalf("RUN %s: want VAR=value… go build …", run)
	}
	for i, f := range fields {
		if f == "-o" && i+1 < len(fields) {
			fields[i+1] = bin
		}
	}
	cmd := exec.Command(fields[0], fields[1:]...)
	cmd.Dir = repoRoot
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(fields, " "), err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("the binary has an ELF interpreter: it is dynamically linked")
		}
	}
	if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
		t.Errorf("the binary needs shared libraries %q (%v)", libs, err)
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("pdp version: %v\n%s", err, out)
	}
	t.Logf("built: %s", strings.TrimSpace(string(out)))
}

// splitShell splits a RUN line into words: whitespace-separated, with
// "double" and 'single' quotes (all that the build line uses). Anything
// else a shell would interpret is refused, so that what the test runs is
// what the Dockerfile runs.
func splitShell(s string) ([]string, error) {
	var out []string
	var cur strings.Builder
	inWord := false
	var quote rune
	for _, r := range s {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '"' || r == '\'':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		case strings.ContainsRune("$`;&|<>(){}\\*?", r):
			return nil, fmt.Errorf("shell syntax %q: keep the build line a plain command", r)
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated quote")
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out, nil
}

// TestDockerfileProblems shows that each rule of TestDockerfile catches
// the Dockerfile that breaks it (the real file, changed in one place).
func TestDockerfileProblems(t *testing.T) {
	data, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	real := string(data)
	const final = "FROM gcr.io/distroless/static-debian12:nonroot AS runtime"
	tests := []struct {
		name, old, new, want string
	}{
		{"as is", "", "", ""},
		{"user by name", "USER 65532:65532", "USER nonroot", "numeric"},
		{"root", "USER 65532:65532", "USER 0:0", "not root"},
		{"cgo on", "CGO_ENABLED=0 ", "", "CGO_ENABLED=0"},
		{"no trimpath", "go build -trimpath", "go build", "-trimpath"},
		{"other package", "-o /out/pdp ./cmd/pdp", "-o /out/pdp ./cmd/other", "./cmd/pdp"},
		{"add from a URL", final, final + "\nADD https://example.com/pdp.tgz /opt/", "ADD"},
		{"a shell in the final stage", final, "FROM debian:12-slim AS runtime", "distroless"},
		{"run in the final stage", final, final + "\nRUN mkdir /x", "RUN in the final stage"},
		{"workdir not a volume", `VOLUME ["/var/lib/pdp", "/tmp"]`, `VOLUME ["/tmp"]`, "/var/lib/pdp is not under a VOLUME"},
		{"old Go", "ARG GO_VERSION=", "ARG GO_VERSION=1.20.1\n#", "go.mod's go line"},
		{"entrypoint elsewhere", `ENTRYPOINT ["/usr/local/bin/pdp"]`, `ENTRYPOINT ["/bin/pdp"]`, "ENTRYPOINT"},
		{"a copied folder that is gone", "/src/examples/northbank/policies", "/src/examples/gone/policies", "gone"},
		{"single stage", "FROM golang", "# FROM golang", "before the first FROM"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := real
			if tt.old != "" {
				if strings.Count(real, tt.old) != 1 {
					t.Fatalf("the Dockerfile holds %q %d times, want once", tt.old, strings.Count(real, tt.old))
				}
				text = strings.Replace(real, tt.old, tt.new, 1)
			}
			problems := dockerfileProblems(text, goVersion(t))
			if tt.want == "" {
				if len(problems) > 0 {
					t.Errorf("problems: %q", problems)
				}
				return
			}
			if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, tt.want) }) {
				t.Errorf("problems %q: want one mentioning %q", problems, tt.want)
			}
		})
	}
}

// FuzzParseDockerfile: the parser returns an error or stages, never panics.
func FuzzParseDockerfile(f *testing.F) {
	if data, err := os.ReadFile("Dockerfile"); err == nil {
		f.Add(string(data))
	}
	f.Add("FROM\n")
	f.Add("ARG A=1\nFROM a AS b \\\n")
	f.Fuzz(func(t *testing.T, text string) {
		_ = dockerfileProblems(text, "1.26.8")
		_, _ = splitShell(text)
		_, _ = jsonForm(text)
	})
}
