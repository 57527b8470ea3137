package deploy

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// recorder is a tb that records what the checks report; Fatal ends the
// check with a panic that run recovers.
type recorder struct{ msgs []string }

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.msgs = append(r.msgs, fmt.Sprintf(format, args...))
}
func (r *recorder) Fatalf(format string, args ...any) { r.Errorf(format, args...); panic(r) }
func (r *recorder) Fatal(args ...any)                 { r.msgs = append(r.msgs, fmt.Sprint(args...)); panic(r) }

// run runs check, recovering the recorder's own panic.
func (r *recorder) run(check func()) {
	defer func() {
		if p := recover(); p != nil && p != r {
			panic(p)
		}
	}()
	check()
}

// copyTree copies the folder src (k8s/) into dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestManifestRules shows that TestManifests catches each broken promise:
// the manifests, copied and changed in one place, must fail with the
// message that names it.
func TestManifestRules(t *testing.T) {
	tests := []struct {
		name, file, old, new, dir, want string
	}{
		{"as is", "", "", "", "k8s/overlays/embedded-postgres", ""},
		{"two replicas", "k8s/base/deployment.yaml", "replicas: 3", "replicas: 2", "k8s/base", "at least 3"},
		{"writable root", "k8s/base/deployment.yaml", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false", "k8s/base", "readOnlyRootFilesystem"},
		{"root user", "k8s/base/deployment.yaml", "runAsUser: 65532", "runAsUser: 0", "k8s/base", "runAsUser 0"},
		{"capabilities kept", "k8s/base/deployment.yaml", "drop: [ALL]", "drop: [NET_RAW]", "k8s/base", "drop ALL"},
		{"readiness elsewhere", "k8s/base/deployment.yaml", "path: /readyz", "path: /ready", "k8s/base", "readinessProbe"},
		{"liveness elsewhere", "k8s/base/deployment.yaml", "path: /healthz\n              port: http\n            periodSeconds: 10", "path: /livez\n              port: http\n            periodSeconds: 10", "k8s/base", "livenessProbe"},
		{"not scraped", "k8s/base/deployment.yaml", `prometheus.io/scrape: "true"`, `prometheus.io/scrape: "false"`, "k8s/base", "prometheus.io/scrape"},
		{"no resources", "k8s/base/deployment.yaml", "              cpu: 500m\n              memory: 512Mi\n", "", "k8s/base", "resources"},
		{"PDB selects other pods", "k8s/base/pdb.yaml", "app.kubernetes.io/component: decision-point", "app.kubernetes.io/component: other", "k8s/base", "PodDisruptionBudget pdp: selector"},
		{"PDB blocks drains", "k8s/base/pdb.yaml", "minAvailable: 2", "minAvailable: 3", "k8s/base", "minAvailable"},
		{"Service selects other pods", "k8s/base/service.yaml", "app.kubernetes.io/component: decision-point", "app.kubernetes.io/component: other", "k8s/base", "Service pdp: selector"},
		{"unknown field", "k8s/base/service.yaml", "type: ClusterIP", "type: ClusterIP\n  clusterIPz: [10.0.0.1]", "k8s/base", "unknown field"},
		{"misspelt probe field", "k8s/base/deployment.yaml", "failureThreshold: 60", "failureTreshold: 60", "k8s/base", "unknown field"},
		{"missing Secret", "k8s/base/deployment.yaml", "secretName: pdp-signing-keys", "secretName: pdp-signing-key", "k8s/base", "no Secret pdp-signing-key"},
		{"key not in the Secret", "k8s/base/pdp.yaml", "/etc/pdp/keys/trail-signing.key", "/etc/pdp/keys/trail.key", "k8s/base", "has no key trail.key"},
		{"trail on the root filesystem", "k8s/base/pdp.yaml", "dir: /var/lib/pdp/trail", "dir: /srv/trail", "k8s/base", "trail.dir /srv/trail: not on a volume"},
		{"URL in the ConfigMap", "k8s/base/pdp.yaml", "  engine: postgres\n  register", "  engine: postgres\n  postgres_url: postgres://x\n  register", "k8s/base", "delegations.postgres_url is in the ConfigMap"},
		{"grace shorter than the drain", "k8s/base/deployment.yaml", "terminationGracePeriodSeconds: 30", "terminationGracePeriodSeconds: 20", "k8s/base", "terminationGracePeriodSeconds"},
		{"no API keys", "k8s/base/demo-keys/pdp.env", "PDP_AUTH_API_KEYS=", "PDP_AUTH_API_KEYZ=", "k8s/base", "no API keys"},
		{"unpinned image", "k8s/overlays/embedded-postgres/kustomization.yaml", `newTag: "0.1.0"`, "newTag: latest", "k8s/overlays/embedded-postgres", "pinned tag"},
		{"demo PostgreSQL as root", "k8s/components/demo-postgres/postgres.yaml", "runAsUser: 999", "runAsUser: 0", "k8s/overlays/embedded-postgres", "runAsUser 0"},
		{"SpiceDB keys differ", "k8s/overlays/remote-spicedb/pdp.env", "PDP_RELATIONS_PRESHARED_KEY=demo-spicedb-preshared-key", "PDP_RELATIONS_PRESHARED_KEY=other", "k8s/overlays/remote-spicedb", "PRESHARED_KEY"},
		{"SpiceDB elsewhere", "k8s/overlays/remote-spicedb/pdp.yaml", "endpoint: spicedb:50051", "endpoint: spice:50051", "k8s/overlays/remote-spicedb", "no such Service"},
		{"another SpiceDB", "k8s/overlays/remote-spicedb/kustomization.yaml", "newTag: " + spiceDBVersion(t), "newTag: v1.40.0", "k8s/overlays/remote-spicedb", "the SpiceDB that go.mod embeds"},
		{"sidecar on all interfaces", "k8s/examples/app-with-sidecar/sidecar.yaml", "listen: 127.0.0.1:8181", "listen: 0.0.0.0:8181", "k8s/examples/app-with-sidecar", "loopback"},
		{"sidecar key in the ConfigMap", "k8s/examples/app-with-sidecar/sidecar.yaml", "spool_mode: sync", "spool_mode: sync\napi_key: x", "k8s/examples/app-with-sidecar", "PDP_SIDECAR_API_KEY"},
		{"sidecar blocks the app", "k8s/examples/app-with-sidecar/deployment.yaml", "          restartPolicy: Always\n", "", "k8s/examples/app-with-sidecar", "restartPolicy Always"},
		{"spool on the root filesystem", "k8s/examples/app-with-sidecar/sidecar.yaml", "spool_dir: /var/lib/pdp-sidecar/spool", "spool_dir: /spool", "k8s/examples/app-with-sidecar", "spool_dir /spool"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			copyTree(t, "k8s", filepath.Join(root, "k8s"))
			if tt.file != "" {
				p := filepath.Join(root, tt.file)
				data, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				if n := strings.Count(string(data), tt.old); n != 1 {
					t.Fatalf("%s holds %q %d times, want once", tt.file, tt.old, n)
				}
				if err := os.WriteFile(p, []byte(strings.Replace(string(data), tt.old, tt.new, 1)), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			rec := &recorder{}
			rec.run(func() { checkKustomization(rec, root, tt.dir) })
			if tt.want == "" {
				if len(rec.msgs) > 0 {
					t.Errorf("reported: %q", rec.msgs)
				}
				return
			}
			if !slices.ContainsFunc(rec.msgs, func(m string) bool { return strings.Contains(m, tt.want) }) {
				t.Errorf("reported %q: want a message with %q", rec.msgs, tt.want)
			}
		})
	}
}
