package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// deployDir is the repository's deploy/ folder, seen from cmd/pdp.
const deployDir = "../../deploy"

// nbPayment: bob pays 250 EUR from alice's account on her power of
// attorney (allowed with the Northbank example's seed data).
const nbPayment = `{"subject":{"type":"user","id":"bob"},"action":{"name":"make_payment"},"resource":{"type":"account","id":"acc-alice"},
 "context":{"purpose":"account_servicing","on_behalf_of":{"type":"user","id":"alice"},"amount":250,"currency":"EUR"}}`

// deployEnv is the environment a configuration file under deploy/ runs
// with: for the Kubernetes ones, the Secret's variables (the base's
// demo-keys/pdp.env, then an overlay's pdp.env, as kustomize merges them;
// deploy's TestManifests checks that the rendered Secret is exactly
// that); for the sidecars, the application key their Secret or script
// gives. deploy/local/pdp.yaml runs as it is.
func deployEnv(t *testing.T, file string) map[string]string {
	t.Helper()
	env := map[string]string{}
	rel, err := filepath.Rel(deployDir, file)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case filepath.Base(file) == "sidecar.yaml":
		env["PDP_SIDECAR_API_KEY"] = "demo-key-mobile-banking"
	case strings.HasPrefix(filepath.ToSlash(rel), "k8s/"):
		for _, f := range []string{filepath.Join(deployDir, "k8s/base/demo-keys/pdp.env"), filepath.Join(filepath.Dir(file), "pdp.env")} {
			data, err := os.ReadFile(f)
			if os.IsNotExist(err) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(bytes.NewReader(data))
			for sc.Scan() {
				line := strings.TrimSpace(sc.Text())
				if line == "" || strings.HasPrefix(line, "#") {
					continue
				}
				k, v, ok := strings.Cut(line, "=")
				if !ok {
					t.Fatalf("%s: %q is not KEY=value", f, line)
				}
				env[k] = v
			}
		}
	}
	return env
}

// deployConfigFiles lists the configuration files under deploy/: every
// pdp.yaml (for pdp serve) and sidecar.yaml (for pdp sidecar).
func deployConfigFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(deployDir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && (d.Name() == "pdp.yaml" || d.Name() == "sidecar.yaml") {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 5 {
		t.Fatalf("found %q under deploy/: want the base's, the remote-spicedb overlay's, the sidecar example's and the local topology's", files)
	}
	return files
}

// loadDeployConfig loads file with the configuration loader of its
// command (unknown keys refused) and validates it, as the command would.
func loadDeployConfig(file string) error {
	fs := pflag.NewFlagSet("deploy", pflag.ContinueOnError)
	if filepath.Base(file) == "sidecar.yaml" {
		sidecarCommand().flags(fs)
		if err := fs.Set("config", file); err != nil {
			return err
		}
		_, err := loadSidecarConfig(fs)
		return err
	}
	addConfigFlags(fs)
	if err := fs.Set("config", file); err != nil {
		return err
	}
	cfg, _, err := loadConfig(fs)
	if err != nil {
		return err
	}
	return cfg.Validate()
}

// TestDeployConfigFiles loads every configuration file of deploy/ (the
// Kubernetes ConfigMaps' pdp.yaml and sidecar.yaml, the local topology's)
// with the real loaders, with the environment their Secrets give: an
// unknown or misspelt key, a bad value or a missing secret fails here.
func TestDeployConfigFiles(t *testing.T) {
	for _, file := range deployConfigFiles(t) {
		t.Run(strings.TrimPrefix(filepath.ToSlash(file), deployDir+"/"), func(t *testing.T) {
			for k, v := range deployEnv(t, file) {
				t.Setenv(k, v)
			}
			if err := loadDeployConfig(file); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestDeployConfigFilesRefuseUnknownKeys: the check above would catch a
// misspelt key (a copy of each file with one added).
func TestDeployConfigFilesRefuseUnknownKeys(t *testing.T) {
	for _, file := range deployConfigFiles(t) {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		bad := filepath.Join(t.TempDir(), filepath.Base(file))
		writeFile(t, bad, string(data)+"\nspool_dri: /tmp/x\n")
		for k, v := range deployEnv(t, file) {
			t.Setenv(k, v)
		}
		if err := loadDeployConfig(bad); err == nil || !strings.Contains(err.Error(), "spool_dri") {
			t.Errorf("%s with an unknown key: %v, want an error naming it", file, err)
		}
	}
}

// freePorts returns n ports that were free a moment ago on 127.0.0.1.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		_ = ln.Close()
	}
	return ports
}

// TestDeployRuns runs what deploy/ describes with the real binary on
// PostgreSQL: the Kubernetes base's configuration and keys (its
// container paths mapped to this checkout), and deploy/local-topology.sh
// (three replicas and a sidecar), asking each over HTTP.
func TestDeployRuns(t *testing.T) {
	if os.Getenv(pgEnv) == "" {
		t.Skipf("SKIPPED: %s is not set (export %s=$(scripts/postgres.sh start)): these tests run the deployment on PostgreSQL", pgEnv, pgEnv)
	}
	bin := buildPDP(t)
	t.Run("k8s base configuration", func(t *testing.T) { testK8sConfigServes(t, bin) })
	t.Run("local topology script", func(t *testing.T) { testLocalTopology(t, bin) })
}

// testK8sConfigServes starts pdp serve with the base's ConfigMap file and
// Secret environment, the paths of the pod mapped to this checkout (the
// image's bundle is the Northbank example; the Secret's files are
// demo-keys/), the PostgreSQL URLs to a fresh database: it must become
// ready and decide with the Secret's API keys.
func testK8sConfigServes(t *testing.T, bin string) {
	url := testDatabase(t)
	base := filepath.Join(deployDir, "k8s/base")
	data, err := os.ReadFile(filepath.Join(base, "pdp.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	abs := func(p string) string {
		a, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	cfg := string(data)
	cfg = replaceOnce(t, cfg, "addr: 0.0.0.0:8080", "addr: 127.0.0.1:0")
	cfg = replaceOnce(t, cfg, "dir: /opt/pdp/bundle", "dir: "+abs(filepath.Join(nbSidecarDir, "..")))
	cfg = replaceOnce(t, cfg, "/etc/pdp/keys/trail-signing.key", abs(filepath.Join(base, "demo-keys/trail-signing.key")))
	cfg = replaceOnce(t, cfg, "/etc/pdp/keys/consent-signing.pem", abs(filepath.Join(base, "demo-keys/consent-signing.pem")))
	cfg = replaceOnce(t, cfg, "dir: /var/lib/pdp/trail", "dir: "+filepath.Join(t.TempDir(), "trail"))
	file := filepath.Join(t.TempDir(), "pdp.yaml")
	writeFile(t, file, cfg)

	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range deployEnv(t, filepath.Join(base, "pdp.yaml")) {
		if strings.HasSuffix(k, "_POSTGRES_URL") {
			v = url
		}
		env = append(env, k+"="+v)
	}
	cmd, base0 := startBinary(t, bin, env, "serve", "--config", file)
	srv := &server{URL: base0}
	eventually(t, "/readyz answers 200", func() bool {
		code, _ := srv.do(t, http.MethodGet, "/readyz", "")
		return code == http.StatusOK
	})
	if code, body := srv.do(t, http.MethodGet, "/healthz", ""); code != http.StatusOK {
		t.Errorf("/healthz: %d %s", code, body)
	}
	if code, body := srv.do(t, http.MethodGet, "/metrics", ""); code != http.StatusOK || !strings.Contains(string(body), "pdp_") {
		t.Errorf("/metrics (the Prometheus annotations' path): %d", code)
	}
	if code, _ := srv.do(t, http.MethodPost, "/access/v1/evaluation", nbPayment); code != http.StatusUnauthorized {
		t.Errorf("an evaluation without a key: %d, want 401 (the Secret's API keys)", code)
	}
	// No seed data in the base: the decision need not be an allow, but it
	// is made with every store reachable and recorded in the trail.
	d := srv.evaluate(t, nbPayment, "Authorization", "Bearer k8s-demo-key-mobile-banking")
	for _, r := range d.Context.Reasons {
		if strings.HasSuffix(r, "_unavailable") {
			t.Errorf("a decision through the base's configuration: reason %s: %+v", r, d)
		}
	}
	// SIGTERM, as the kubelet sends it: the PDP drains and exits 0.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := waitExit(cmd, 30*time.Second); err != nil {
		t.Errorf("after SIGTERM: %v", err)
	}
}

// waitExit waits for cmd to exit with status 0 within d.
func waitExit(cmd *exec.Cmd, d time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		return context.DeadlineExceeded
	}
}

// testLocalTopology runs deploy/local-topology.sh on a fresh database and
// free ports: every replica and the sidecar answer /readyz, each replica
// and the sidecar decide, and SIGTERM stops them all.
func testLocalTopology(t *testing.T, bin string) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("SKIPPED: the script waits for /readyz with curl, which is not installed (.ci/run installs it)")
	}
	url := testDatabase(t)
	ports := freePorts(t, 4)
	data := t.TempDir()
	script, err := filepath.Abs(filepath.Join(deployDir, "local-topology.sh"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", script)
	cmd.Env = append(os.Environ(),
		"PDP_LOCAL_POSTGRES_URL="+url,
		"PDP_LOCAL_PORTS="+strconv.Itoa(ports[0])+" "+strconv.Itoa(ports[1])+" "+strconv.Itoa(ports[2]),
		"PDP_LOCAL_SIDECAR_PORT="+strconv.Itoa(ports[3]),
		"PDP_LOCAL_DATA="+data,
		"PDP_BIN="+bin,
	)
	logs := newLogWatcher()
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
		}
	})
	deadline := time.After(3 * time.Minute)
	for !strings.Contains(logs.String(), "local-topology: ready") {
		select {
		case err := <-exited:
			t.Fatalf("the script exited before ready (%v):\n%s", err, logs)
		case <-deadline:
			t.Fatalf("the script was not ready within 3 minutes:\n%s", logs)
		case <-time.After(200 * time.Millisecond):
		}
	}
	// bob pays from alice's account on her power of attorney: relationship
	// facts, the delegation record and consent, all in the shared database,
	// through every replica and through the sidecar.
	var ids []string
	for i, p := range ports {
		srv := &server{URL: "http://127.0.0.1:" + strconv.Itoa(p)}
		if code, body := srv.do(t, http.MethodGet, "/readyz", ""); code != http.StatusOK {
			t.Errorf("process %d (port %d): /readyz %d %s", i, p, code, body)
		}
		code, body := srv.do(t, http.MethodPost, "/access/v1/evaluation", nbPayment, "Authorization", "Bearer demo-key-mobile-banking")
		var d struct {
			Decision bool `json:"decision"`
			Context  struct {
				DecisionID string   `json:"decision_id"`
				Reasons    []string `json:"reasons"`
			} `json:"context"`
		}
		if err := json.Unmarshal(body, &d); code != http.StatusOK || err != nil || !d.Decision {
			t.Errorf("process %d (port %d): bob pays for alice: %d %s", i, p, code, body)
			continue
		}
		ids = append(ids, d.Context.DecisionID)
	}
	// One trail: replica c's auditor API explains the decisions of a and b.
	c := &server{URL: "http://127.0.0.1:" + strconv.Itoa(ports[2])}
	for _, id := range ids {
		eventually(t, "decision "+id+" in the shared trail, read through replica c", func() bool {
			code, _ := c.do(t, http.MethodGet, "/v1/audit/decisions/"+id, "", "Authorization", "Bearer demo-key-auditor")
			return code == http.StatusOK
		})
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("the script after SIGTERM: %v\n%s", err, logs)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("the script did not stop within 60s of SIGTERM:\n%s", logs)
	}
	if !strings.Contains(logs.String(), "local-topology: stopped") {
		t.Errorf("no \"stopped\" line:\n%s", logs)
	}
	for _, p := range ports {
		if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(p), time.Second); err == nil {
			_ = c.Close()
			t.Errorf("port %d still answers after the script stopped", p)
		}
	}
}
