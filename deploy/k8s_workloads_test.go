package deploy

import (
	"maps"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/modfile"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	sigsyaml "sigs.k8s.io/yaml"
)

// The checks of the workloads themselves: the PDP, the SpiceDB cluster it
// uses, an application with the sidecar (TestManifests runs them).

// checkPDP: the PDP's Deployment, PodDisruptionBudget, Service and
// configuration.
func checkPDP(t tb, r rendered) {
	t.Helper()
	d, _ := r.get("Deployment", "pdp").(*appsv1.Deployment)
	if d == nil {
		t.Fatal("no Deployment pdp")
	}
	if d.Spec.Replicas == nil || *d.Spec.Replicas < 3 {
		t.Errorf("Deployment pdp: replicas %v, want at least 3", d.Spec.Replicas)
	}
	if ru := d.Spec.Strategy.RollingUpdate; ru == nil || ru.MaxUnavailable == nil || ru.MaxUnavailable.IntValue() != 0 {
		t.Errorf("Deployment pdp: a rolling update must keep every replica until its successor is ready (maxUnavailable 0)")
	}
	spec := &d.Spec.Template.Spec
	pods := labels.Set(d.Spec.Template.Labels)
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil || !sel.Matches(pods) {
		t.Errorf("Deployment pdp: selector %v does not match its pods %v (%v)", d.Spec.Selector, pods, err)
	}
	c := container(spec, "serve")
	if c == nil {
		t.Fatal("Deployment pdp: no container runs pdp serve")
	}

	// The configuration: a file from the ConfigMap, one the loader test reads.
	file, data := configFromMount(t, r, spec, c)
	sameAsAFileNamed(t, r.root, "the PDP's "+file, "pdp.yaml", data)
	var cfg map[string]any
	if err := sigsyaml.Unmarshal(data, &cfg); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	_, port, err := net.SplitHostPort(configString(cfg, "http.addr"))
	if err != nil {
		t.Fatalf("http.addr %q: %v", configString(cfg, "http.addr"), err)
	}
	httpPort, _ := strconv.Atoi(port)
	var portName string
	for _, p := range c.Ports {
		if int(p.ContainerPort) == httpPort {
			portName = p.Name
		}
	}
	if portName == "" {
		t.Errorf("container pdp: no containerPort %d (http.addr)", httpPort)
	}

	// Probes on the PDP's own endpoints and port.
	for _, p := range []struct {
		what  string
		probe *corev1.Probe
		path  string
	}{
		{"readinessProbe", c.ReadinessProbe, "/readyz"},
		{"livenessProbe", c.LivenessProbe, "/healthz"},
	} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("container pdp: %s: want an httpGet on %s", p.what, p.path)
			continue
		}
		g := p.probe.HTTPGet
		if g.Path != p.path || (g.Port.String() != portName && g.Port.IntValue() != httpPort) {
			t.Errorf("container pdp: %s: GET %s on port %s, want %s on %s (%d)", p.what, g.Path, g.Port.String(), p.path, portName, httpPort)
		}
	}

	// Prometheus scrapes /metrics on the PDP's port.
	ann := d.Spec.Template.Annotations
	if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/path"] != "/metrics" || ann["prometheus.io/port"] != port {
		t.Errorf("pod annotations %v: want prometheus.io/scrape \"true\", path /metrics, port %s", ann, port)
	}

	// Shutdown: the grace period covers the preStop pause and the drain.
	grace := 30 * time.Second
	if spec.TerminationGracePeriodSeconds != nil {
		grace = time.Duration(*spec.TerminationGracePeriodSeconds) * time.Second
	}
	drain := 10 * time.Second // http.shutdown_timeout's default
	if s := configString(cfg, "http.shutdown_timeout"); s != "" {
		if drain, err = time.ParseDuration(s); err != nil {
			t.Errorf("http.shutdown_timeout %q: %v", s, err)
		}
	}
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
		drain += time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
	}
	if drain >= grace {
		t.Errorf("terminationGracePeriodSeconds %v: not above http.shutdown_timeout plus preStop (%v): the kubelet would kill the drain", grace, drain)
	}

	// Keys from Secrets; writes on volumes.
	for _, key := range []string{"trail.signing_key_file", "consent.signing_key_file", "relations.ca_file"} {
		if p := configString(cfg, key); p != "" {
			secretFile(t, r, spec, c, key, p)
		}
	}
	if configString(cfg, "trail.store") == "postgres" && configString(cfg, "trail.signing_key_file") == "" {
		t.Errorf("trail.store postgres without trail.signing_key_file: the replicas would not share a key")
	}
	for _, key := range []string{"trail.dir", "policy.git.checkout", "delegations.path", "consent.path"} {
		if p := configString(cfg, key); p != "" {
			if !path.IsAbs(p) {
				t.Errorf("%s %q: want an absolute path in the cluster's configuration", key, p)
				continue
			}
			writable(t, spec, c, key, p)
		}
	}
	env := secretEnv(r, c)
	if _, ok := env["PDP_AUTH_API_KEYS"]; !ok && configValue(cfg, "auth.api_keys") == nil {
		t.Errorf("no API keys (PDP_AUTH_API_KEYS in a Secret): the PDP refuses to listen beyond loopback without them")
	}
	for k := range env {
		if !strings.HasPrefix(k, "PDP_") {
			t.Errorf("Secret env %s: the PDP reads PDP_* only", k)
		}
	}
	for _, sec := range []string{"relations.preshared_key", "relations.postgres_url", "delegations.postgres_url", "consent.postgres_url", "trail.postgres_url", "policy.git.password"} {
		if configValue(cfg, sec) != nil {
			t.Errorf("%s is in the ConfigMap: it belongs in the Secret (PDP_%s)", sec, strings.ToUpper(strings.ReplaceAll(sec, ".", "_")))
		}
	}
	envFiles := []string{filepath.Join(r.root, "k8s/base/demo-keys/pdp.env")}
	if p := filepath.Join(r.root, r.dir, "pdp.env"); fileExists(p) {
		envFiles = append(envFiles, p)
	}
	if want := readEnvFiles(t, envFiles...); !maps.Equal(env, want) {
		t.Errorf("the PDP's Secret environment is not the union of %q (what the loader test sets)", envFiles)
	}

	// The PodDisruptionBudget and the Service select these pods.
	pdb, _ := r.get("PodDisruptionBudget", "pdp").(*policyv1.PodDisruptionBudget)
	if pdb == nil {
		t.Fatal("no PodDisruptionBudget pdp")
	}
	psel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	if err != nil || psel.Empty() || !psel.Matches(pods) {
		t.Errorf("PodDisruptionBudget pdp: selector %v does not select the PDP's pods %v (%v)", pdb.Spec.Selector, pods, err)
	}
	if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() < 1 || pdb.Spec.MinAvailable.IntValue() >= int(*d.Spec.Replicas) {
		t.Errorf("PodDisruptionBudget pdp: minAvailable %v: want at least 1 and fewer than the %d replicas (else no node can be drained)", pdb.Spec.MinAvailable, *d.Spec.Replicas)
	}
	svc, _ := r.get("Service", "pdp").(*corev1.Service)
	if svc == nil {
		t.Fatal("no Service pdp")
	}
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(pods) || len(svc.Spec.Selector) == 0 {
		t.Errorf("Service pdp: selector %v does not select the PDP's pods %v", svc.Spec.Selector, pods)
	}
	for _, p := range svc.Spec.Ports {
		if p.TargetPort.String() != portName && p.TargetPort.IntValue() != httpPort {
			t.Errorf("Service pdp: port %d targets %s, not the PDP's port %s", p.Port, p.TargetPort.String(), portName)
		}
	}
}

// checkSpiceDB: the PDP's relations.endpoint names the SpiceDB Service of
// the output, and both sides share the preshared key.
func checkSpiceDB(t tb, r rendered) {
	t.Helper()
	d, _ := r.get("Deployment", "pdp").(*appsv1.Deployment)
	spec := &d.Spec.Template.Spec
	c := container(spec, "serve")
	_, data := configFromMount(t, r, spec, c)
	var cfg map[string]any
	if err := sigsyaml.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	if e := configString(cfg, "relations.engine"); e != "remote" {
		t.Errorf("relations.engine %q, want remote", e)
	}
	host, port, err := net.SplitHostPort(configString(cfg, "relations.endpoint"))
	if err != nil {
		t.Fatalf("relations.endpoint: %v", err)
	}
	svc, _ := r.get("Service", host).(*corev1.Service)
	if svc == nil || !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return strconv.Itoa(int(p.Port)) == port }) {
		t.Fatalf("relations.endpoint %s:%s: no such Service and port in the output", host, port)
	}
	var sp *appsv1.Deployment
	for _, o := range r.objs {
		if dd, ok := o.obj.(*appsv1.Deployment); ok && labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(dd.Spec.Template.Labels)) {
			sp = dd
		}
	}
	if sp == nil {
		t.Fatalf("Service %s selects no Deployment", host)
	}
	if sp.Spec.Replicas == nil || *sp.Spec.Replicas < 2 {
		t.Errorf("Deployment %s: replicas %v: a SpiceDB cluster has more than one", sp.Name, sp.Spec.Replicas)
	}
	sc := &sp.Spec.Template.Spec.Containers[0]
	if want := "authzed/spicedb:" + spiceDBVersion(t); sc.Image != want {
		t.Errorf("Deployment %s: image %s, want the upstream %s (the SpiceDB that go.mod embeds: one version of the schema and API)", sp.Name, sc.Image, want)
	}
	spiceEnv := secretEnv(r, sc)
	pdpEnv := secretEnv(r, c)
	if spiceEnv["SPICEDB_GRPC_PRESHARED_KEY"] == "" || spiceEnv["SPICEDB_GRPC_PRESHARED_KEY"] != pdpEnv["PDP_RELATIONS_PRESHARED_KEY"] {
		t.Errorf("SpiceDB's SPICEDB_GRPC_PRESHARED_KEY and the PDP's PDP_RELATIONS_PRESHARED_KEY differ or are empty")
	}
	if u := spiceEnv["SPICEDB_DATASTORE_CONN_URI"]; spiceEnv["SPICEDB_DATASTORE_ENGINE"] != "postgres" || !strings.HasPrefix(u, "postgres://") {
		t.Errorf("SpiceDB: want SPICEDB_DATASTORE_ENGINE postgres and a postgres:// SPICEDB_DATASTORE_CONN_URI")
	}
	if sc.ReadinessProbe == nil || sc.ReadinessProbe.GRPC == nil {
		t.Errorf("SpiceDB: want a gRPC readiness probe")
	}
}

// checkSidecar: the application's pod runs pdp sidecar beside it, on
// loopback, configured from a file the loader test reads, with the
// application's key from a Secret and its spool on a volume.
func checkSidecar(t tb, r rendered) {
	t.Helper()
	var found bool
	for _, o := range r.objs {
		d, ok := o.obj.(*appsv1.Deployment)
		if !ok {
			continue
		}
		spec := &d.Spec.Template.Spec
		c := container(spec, "sidecar")
		if c == nil {
			continue
		}
		found = true
		if !slices.ContainsFunc(spec.Containers, func(a corev1.Container) bool { return a.Name != c.Name }) {
			t.Errorf("Deployment %s: the sidecar needs an application beside it", d.Name)
		}
		if slices.ContainsFunc(spec.InitContainers, func(ic corev1.Container) bool { return ic.Name == c.Name }) &&
			(c.RestartPolicy == nil || *c.RestartPolicy != corev1.ContainerRestartPolicyAlways) {
			t.Errorf("Deployment %s: the sidecar is an init container without restartPolicy Always: the app would wait for it forever", d.Name)
		}
		file, data := configFromMount(t, r, spec, c)
		sameAsAFileNamed(t, r.root, "the sidecar's "+file, "sidecar.yaml", data)
		var cfg map[string]any
		if err := sigsyaml.Unmarshal(data, &cfg); err != nil {
			t.Fatal(err)
		}
		if host, _, err := net.SplitHostPort(configString(cfg, "listen")); err != nil || net.ParseIP(host) == nil || !net.ParseIP(host).IsLoopback() {
			t.Errorf("sidecar listen %q: want a loopback address (the app shares the pod's network)", configString(cfg, "listen"))
		}
		if u, err := url.Parse(configString(cfg, "central_url")); err != nil || u.Host == "" {
			t.Errorf("sidecar central_url %q: want the PDP Service's URL", configString(cfg, "central_url"))
		} else if h := u.Hostname(); !strings.HasPrefix(h, "pdp.") || u.Port() != "8080" {
			t.Errorf("sidecar central_url %s: want the Service pdp of the overlays on port 8080", u)
		}
		if p := configString(cfg, "spool_dir"); p == "" {
			t.Errorf("sidecar: no spool_dir")
		} else {
			writable(t, spec, c, "spool_dir", p)
		}
		key := false
		for k := range secretEnv(r, c) {
			key = key || k == "PDP_SIDECAR_API_KEY"
		}
		if !key || configValue(cfg, "api_key") != nil {
			t.Errorf("sidecar: the API key must come from a Secret (PDP_SIDECAR_API_KEY), not the ConfigMap")
		}
	}
	if !found {
		t.Fatal("no Deployment runs pdp sidecar")
	}
}

// spiceDBVersion is the version of github.com/authzed/spicedb in go.mod.
func spiceDBVersion(t tb) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	mod, err := modfile.ParseLax("go.mod", data, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range mod.Require {
		if r.Mod.Path == "github.com/authzed/spicedb" {
			return r.Mod.Version
		}
	}
	t.Fatal("go.mod does not require github.com/authzed/spicedb")
	return ""
}
