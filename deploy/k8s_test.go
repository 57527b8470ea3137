package deploy

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metavalidation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	sigsyaml "sigs.k8s.io/yaml"
)

// kustomizations are every kustomization under k8s/, with what each holds
// (TestKustomizationsListed keeps the list complete).
var kustomizations = []kustomization{
	{dir: "k8s/base", pdp: true},
	{dir: "k8s/overlays/embedded-postgres", pdp: true},
	{dir: "k8s/overlays/remote-spicedb", pdp: true, spicedb: true},
	{dir: "k8s/examples/app-with-sidecar", sidecar: true},
}

type kustomization struct {
	dir     string
	pdp     bool // the PDP's Deployment, Service and PodDisruptionBudget
	spicedb bool // a SpiceDB cluster the PDP uses
	sidecar bool // an application with pdp sidecar beside it
}

// The kinds the manifests may hold, each decoded into its Kubernetes API
// type: a field the type does not know fails the decode.
var kinds = map[string]func() any{
	"v1/Namespace":                  func() any { return &corev1.Namespace{} },
	"v1/ServiceAccount":             func() any { return &corev1.ServiceAccount{} },
	"v1/Service":                    func() any { return &corev1.Service{} },
	"v1/ConfigMap":                  func() any { return &corev1.ConfigMap{} },
	"v1/Secret":                     func() any { return &corev1.Secret{} },
	"apps/v1/Deployment":            func() any { return &appsv1.Deployment{} },
	"apps/v1/StatefulSet":           func() any { return &appsv1.StatefulSet{} },
	"batch/v1/Job":                  func() any { return &batchv1.Job{} },
	"policy/v1/PodDisruptionBudget": func() any { return &policyv1.PodDisruptionBudget{} },
}

// tb is what the checks need of a *testing.T; mutationRecorder (in
// TestManifestRules) records instead.
type tb interface {
	Helper()
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Fatal(args ...any)
}

// object is one rendered manifest, decoded.
type object struct {
	kind, name, namespace string
	obj                   any
}

// rendered is the output of one kustomization.
type rendered struct {
	root string // the folder that holds k8s/ (this one, or a changed copy)
	dir  string // the kustomization, relative to root
	objs []object
}

// get returns the object of that kind and name, or nil.
func (r rendered) get(kind, name string) any {
	for _, o := range r.objs {
		if o.kind == kind && o.name == name {
			return o.obj
		}
	}
	return nil
}

// render runs kustomize (the library the kubectl -k and kustomize CLIs
// use) on dir and decodes every object strictly into its API type.
func render(t tb, root, dir string) rendered {
	t.Helper()
	abs, err := filepath.Abs(filepath.Join(root, dir))
	if err != nil {
		t.Fatal(err)
	}
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), abs)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	out := rendered{root: root, dir: dir}
	for _, res := range m.Resources() {
		y, err := res.AsYAML()
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		obj, err := decodeStrict(res.GetApiVersion(), res.GetKind(), y)
		if err != nil {
			t.Errorf("%s: %s %s: %v", dir, res.GetKind(), res.GetName(), err)
			continue
		}
		out.objs = append(out.objs, object{kind: res.GetKind(), name: res.GetName(), namespace: res.GetNamespace(), obj: obj})
	}
	if len(out.objs) == 0 {
		t.Fatalf("%s renders nothing", dir)
	}
	return out
}

// decodeStrict decodes one manifest into the API type of its apiVersion
// and kind, refusing unknown and duplicate fields.
func decodeStrict(apiVersion, kind string, data []byte) (any, error) {
	newObj := kinds[apiVersion+"/"+kind]
	if newObj == nil {
		return nil, fmt.Errorf("apiVersion %s kind %s: not a kind these manifests may use (add its type to kinds)", apiVersion, kind)
	}
	obj := newObj()
	if err := sigsyaml.UnmarshalStrict(data, obj); err != nil {
		return nil, fmt.Errorf("%s/%s: %w", apiVersion, kind, err)
	}
	return obj, nil
}

// TestKustomizationsListed: every kustomization under k8s/ is rendered and
// checked by TestManifests.
func TestKustomizationsListed(t *testing.T) {
	var found []string
	err := filepath.WalkDir("k8s", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Name() != "kustomization.yaml" {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		var k struct{ Kind string }
		if err := sigsyaml.Unmarshal(data, &k); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		if k.Kind != "Component" { // components are checked through the overlays that use them
			found = append(found, filepath.ToSlash(filepath.Dir(p)))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, k := range kustomizations {
		listed = append(listed, k.dir)
	}
	slices.Sort(found)
	slices.Sort(listed)
	if !slices.Equal(found, listed) {
		t.Errorf("kustomizations under k8s/: %q; TestManifests checks %q", found, listed)
	}
}

// TestManifests renders each kustomization, decodes every object into its
// Kubernetes type with unknown fields refused, and checks what the
// deployment promises: names and labels Kubernetes accepts, every
// reference resolved, pods that meet the restricted Pod Security Standard
// (non-root, read-only root filesystem, no capabilities, no privilege
// escalation, RuntimeDefault seccomp), resources, pinned images; and for
// the PDP at least 3 replicas, /readyz and /healthz probes, a
// PodDisruptionBudget and a Service that select its pods, Prometheus
// annotations, a configuration file from the ConfigMap that is one of the
// files cmd/pdp's TestDeployConfigFiles loads with the real loader, keys
// from Secrets, and every path it writes on a volume.
func TestManifests(t *testing.T) {
	for _, k := range kustomizations {
		t.Run(strings.ReplaceAll(k.dir, "/", "_"), func(t *testing.T) {
			checkKustomization(t, ".", k.dir)
		})
	}
}

// checkKustomization renders root/dir and applies every check that
// kustomizations lists for it.
func checkKustomization(t tb, root, dir string) {
	i := slices.IndexFunc(kustomizations, func(k kustomization) bool { return k.dir == dir })
	if i < 0 {
		t.Fatalf("%s is not in kustomizations", dir)
	}
	k := kustomizations[i]
	r := render(t, root, k.dir)
	checkObjects(t, r)
	if k.pdp {
		checkPDP(t, r)
	}
	if k.spicedb {
		checkSpiceDB(t, r)
	}
	if k.sidecar {
		checkSidecar(t, r)
	}
}

// checkObjects applies the rules every object and every pod follows.
func checkObjects(t tb, r rendered) {
	t.Helper()
	namespaces := map[string]bool{}
	for _, o := range r.objs {
		if o.kind == "Namespace" {
			namespaces[o.name] = true
		}
	}
	for _, o := range r.objs {
		where := fmt.Sprintf("%s %s", o.kind, o.name)
		for _, msg := range validation.IsDNS1123Subdomain(o.name) {
			t.Errorf("%s: name: %s", where, msg)
		}
		if o.kind != "Namespace" && len(namespaces) > 0 && !namespaces[o.namespace] {
			t.Errorf("%s: namespace %q is not one the kustomization creates %v", where, o.namespace, namespaces)
		}
		if m, ok := o.obj.(metav1.Object); ok {
			for _, e := range metavalidation.ValidateLabels(m.GetLabels(), field.NewPath("metadata", "labels")) {
				t.Errorf("%s: %v", where, e)
			}
		}
		if spec := podSpec(o.obj); spec != nil {
			checkPod(t, r, where, spec)
		}
	}
}

// podSpec is the pod template of a workload, or nil.
func podSpec(obj any) *corev1.PodTemplateSpec {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		return &o.Spec.Template
	case *appsv1.StatefulSet:
		return &o.Spec.Template
	case *batchv1.Job:
		return &o.Spec.Template
	}
	return nil
}

// checkPod: the restricted Pod Security Standard (the namespaces enforce
// it), resources, pinned images, and every name the pod refers to resolved.
func checkPod(t tb, r rendered, where string, tpl *corev1.PodTemplateSpec) {
	t.Helper()
	spec := tpl.Spec
	psc := spec.SecurityContext
	if psc == nil {
		t.Errorf("%s: no pod securityContext", where)
		psc = &corev1.PodSecurityContext{}
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Errorf("%s: automountServiceAccountToken must be false (nothing here calls the Kubernetes API)", where)
	}
	if psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: pod seccompProfile must be RuntimeDefault", where)
	}
	if psc.RunAsUser != nil && *psc.RunAsUser == 0 {
		t.Errorf("%s: runAsUser 0", where)
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = v
		switch {
		case v.ConfigMap != nil:
			if r.get("ConfigMap", v.ConfigMap.Name) == nil {
				t.Errorf("%s: volume %s: no ConfigMap %s in the output", where, v.Name, v.ConfigMap.Name)
			}
		case v.Secret != nil:
			if r.get("Secret", v.Secret.SecretName) == nil {
				t.Errorf("%s: volume %s: no Secret %s in the output", where, v.Name, v.Secret.SecretName)
			}
		}
	}
	if spec.ServiceAccountName != "" && r.get("ServiceAccount", spec.ServiceAccountName) == nil {
		t.Errorf("%s: no ServiceAccount %s in the output", where, spec.ServiceAccountName)
	}
	all := append(slices.Clone(spec.InitContainers), spec.Containers...)
	for _, c := range all {
		cw := where + " container " + c.Name
		for _, msg := range validation.IsDNS1123Label(c.Name) {
			t.Errorf("%s: name: %s", cw, msg)
		}
		if name, tag, ok := strings.Cut(path.Base(c.Image), ":"); !ok || tag == "" || tag == "latest" || name == "" {
			t.Errorf("%s: image %q: want a pinned tag (kustomize images:)", cw, c.Image)
		}
		sc := c.SecurityContext
		if sc == nil {
			t.Errorf("%s: no securityContext", cw)
			continue
		}
		if (sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot) && (psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot) {
			t.Errorf("%s: runAsNonRoot is not set (pod or container)", cw)
		}
		if sc.RunAsUser != nil && *sc.RunAsUser == 0 {
			t.Errorf("%s: runAsUser 0", cw)
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("%s: readOnlyRootFilesystem must be true", cw)
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("%s: allowPrivilegeEscalation must be false", cw)
		}
		if sc.Privileged != nil && *sc.Privileged {
			t.Errorf("%s: privileged", cw)
		}
		if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
			t.Errorf("%s: capabilities must drop ALL and add none", cw)
		}
		req, lim := c.Resources.Requests, c.Resources.Limits
		if req.Cpu().IsZero() || req.Memory().IsZero() || lim.Memory().IsZero() {
			t.Errorf("%s: resources: want cpu and memory requests and a memory limit", cw)
		}
		for _, p := range c.Ports {
			if p.Name != "" {
				for _, msg := range validation.IsValidPortName(p.Name) {
					t.Errorf("%s: port %s: %s", cw, p.Name, msg)
				}
			}
		}
		for _, e := range c.Env {
			for _, msg := range validation.IsEnvVarName(e.Name) {
				t.Errorf("%s: env %s: %s", cw, e.Name, msg)
			}
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				ref := e.ValueFrom.SecretKeyRef
				if s, _ := r.get("Secret", ref.Name).(*corev1.Secret); s == nil || s.Data[ref.Key] == nil {
					t.Errorf("%s: env %s: no key %s in a Secret %s", cw, e.Name, ref.Key, ref.Name)
				}
			}
		}
		for _, e := range c.EnvFrom {
			switch {
			case e.SecretRef != nil:
				s, _ := r.get("Secret", e.SecretRef.Name).(*corev1.Secret)
				if s == nil {
					t.Errorf("%s: envFrom: no Secret %s in the output", cw, e.SecretRef.Name)
					continue
				}
				for k := range s.Data {
					for _, msg := range validation.IsEnvVarName(k) {
						t.Errorf("%s: envFrom Secret %s: key %s is not a variable name (it would be skipped): %s", cw, s.Name, k, msg)
					}
				}
			case e.ConfigMapRef != nil:
				if r.get("ConfigMap", e.ConfigMapRef.Name) == nil {
					t.Errorf("%s: envFrom: no ConfigMap %s in the output", cw, e.ConfigMapRef.Name)
				}
			}
		}
		for _, m := range c.VolumeMounts {
			if _, ok := volumes[m.Name]; !ok && !isClaimTemplate(r, m.Name) {
				t.Errorf("%s: volumeMount %s: no such volume", cw, m.Name)
			}
		}
	}
}

// isClaimTemplate: name is a volumeClaimTemplate of a StatefulSet.
func isClaimTemplate(r rendered, name string) bool {
	for _, o := range r.objs {
		if s, ok := o.obj.(*appsv1.StatefulSet); ok {
			for _, c := range s.Spec.VolumeClaimTemplates {
				if c.Name == name {
					return true
				}
			}
		}
	}
	return false
}

// container finds the container (or native sidecar) whose args start
// with command.
func container(spec *corev1.PodSpec, command string) *corev1.Container {
	for _, cs := range [][]corev1.Container{spec.Containers, spec.InitContainers} {
		for i := range cs {
			if len(cs[i].Args) > 0 && cs[i].Args[0] == command {
				return &cs[i]
			}
		}
	}
	return nil
}

// configFromMount returns the file named by --config in c's args, read
// from the ConfigMap mounted at its folder, and the ConfigMap's key.
func configFromMount(t tb, r rendered, spec *corev1.PodSpec, c *corev1.Container) (file string, data []byte) {
	t.Helper()
	i := slices.Index(c.Args, "--config")
	if i < 0 || i+1 >= len(c.Args) {
		t.Fatalf("container %s: args %q: want --config FILE", c.Name, c.Args)
	}
	file = c.Args[i+1]
	m := mountAt(c, path.Dir(file))
	if m == nil {
		t.Fatalf("container %s: --config %s: nothing mounted at %s", c.Name, file, path.Dir(file))
	}
	v := volume(spec, m.Name)
	if v == nil || v.ConfigMap == nil {
		t.Fatalf("container %s: %s is not mounted from a ConfigMap", c.Name, path.Dir(file))
	}
	cm, _ := r.get("ConfigMap", v.ConfigMap.Name).(*corev1.ConfigMap)
	if cm == nil || cm.Data[path.Base(file)] == "" {
		t.Fatalf("container %s: ConfigMap %s has no key %s", c.Name, v.ConfigMap.Name, path.Base(file))
	}
	return file, []byte(cm.Data[path.Base(file)])
}

// mountAt is the mount of c whose path is p or holds p.
func mountAt(c *corev1.Container, p string) *corev1.VolumeMount {
	var best *corev1.VolumeMount
	for i, m := range c.VolumeMounts {
		if (p == m.MountPath || strings.HasPrefix(p, m.MountPath+"/")) && (best == nil || len(m.MountPath) > len(best.MountPath)) {
			best = &c.VolumeMounts[i]
		}
	}
	return best
}

func volume(spec *corev1.PodSpec, name string) *corev1.Volume {
	for i := range spec.Volumes {
		if spec.Volumes[i].Name == name {
			return &spec.Volumes[i]
		}
	}
	return nil
}

// sameAsAFileNamed checks that data is byte for byte one of the files
// named name under this folder: the files cmd/pdp's TestDeployConfigFiles
// loads with the real configuration loader.
func sameAsAFileNamed(t tb, root, what, name string, data []byte) {
	t.Helper()
	var names []string
	err := filepath.WalkDir(filepath.Join(root, "k8s"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Name() != name {
			return err
		}
		names = append(names, p)
		b, err := os.ReadFile(p)
		if err == nil && bytes.Equal(b, data) {
			names = nil
			return fs.SkipAll
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if names != nil {
		t.Errorf("%s is none of the files %q that the loader test reads", what, names)
	}
}

// configValue returns the value at a dotted key of a YAML document.
func configValue(doc map[string]any, key string) any {
	var v any = doc
	for k := range strings.SplitSeq(key, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func configString(doc map[string]any, key string) string {
	s, _ := configValue(doc, key).(string)
	return s
}

// writable checks that p is on a volume the container may write (not the
// read-only root filesystem, not a ConfigMap or Secret).
func writable(t tb, spec *corev1.PodSpec, c *corev1.Container, what, p string) {
	t.Helper()
	m := mountAt(c, p)
	if m == nil {
		t.Errorf("%s %s: not on a volume, and the root filesystem is read-only", what, p)
		return
	}
	if m.ReadOnly {
		t.Errorf("%s %s: volume %s is mounted read-only", what, p, m.Name)
	}
	if v := volume(spec, m.Name); v != nil && (v.ConfigMap != nil || v.Secret != nil) {
		t.Errorf("%s %s: on volume %s, which is a ConfigMap or Secret", what, p, m.Name)
	}
}

// secretFile checks that p is a key of a Secret mounted at p's folder.
func secretFile(t tb, r rendered, spec *corev1.PodSpec, c *corev1.Container, what, p string) {
	t.Helper()
	m := mountAt(c, path.Dir(p))
	if m == nil || m.MountPath != path.Dir(p) {
		t.Errorf("%s %s: no volume mounted at %s", what, p, path.Dir(p))
		return
	}
	v := volume(spec, m.Name)
	if v == nil || v.Secret == nil {
		t.Errorf("%s %s: %s is not mounted from a Secret", what, p, path.Dir(p))
		return
	}
	s, _ := r.get("Secret", v.Secret.SecretName).(*corev1.Secret)
	if s == nil || len(s.Data[path.Base(p)]) == 0 {
		t.Errorf("%s %s: Secret %s has no key %s", what, p, v.Secret.SecretName, path.Base(p))
	}
}

// secretEnv is the environment a container gets from its Secrets.
func secretEnv(r rendered, c *corev1.Container) map[string]string {
	env := map[string]string{}
	for _, e := range c.EnvFrom {
		if e.SecretRef == nil {
			continue
		}
		if s, _ := r.get("Secret", e.SecretRef.Name).(*corev1.Secret); s != nil {
			for k, v := range s.Data {
				env[k] = string(v)
			}
		}
	}
	return env
}

// readEnvFiles reads KEY=value files (kustomize's envs: syntax: # comments,
// blank lines); later files win.
func readEnvFiles(t tb, files ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, f := range files {
		data, err := os.ReadFile(f)
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
			out[k] = v
		}
	}
	return out
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
