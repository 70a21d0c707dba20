// Package manifests checks the Kubernetes manifests under k8s/ against the
// rest of the repository, with no cluster and no kustomize: every YAML
// document is parsed, kustomizations are resolved by hand, and the result is
// compared with what the local stack runs (dapr.yaml, components/,
// resiliency/) and with the service invocations the apps make.
package manifests

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// namespace is where every namespaced resource of the system lives.
const namespace = "fabrikam"

// repoRoot is the repository's top directory, found from this file's path
// so the tests run from any working directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("runtime.Caller: no file")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// obj is one parsed YAML document.
type obj = map[string]any

// doc is a YAML document and where it came from.
type doc struct {
	file string // slash path relative to the repository root
	obj  obj
}

func (d doc) kind() string { return str(d.obj["kind"]) }
func (d doc) name() string { return str(get(d.obj, "metadata", "name")) }
func (d doc) String() string {
	return fmt.Sprintf("%s %q (%s)", d.kind(), d.name(), d.file)
}

// parseFile returns every non-empty document of a YAML file.
func parseFile(t *testing.T, root, rel string) []doc {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(rel)))
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var docs []doc
	for {
		var o obj
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("%s: %v", rel, err)
		}
		if o != nil {
			docs = append(docs, doc{file: rel, obj: o})
		}
	}
}

// parseDir returns the documents of every YAML file directly in dir.
func parseDir(t *testing.T, root, dir string) []doc {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(root, filepath.FromSlash(dir)))
	if err != nil {
		t.Fatal(err)
	}
	var docs []doc
	for _, e := range entries {
		if !e.IsDir() && isYAML(e.Name()) {
			docs = append(docs, parseFile(t, root, path.Join(dir, e.Name()))...)
		}
	}
	return docs
}

func isYAML(name string) bool {
	return strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml")
}

func isKustomization(name string) bool {
	return name == "kustomization.yaml" || name == "kustomization.yml" || name == "Kustomization"
}

// get walks nested maps; a missing key gives nil.
func get(o any, keys ...string) any {
	for _, k := range keys {
		m, ok := o.(obj)
		if !ok {
			return nil
		}
		o = m[k]
	}
	return o
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}

// strMap returns a map of strings, failing on any value YAML did not read
// as a string: Kubernetes wants labels, annotations and env values quoted
// ("true", "8080"), and an unquoted one is rejected at apply time.
func strMap(t *testing.T, where string, v any) map[string]string {
	t.Helper()
	out := map[string]string{}
	m, _ := v.(obj)
	for k, val := range m {
		s, ok := val.(string)
		if !ok {
			t.Errorf("%s: %s is %T %v, not a string: quote it", where, k, val, val)
			continue
		}
		out[k] = s
	}
	return out
}

// kustomization is what these tests read of a kustomization file.
type kustomization struct {
	Namespace             string      `yaml:"namespace"`
	Resources             []string    `yaml:"resources"`
	Bases                 []string    `yaml:"bases"`
	Components            []string    `yaml:"components"`
	Crds                  []string    `yaml:"crds"`
	PatchesStrategicMerge []string    `yaml:"patchesStrategicMerge"`
	Patches               []pathEntry `yaml:"patches"`
	PatchesJSON6902       []pathEntry `yaml:"patchesJson6902"`
	ConfigMapGenerator    []generator `yaml:"configMapGenerator"`
	SecretGenerator       []generator `yaml:"secretGenerator"`
	Images                []image     `yaml:"images"`
	Replicas              []replica   `yaml:"replicas"`
}

type pathEntry struct {
	Path string `yaml:"path"`
}

type generator struct {
	Name     string   `yaml:"name"`
	Files    []string `yaml:"files"`
	Envs     []string `yaml:"envs"`
	Env      string   `yaml:"env"`
	Literals []string `yaml:"literals"`
}

type image struct {
	Name    string `yaml:"name"`
	NewName string `yaml:"newName"`
	NewTag  string `yaml:"newTag"`
	Digest  string `yaml:"digest"`
}

type replica struct {
	Name  string `yaml:"name"`
	Count int    `yaml:"count"`
}

// tree is everything under k8s/, parsed once per test.
type tree struct {
	root           string
	kustomizations map[string]kustomization // by directory, slash path from the root
	docs           map[string][]doc         // by file, every YAML file under k8s/
}

func loadTree(t *testing.T) *tree {
	t.Helper()
	root := repoRoot(t)
	tr := &tree{root: root, kustomizations: map[string]kustomization{}, docs: map[string][]doc{}}
	err := filepath.WalkDir(filepath.Join(root, "k8s"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		switch {
		case isKustomization(d.Name()):
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			var k kustomization
			if err := yaml.Unmarshal(b, &k); err != nil {
				return fmt.Errorf("%s: %w", rel, err)
			}
			tr.kustomizations[path.Dir(rel)] = k
		case isYAML(d.Name()):
			tr.docs[rel] = parseFile(t, root, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.kustomizations) == 0 {
		t.Fatal("no kustomization under k8s/")
	}
	return tr
}

func (tr *tree) exists(rel string) (isDir, ok bool) {
	fi, err := os.Stat(filepath.Join(tr.root, filepath.FromSlash(rel)))
	if err != nil {
		return false, false
	}
	return fi.IsDir(), true
}

// resolve lists the documents a kustomization directory builds from, its
// resources and components followed recursively (before any transformation).
func (tr *tree) resolve(t *testing.T, dir string) []doc {
	t.Helper()
	k, ok := tr.kustomizations[dir]
	if !ok {
		t.Fatalf("%s: not a kustomization directory", dir)
	}
	var docs []doc
	for _, r := range slices.Concat(k.Resources, k.Bases, k.Components) {
		p := path.Join(dir, r)
		if isDir, _ := tr.exists(p); isDir {
			docs = append(docs, tr.resolve(t, p)...)
		} else {
			docs = append(docs, tr.docs[p]...)
		}
	}
	return docs
}

// apps are the app-ids of dapr.yaml, with what the manifests must repeat.
type app struct {
	ID             string `yaml:"appID"`
	MaxConcurrency int    `yaml:"appMaxConcurrency"`
}

func loadApps(t *testing.T, root string) []app {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "dapr.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var run struct {
		Apps []app `yaml:"apps"`
	}
	if err := yaml.Unmarshal(b, &run); err != nil {
		t.Fatalf("dapr.yaml: %v", err)
	}
	if len(run.Apps) == 0 {
		t.Fatal("dapr.yaml lists no apps")
	}
	return run.Apps
}

func ofKind(docs []doc, kind string) []doc {
	var out []doc
	for _, d := range docs {
		if d.kind() == kind {
			out = append(out, d)
		}
	}
	return out
}

func byName(docs []doc) map[string]doc {
	m := map[string]doc{}
	for _, d := range docs {
		m[d.name()] = d
	}
	return m
}

func names(docs []doc) []string {
	var out []string
	for _, d := range docs {
		out = append(out, d.name())
	}
	sort.Strings(out)
	return out
}

func dirsUnder(t *testing.T, root, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(root, filepath.FromSlash(dir)))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, path.Join(dir, e.Name()))
		}
	}
	return out
}

// TestKustomizationsReferenceExistingFiles checks every path a
// kustomization names, and that no manifest under k8s/ is left out of all
// of them.
func TestKustomizationsReferenceExistingFiles(t *testing.T) {
	tr := loadTree(t)
	referenced := map[string]bool{}
	for dir, k := range tr.kustomizations {
		check := func(field, p string, wantDir bool) {
			if strings.Contains(p, "://") || strings.HasPrefix(p, "github.com/") {
				t.Errorf("%s: %s %q is remote; the manifests must build offline", dir, field, p)
				return
			}
			full := path.Join(dir, p)
			isDir, ok := tr.exists(full)
			switch {
			case !ok:
				t.Errorf("%s/kustomization.yaml: %s %q does not exist", dir, field, p)
			case isDir && !wantDir:
				t.Errorf("%s/kustomization.yaml: %s %q is a directory", dir, field, p)
			case isDir:
				if _, ok := tr.kustomizations[full]; !ok {
					t.Errorf("%s/kustomization.yaml: %s %q has no kustomization.yaml", dir, field, p)
				}
			default:
				referenced[full] = true
			}
		}
		for _, r := range slices.Concat(k.Resources, k.Bases, k.Components) {
			check("resource", r, true)
		}
		for _, p := range slices.Concat(k.Crds, k.PatchesStrategicMerge) {
			check("patch or crd", p, false)
		}
		for _, p := range slices.Concat(k.Patches, k.PatchesJSON6902) {
			if p.Path != "" {
				check("patch", p.Path, false)
			}
		}
		for _, g := range slices.Concat(k.ConfigMapGenerator, k.SecretGenerator) {
			files := slices.Concat(g.Files, g.Envs)
			if g.Env != "" {
				files = append(files, g.Env)
			}
			for _, f := range files {
				if _, after, ok := strings.Cut(f, "="); ok {
					f = after // key=path
				}
				check("generator "+g.Name+" file", f, false)
			}
		}
		if k.Namespace != "" && k.Namespace != namespace {
			t.Errorf("%s: namespace %q, want %q", dir, k.Namespace, namespace)
		}
	}
	for file := range tr.docs {
		if !referenced[file] {
			t.Errorf("%s is in no kustomization: kubectl apply -k would leave it out", file)
		}
	}
}

// TestEveryAppHasDeploymentAndService checks one Deployment and one Service
// per app of dapr.yaml, with the Dapr annotations, probes, security context
// and resources the platform relies on.
func TestEveryAppHasDeploymentAndService(t *testing.T) {
	tr := loadTree(t)
	base := tr.resolve(t, "k8s/base")
	apps := loadApps(t, tr.root)

	deployments := map[string]doc{}
	for _, d := range ofKind(base, "Deployment") {
		id := str(get(d.obj, "spec", "template", "metadata", "annotations", "dapr.io/app-id"))
		if id == "" {
			t.Errorf("%s has no dapr.io/app-id", d)
			continue
		}
		if prev, dup := deployments[id]; dup {
			t.Errorf("app-id %q on two Deployments: %s and %s", id, prev, d)
		}
		deployments[id] = d
	}
	services := byName(ofKind(base, "Service"))
	known := map[string]bool{}
	for _, a := range apps {
		known[a.ID] = true
		t.Run(a.ID, func(t *testing.T) {
			d, ok := deployments[a.ID]
			if !ok {
				t.Fatalf("no Deployment with dapr.io/app-id %q in k8s/base", a.ID)
			}
			checkDeployment(t, d, a)
			svc, ok := services[a.ID]
			if !ok {
				t.Fatalf("no Service %q in k8s/base", a.ID)
			}
			checkService(t, svc, d)
		})
	}
	for id, d := range deployments {
		if !known[id] {
			t.Errorf("%s runs app-id %q, which dapr.yaml does not list", d, id)
		}
	}
}

// appPort is the port every app listens on in the cluster (APP_PORT).
const appPort = "8080"

func checkDeployment(t *testing.T, d doc, a app) {
	t.Helper()
	if d.name() != a.ID {
		t.Errorf("%s: name differs from its app-id %q", d, a.ID)
	}
	podLabels := strMap(t, d.String()+" pod labels", get(d.obj, "spec", "template", "metadata", "labels"))
	selector := strMap(t, d.String()+" selector", get(d.obj, "spec", "selector", "matchLabels"))
	if len(selector) == 0 || !subset(selector, podLabels) {
		t.Errorf("%s: selector %v does not select its pods' labels %v", d, selector, podLabels)
	}

	ann := strMap(t, d.String()+" pod annotations", get(d.obj, "spec", "template", "metadata", "annotations"))
	want := map[string]string{
		"dapr.io/enabled":                 "true",
		"dapr.io/app-id":                  a.ID,
		"dapr.io/app-port":                appPort,
		"dapr.io/config":                  "fabrikam",
		"dapr.io/enable-metrics":          "true",
		"dapr.io/log-as-json":             "true",
		"dapr.io/enable-app-health-check": "true",
		"dapr.io/app-health-check-path":   "/healthz",
		// Production sizing from the Dapr docs (kubernetes-production.md).
		"dapr.io/sidecar-cpu-request":    "100m",
		"dapr.io/sidecar-cpu-limit":      "300m",
		"dapr.io/sidecar-memory-request": "250Mi",
		"dapr.io/sidecar-memory-limit":   "1000Mi",
	}
	for k, v := range want {
		if ann[k] != v {
			t.Errorf("%s: annotation %s = %q, want %q", d, k, ann[k], v)
		}
	}
	if _, err := strconv.Atoi(ann["dapr.io/metrics-port"]); err != nil {
		t.Errorf("%s: dapr.io/metrics-port %q is not a port", d, ann["dapr.io/metrics-port"])
	}
	if a.MaxConcurrency > 0 && ann["dapr.io/app-max-concurrency"] != strconv.Itoa(a.MaxConcurrency) {
		t.Errorf("%s: dapr.io/app-max-concurrency %q, want %d as appMaxConcurrency in dapr.yaml",
			d, ann["dapr.io/app-max-concurrency"], a.MaxConcurrency)
	}
	grace, err := strconv.Atoi(ann["dapr.io/graceful-shutdown-seconds"])
	if err != nil {
		t.Errorf("%s: dapr.io/graceful-shutdown-seconds %q is not a number", d, ann["dapr.io/graceful-shutdown-seconds"])
	}
	if term, ok := get(d.obj, "spec", "template", "spec", "terminationGracePeriodSeconds").(int); ok && term <= grace {
		t.Errorf("%s: terminationGracePeriodSeconds %d does not outlast the sidecar's graceful shutdown (%ds)", d, term, grace)
	}

	pod := get(d.obj, "spec", "template", "spec")
	containers := list(get(pod, "containers"))
	if len(containers) != 1 {
		t.Fatalf("%s: %d containers, want the app's only (the injector adds daprd)", d, len(containers))
	}
	c := containers[0]
	where := d.String() + " container"

	if img, wantImg := str(get(c, "image")), "fabrikam/"+a.ID+":latest"; img != wantImg {
		t.Errorf("%s: image %q, want the placeholder %q that overlays replace", where, img, wantImg)
	}
	var port string
	for _, p := range list(get(c, "ports")) {
		if fmt.Sprint(get(p, "containerPort")) == appPort {
			port = str(get(p, "name"))
		}
	}
	if port == "" {
		t.Errorf("%s: no containerPort %s", where, appPort)
	}
	env := map[string]string{}
	for _, e := range list(get(c, "env")) {
		if get(e, "valueFrom") != nil {
			continue
		}
		v, ok := get(e, "value").(string)
		if !ok {
			t.Errorf("%s: env %s value %v is not a string: quote it", where, str(get(e, "name")), get(e, "value"))
		}
		env[str(get(e, "name"))] = v
	}
	if env["APP_PORT"] != appPort {
		t.Errorf("%s: APP_PORT %q, want %s (dapr.io/app-port)", where, env["APP_PORT"], appPort)
	}
	if v, ok := env["FAULT_INJECTION"]; ok && v != "off" {
		t.Errorf("%s: FAULT_INJECTION=%q; fault injection is for tests only", where, v)
	}

	for _, probe := range []string{"readinessProbe", "livenessProbe"} {
		p := get(c, probe, "httpGet")
		target := fmt.Sprint(get(p, "port"))
		if str(get(p, "path")) != "/healthz" || (target != appPort && target != port) {
			t.Errorf("%s: %s is not an HTTP GET of /healthz on the app port", where, probe)
		}
	}

	podSC, sc := get(pod, "securityContext"), get(c, "securityContext")
	if get(podSC, "runAsNonRoot") != true && get(sc, "runAsNonRoot") != true {
		t.Errorf("%s: runAsNonRoot is not set", where)
	}
	if get(sc, "readOnlyRootFilesystem") != true {
		t.Errorf("%s: readOnlyRootFilesystem is not true", where)
	}
	if get(sc, "allowPrivilegeEscalation") != false {
		t.Errorf("%s: allowPrivilegeEscalation is not false", where)
	}
	if !slices.Contains(list(get(sc, "capabilities", "drop")), any("ALL")) {
		t.Errorf("%s: capabilities do not drop ALL", where)
	}
	for _, k := range []string{"requests", "limits"} {
		for _, r := range []string{"cpu", "memory"} {
			if get(c, "resources", k, r) == nil {
				t.Errorf("%s: no resources.%s.%s", where, k, r)
			}
		}
	}
}

func checkService(t *testing.T, svc, d doc) {
	t.Helper()
	selector := strMap(t, svc.String()+" selector", get(svc.obj, "spec", "selector"))
	podLabels := strMap(t, d.String()+" pod labels", get(d.obj, "spec", "template", "metadata", "labels"))
	if len(selector) == 0 || !subset(selector, podLabels) {
		t.Errorf("%s: selector %v does not select %s's pods %v", svc, selector, d, podLabels)
	}
	ports := list(get(svc.obj, "spec", "ports"))
	if len(ports) == 0 {
		t.Fatalf("%s: no ports", svc)
	}
	for _, p := range ports {
		target := fmt.Sprint(get(p, "targetPort"))
		if target != appPort && target != "http" {
			t.Errorf("%s: targetPort %s is not the app's port (%s or \"http\")", svc, target, appPort)
		}
	}
}

func subset(small, big map[string]string) bool {
	for k, v := range small {
		if big[k] != v {
			return false
		}
	}
	return true
}

// TestComponentSets checks that each component set under k8s/components
// defines exactly the components the apps use, under the names every local
// profile uses, so that swapping the broker changes component files only.
func TestComponentSets(t *testing.T) {
	tr := loadTree(t)
	want := []string{"pubsub", "statestore"}
	for _, dir := range dirsUnder(t, tr.root, "components") {
		if path.Base(dir) == "shared" {
			continue
		}
		if got := names(ofKind(parseDir(t, tr.root, dir), "Component")); !reflect.DeepEqual(got, want) {
			t.Errorf("local profile %s: components %v, want %v", dir, got, want)
		}
	}
	sets := dirsUnder(t, tr.root, "k8s/components")
	if len(sets) == 0 {
		t.Fatal("no component set under k8s/components")
	}
	for _, dir := range sets {
		t.Run(path.Base(dir), func(t *testing.T) {
			comps := ofKind(tr.resolve(t, dir), "Component")
			if got := names(comps); !reflect.DeepEqual(got, want) {
				t.Errorf("components %v, want exactly %v", got, want)
			}
			for _, c := range comps {
				checkSecrets(t, c)
			}
		})
	}
}

// secretItems are component metadata that must come from a Secret.
var secretItems = map[string]bool{
	"redisHost": true, "redisPassword": true, "connectionString": true,
	"storageAccountKey": true, "storageConnectionString": true, "masterKey": true,
}

func checkSecrets(t *testing.T, c doc) {
	t.Helper()
	refs := 0
	for _, m := range list(get(c.obj, "spec", "metadata")) {
		n := str(get(m, "name"))
		ref := get(m, "secretKeyRef")
		if ref != nil {
			refs++
			if str(get(ref, "name")) == "" || str(get(ref, "key")) == "" {
				t.Errorf("%s: %s's secretKeyRef needs a name and a key", c, n)
			}
			if get(m, "value") != nil {
				t.Errorf("%s: %s has both a value and a secretKeyRef", c, n)
			}
		} else if secretItems[n] {
			t.Errorf("%s: %s is written in the manifest; take it from a Secret (secretKeyRef)", c, n)
		}
	}
	if refs > 0 && str(get(c.obj, "auth", "secretStore")) != "kubernetes" {
		t.Errorf("%s: uses secretKeyRef but auth.secretStore is %q, want kubernetes", c, str(get(c.obj, "auth", "secretStore")))
	}
}

// TestOverlays checks that each overlay picks exactly one component set,
// that the Secrets its components read are generated or documented, and the
// sizes and image tags each environment promises.
func TestOverlays(t *testing.T) {
	tr := loadTree(t)
	apps := loadApps(t, tr.root)
	readme, err := os.ReadFile(filepath.Join(tr.root, "k8s", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	overlays := dirsUnder(t, tr.root, "k8s/overlays")
	if len(overlays) == 0 {
		t.Fatal("no overlay under k8s/overlays")
	}
	for _, dir := range overlays {
		t.Run(path.Base(dir), func(t *testing.T) {
			k := tr.kustomizations[dir]
			var sets []string
			for _, r := range slices.Concat(k.Resources, k.Components) {
				if p := path.Join(dir, r); strings.HasPrefix(p, "k8s/components/") {
					sets = append(sets, p)
				}
			}
			if len(sets) != 1 {
				t.Fatalf("uses component sets %v, want exactly one", sets)
			}
			docs := tr.resolve(t, dir)
			if got := names(ofKind(docs, "Component")); !slices.Contains(got, "pubsub") || !slices.Contains(got, "statestore") {
				t.Errorf("components %v lack pubsub or statestore", got)
			}

			// Every Secret a component reads is generated here or documented.
			generated := map[string]bool{}
			for _, g := range k.SecretGenerator {
				for _, l := range g.Literals {
					key, _, _ := strings.Cut(l, "=")
					generated[g.Name+"/"+key] = true
				}
			}
			for _, c := range ofKind(docs, "Component") {
				for _, m := range list(get(c.obj, "spec", "metadata")) {
					ref := get(m, "secretKeyRef")
					if ref == nil {
						continue
					}
					name, key := str(get(ref, "name")), str(get(ref, "key"))
					if generated[name+"/"+key] {
						continue
					}
					if !bytes.Contains(readme, []byte("create secret generic "+name)) ||
						!bytes.Contains(readme, []byte("--from-literal="+key+"=")) {
						t.Errorf("%s reads Secret %s key %s, which the overlay does not generate and k8s/README.md does not show how to create", c, name, key)
					}
				}
			}

			images := map[string]image{}
			for _, im := range k.Images {
				images[im.Name] = im
			}
			for _, a := range apps {
				im, ok := images["fabrikam/"+a.ID]
				if !ok {
					t.Errorf("images: no entry for fabrikam/%s, which would run :latest", a.ID)
					continue
				}
				if im.Digest == "" && (im.NewTag == "" || im.NewTag == "latest") {
					t.Errorf("images: fabrikam/%s has neither a digest nor a tag other than latest", a.ID)
				}
			}
			checkEnvironment(t, path.Base(dir), k, docs, apps)
		})
	}
}

// releaseTag is what a pinned image tag looks like: a semantic version.
var releaseTag = regexp.MustCompile(`^v?\d+\.\d+\.\d+`)

func checkEnvironment(t *testing.T, env string, k kustomization, docs []doc, apps []app) {
	t.Helper()
	counts := map[string]int{}
	for _, r := range k.Replicas {
		counts[r.Name] = r.Count
	}
	switch env {
	case "dev":
		for _, a := range apps {
			if c, ok := counts[a.ID]; ok && c != 1 {
				t.Errorf("replicas: %s has %d, want 1 in dev", a.ID, c)
			}
		}
		for _, im := range k.Images {
			if im.NewTag != "dev" {
				t.Errorf("images: %s tag %q, want dev", im.Name, im.NewTag)
			}
		}
	case "prod":
		for _, im := range k.Images {
			if im.Digest == "" && (im.NewTag == "dev" || !releaseTag.MatchString(im.NewTag)) {
				t.Errorf("images: %s tag %q is not a pinned release", im.Name, im.NewTag)
			}
		}
		hpas := byName(ofKind(docs, "HorizontalPodAutoscaler"))
		for _, id := range []string{"ingestion", "scheduler", "delivery"} {
			n := counts[id]
			if h, ok := hpas[id]; ok {
				n, _ = get(h.obj, "spec", "minReplicas").(int)
			}
			if n < 2 || n > 3 {
				t.Errorf("%s runs %d replicas (or HPA minimum), want 2 to 3", id, n)
			}
		}
		h, ok := hpas["ingestion"]
		if !ok {
			t.Fatal("no HorizontalPodAutoscaler for ingestion")
		}
		if str(get(h.obj, "spec", "scaleTargetRef", "kind")) != "Deployment" || str(get(h.obj, "spec", "scaleTargetRef", "name")) != "ingestion" {
			t.Errorf("%s does not scale Deployment ingestion", h)
		}
		cpu := false
		for _, m := range list(get(h.obj, "spec", "metrics")) {
			cpu = cpu || str(get(m, "resource", "name")) == "cpu"
		}
		if !cpu {
			t.Errorf("%s does not scale on CPU", h)
		}
		if _, fixed := counts["ingestion"]; fixed {
			t.Errorf("replicas: ingestion has a fixed count beside its HPA")
		}
		pdbs := ofKind(docs, "PodDisruptionBudget")
		for _, id := range []string{"ingestion", "scheduler", "delivery"} {
			found := false
			for _, p := range pdbs {
				sel := strMap(t, p.String(), get(p.obj, "spec", "selector", "matchLabels"))
				found = found || (len(sel) > 0 && subset(sel, map[string]string{"app.kubernetes.io/name": id}))
			}
			if !found {
				t.Errorf("no PodDisruptionBudget selects %s", id)
			}
		}
	}
}

// TestSharedResourcesMatchLocalStack checks that the Subscriptions, the
// cron binding and the Resiliency in k8s/base say what the local stack's do.
func TestSharedResourcesMatchLocalStack(t *testing.T) {
	tr := loadTree(t)
	base := tr.resolve(t, "k8s/base")
	shared := parseDir(t, tr.root, "components/shared")

	compare := func(kind string, local, k8s []doc, fields ...string) {
		t.Helper()
		l, k := byName(ofKind(local, kind)), byName(ofKind(k8s, kind))
		if len(l) == 0 {
			t.Errorf("no %s in the local stack to compare with", kind)
		}
		if got, want := names(ofKind(k8s, kind)), names(ofKind(local, kind)); !reflect.DeepEqual(got, want) {
			t.Errorf("%s names in k8s/base %v, want %v as locally", kind, got, want)
		}
		for name, ld := range l {
			kd, ok := k[name]
			if !ok {
				continue
			}
			for _, f := range fields {
				if !reflect.DeepEqual(ld.obj[f], kd.obj[f]) {
					t.Errorf("%s %q: %s differs\n k8s:   %v (%s)\n local: %v (%s)", kind, name, f, kd.obj[f], kd.file, ld.obj[f], ld.file)
				}
			}
		}
	}
	compare("Subscription", shared, base, "apiVersion", "spec", "scopes")
	var baseBindings []doc
	for _, d := range ofKind(base, "Component") {
		if strings.HasPrefix(str(get(d.obj, "spec", "type")), "bindings.") {
			baseBindings = append(baseBindings, d)
		}
	}
	compare("Component", shared, baseBindings, "spec", "scopes") // the cron binding
	compare("Resiliency", parseDir(t, tr.root, "resiliency"), base, "spec", "scopes")

	// The topics, routes and dead-letter topics, spelled out for a reader of
	// a failure rather than left inside a deep comparison.
	for _, s := range ofKind(base, "Subscription") {
		if str(get(s.obj, "spec", "pubsubname")) != "pubsub" || str(get(s.obj, "spec", "topic")) == "" ||
			str(get(s.obj, "spec", "routes", "default")) == "" || str(get(s.obj, "spec", "deadLetterTopic")) == "" {
			t.Errorf("%s: wants pubsubname pubsub, a topic, a default route and a dead-letter topic", s)
		}
	}
}

// TestConfiguration checks the sidecar Configuration every app names.
func TestConfiguration(t *testing.T) {
	tr := loadTree(t)
	base := tr.resolve(t, "k8s/base")
	cfg, ok := byName(ofKind(base, "Configuration"))["fabrikam"]
	if !ok {
		t.Fatal("no Configuration fabrikam in k8s/base")
	}
	if v := get(cfg.obj, "spec", "tracing", "samplingRate"); v != "0.1" {
		t.Errorf("tracing.samplingRate %#v, want the string \"0.1\"", v)
	}
	if str(get(cfg.obj, "spec", "tracing", "otel", "endpointAddress")) == "" {
		t.Error("tracing.otel.endpointAddress is empty")
	}
	if get(cfg.obj, "spec", "metrics", "enabled") != true {
		t.Error("metrics.enabled is not true")
	}
	ns := byName(ofKind(base, "Namespace"))
	if _, ok := ns[namespace]; !ok {
		t.Errorf("no Namespace %s in k8s/base", namespace)
	}
}

// call is one service invocation the apps make through their sidecars.
type call struct {
	caller, callee, verb, path, source string
}

// calls lists every invocation in the code (paths with sample ids, query
// strings left out: the sidecar matches the path alone). TestCallTable
// keeps it in step with the source.
var calls = []call{
	{"ingestion", "scheduler", "GET", "/api/transactions/d-1", "apps/ingestion/main.go: request status"},
	{"ingestion", "scheduler", "GET", "/api/transactions", "apps/ingestion/main.go: request status, id in the query"},
	{"scheduler", "account", "GET", "/api/accounts/contoso", "internal/workflow: step 1"},
	{"scheduler", "thirdparty", "PUT", "/api/thirdpartydeliveries/d-1", "internal/workflow: step 2"},
	{"scheduler", "package", "PUT", "/api/packages/pkg-42", "internal/workflow: step 3"},
	{"scheduler", "drone", "PUT", "/api/dronedeliveries/d-1", "internal/workflow: step 4, reschedule"},
	{"scheduler", "delivery", "PUT", "/api/deliveries/d-1", "internal/workflow: step 5"},
	{"scheduler", "delivery", "PATCH", "/api/deliveries/d-1", "internal/workflow: reschedule"},
	{"scheduler", "delivery", "DELETE", "/api/deliveries/d-1", "internal/workflow: undo (canceled)"},
	{"scheduler", "delivery", "PUT", "/api/deliveries/d-1/failure", "internal/workflow: undo (failed)"},
	{"scheduler", "drone", "DELETE", "/api/dronedeliveries/d-1", "internal/workflow: undo"},
	{"scheduler", "package", "DELETE", "/api/packages/pkg-42", "internal/workflow: undo"},
	{"scheduler", "thirdparty", "DELETE", "/api/thirdpartydeliveries/d-1", "internal/workflow: undo"},
	{"supervisor", "scheduler", "GET", "/api/transactions", "apps/supervisor: sweep lists transactions"},
	{"supervisor", "scheduler", "PUT", "/api/transactions/d-1/compensation", "apps/supervisor: record compensation"},
	{"supervisor", "scheduler", "POST", "/api/transactions/d-1/resume", "apps/supervisor: resume stuck"},
	{"supervisor", "delivery", "PUT", "/api/deliveries/d-1/failure", "internal/workflow: undo (failed)"},
	{"supervisor", "delivery", "DELETE", "/api/deliveries/d-1", "internal/workflow: undo"},
	{"supervisor", "drone", "DELETE", "/api/dronedeliveries/d-1", "internal/workflow: undo"},
	{"supervisor", "package", "DELETE", "/api/packages/pkg-42", "internal/workflow: undo"},
	{"supervisor", "thirdparty", "DELETE", "/api/thirdpartydeliveries/d-1", "internal/workflow: undo"},
	// The steps and undo operations address resources with the id in the
	// query (internal/workflow byID), so the sidecar sees the collection path.
	{"scheduler", "account", "GET", "/api/accounts", "internal/workflow: step 1"},
	{"scheduler", "thirdparty", "PUT", "/api/thirdpartydeliveries", "internal/workflow: step 2"},
	{"scheduler", "package", "PUT", "/api/packages", "internal/workflow: step 3"},
	{"scheduler", "drone", "PUT", "/api/dronedeliveries", "internal/workflow: step 4, reschedule"},
	{"scheduler", "delivery", "PUT", "/api/deliveries", "internal/workflow: step 5"},
	{"scheduler", "delivery", "PATCH", "/api/deliveries", "internal/workflow: reschedule"},
	{"scheduler", "delivery", "DELETE", "/api/deliveries", "internal/workflow: undo (canceled)"},
	{"scheduler", "delivery", "PUT", "/api/failed-deliveries", "internal/workflow: undo (failed)"},
	{"scheduler", "drone", "DELETE", "/api/dronedeliveries", "internal/workflow: undo"},
	{"scheduler", "package", "DELETE", "/api/packages", "internal/workflow: undo"},
	{"scheduler", "thirdparty", "DELETE", "/api/thirdpartydeliveries", "internal/workflow: undo"},
	{"supervisor", "delivery", "PUT", "/api/failed-deliveries", "internal/workflow: undo (failed)"},
	{"supervisor", "delivery", "DELETE", "/api/deliveries", "internal/workflow: undo"},
	{"supervisor", "drone", "DELETE", "/api/dronedeliveries", "internal/workflow: undo"},
	{"supervisor", "package", "DELETE", "/api/packages", "internal/workflow: undo"},
	{"supervisor", "thirdparty", "DELETE", "/api/thirdpartydeliveries", "internal/workflow: undo"},
	// Ids as the apps escape them still match.
	{"scheduler", "account", "GET", "/api/accounts/adventure-works", "internal/workflow: step 1"},
	{"scheduler", "package", "PUT", "/api/packages/pkg%2F7", "internal/workflow: step 3, escaped id"},
}

// denied are calls no app makes, which the policies must refuse.
var denied = []call{
	{caller: "ingestion", verb: "PUT", path: "/api/transactions/d-1/compensation"},
	{caller: "ingestion", verb: "POST", path: "/api/transactions/d-1/resume"},
	{caller: "ingestion", verb: "GET", path: "/api/accounts/contoso"},
	{caller: "ingestion", verb: "PUT", path: "/api/deliveries/d-1"},
	{caller: "scheduler", verb: "POST", path: "/api/transactions/d-1/resume"},
	{caller: "scheduler", verb: "PUT", path: "/api/accounts/contoso"},
	{caller: "supervisor", verb: "PUT", path: "/api/packages/pkg-42"},
	{caller: "supervisor", verb: "PUT", path: "/api/dronedeliveries/d-1"},
	{caller: "supervisor", verb: "GET", path: "/api/accounts/contoso"},
	{caller: "account", verb: "GET", path: "/api/transactions/d-1"},
	{caller: "delivery", verb: "GET", path: "/api/accounts/contoso"},
	{caller: "drone", verb: "DELETE", path: "/api/deliveries/d-1"},
}

// TestAccessControl checks the Configuration's allow-list: a policy for
// every app that invokes another, allowing each call the apps make (matched
// the way Dapr 1.18 matches, see aclTrie), and nothing beyond those apps.
func TestAccessControl(t *testing.T) {
	tr := loadTree(t)
	apps := loadApps(t, tr.root)
	known := map[string]bool{}
	for _, a := range apps {
		known[a.ID] = true
	}
	cfg, ok := byName(ofKind(tr.resolve(t, "k8s/base"), "Configuration"))["fabrikam"]
	if !ok {
		t.Fatal("no Configuration fabrikam in k8s/base")
	}
	ac := parseACL(t, get(cfg.obj, "spec", "accessControl"))
	if ac.defaultAction != "deny" {
		t.Errorf("accessControl.defaultAction %q, want deny", ac.defaultAction)
	}
	if ac.trustDomain != "public" {
		t.Errorf("accessControl.trustDomain %q, want public", ac.trustDomain)
	}

	callers, callees := map[string]bool{}, map[string]bool{}
	for _, c := range calls {
		callers[c.caller], callees[c.callee] = true, true
		for _, id := range []string{c.caller, c.callee} {
			if !known[id] {
				t.Errorf("call table names app-id %q, which dapr.yaml does not list", id)
			}
		}
		if !ac.allowed(c.caller, namespace, "public", c.verb, c.path) {
			t.Errorf("denied: %s → %s %s %s (%s)", c.caller, c.callee, c.verb, c.path, c.source)
		}
	}
	for _, c := range denied {
		if ac.allowed(c.caller, namespace, "public", c.verb, c.path) {
			t.Errorf("allowed, though no app makes it: %s %s %s", c.caller, c.verb, c.path)
		}
	}
	for _, id := range []string{"scheduler", "account", "thirdparty", "package", "drone", "delivery"} {
		if !callees[id] {
			t.Errorf("no call to %s in the call table", id)
		}
	}
	// The identity must be this namespace's and this trust domain's.
	if ac.allowed("scheduler", "default", "public", "GET", "/api/accounts/contoso") {
		t.Error("a scheduler from another namespace is allowed")
	}
	if ac.allowed("scheduler", namespace, "other", "GET", "/api/accounts/contoso") {
		t.Error("a scheduler from another trust domain is allowed")
	}

	for id, p := range ac.policies {
		if !callers[id] {
			t.Errorf("policy for %s, which invokes nothing: drop it", id)
		}
		if p.namespace != namespace || p.trustDomain != ac.trustDomain {
			t.Errorf("policy %s: namespace %q, trust domain %q; want %q, %q", id, p.namespace, p.trustDomain, namespace, ac.trustDomain)
		}
		if p.defaultAction != "deny" {
			t.Errorf("policy %s: defaultAction %q, want deny", id, p.defaultAction)
		}
		for _, problem := range p.problems {
			t.Errorf("policy %s: %s", id, problem)
		}
	}
	for id := range callers {
		if _, ok := ac.policies[id]; !ok {
			t.Errorf("no policy for %s, which invokes other apps", id)
		}
	}
}

// TestCallTable keeps the call table in step with the code: every
// invocation written with a literal method and path in apps/ and internal/
// must be in it, or the allow-list would be checked against calls that are
// not the ones made.
func TestCallTable(t *testing.T) {
	root := repoRoot(t)
	re := regexp.MustCompile(`http\.Method([A-Za-z]+),\s*(?:byID\()?"(/api/[^"?]*)`)
	found := 0
	for _, dir := range []string{"apps", "internal"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			for _, m := range re.FindAllStringSubmatch(string(b), -1) {
				found++
				verb, prefix := strings.ToUpper(m[1]), m[2]
				ok := slices.ContainsFunc(calls, func(c call) bool {
					return c.verb == verb && strings.HasPrefix(c.path, prefix)
				})
				if !ok {
					rel, _ := filepath.Rel(root, p)
					t.Errorf("%s: %s %s… is not in the call table; add it there and allow it in k8s/base/configuration.yaml", rel, verb, prefix)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if found == 0 {
		t.Error("found no invocation in the source; the pattern no longer matches how the apps invoke")
	}
}

// acl is the accessControl section of a Configuration.
type acl struct {
	defaultAction, trustDomain string
	policies                   map[string]*aclPolicy
}

type aclPolicy struct {
	defaultAction, trustDomain, namespace string
	ops                                   *aclNode
	problems                              []string
}

func parseACL(t *testing.T, v any) *acl {
	t.Helper()
	if v == nil {
		t.Fatal("the Configuration has no accessControl")
	}
	a := &acl{
		defaultAction: strings.ToLower(str(get(v, "defaultAction"))),
		trustDomain:   str(get(v, "trustDomain")),
		policies:      map[string]*aclPolicy{},
	}
	if a.trustDomain == "" {
		a.trustDomain = "public"
	}
	for _, pv := range list(get(v, "policies")) {
		id := str(get(pv, "appId"))
		if _, dup := a.policies[id]; dup {
			t.Errorf("two policies for %s; Dapr keeps one", id)
		}
		p := &aclPolicy{
			defaultAction: strings.ToLower(str(get(pv, "defaultAction"))),
			trustDomain:   str(get(pv, "trustDomain")),
			namespace:     str(get(pv, "namespace")),
			ops:           &aclNode{seg: "/"},
		}
		var opNames []string
		for _, ov := range list(get(pv, "operations")) {
			name := str(get(ov, "name"))
			if !strings.HasPrefix(name, "/") {
				name = "/" + name
			}
			name = strings.ToLower(name)
			op := &aclOp{name: name, verbs: map[string]string{}, action: strings.ToLower(str(get(ov, "action")))}
			if op.action != "allow" && op.action != "deny" {
				p.problems = append(p.problems, fmt.Sprintf("operation %s: action %q", name, op.action))
			}
			verbs := list(get(ov, "httpVerb"))
			if len(verbs) == 0 {
				p.problems = append(p.problems, fmt.Sprintf("operation %s lists no httpVerb", name))
			}
			for _, vb := range verbs {
				s := str(vb)
				if s != strings.ToUpper(s) {
					p.problems = append(p.problems, fmt.Sprintf("operation %s: verb %q is matched upper-case only", name, s))
				}
				op.verbs[s] = op.action
			}
			segs := strings.Split(name, "/")
			for i, s := range segs[1 : len(segs)-1] {
				if strings.Contains(s, "*") {
					p.problems = append(p.problems, fmt.Sprintf("operation %s: wildcard in segment %d never matches in Dapr 1.18; only the last segment may be * or **", name, i+1))
				}
			}
			for _, other := range opNames {
				switch {
				case other == name:
					p.problems = append(p.problems, fmt.Sprintf("operation %s listed twice; Dapr keeps the first only, put all its verbs in one entry", name))
				case strings.HasPrefix(name, other+"/"), strings.HasPrefix(other, name+"/"):
					p.problems = append(p.problems, fmt.Sprintf("operations %s and %s: the shorter one takes every path below it", other, name))
				}
			}
			opNames = append(opNames, name)
			p.ops.put(name, op)
		}
		a.policies[id] = p
	}
	return a
}

// allowed mirrors Dapr 1.18's decision for an HTTP invocation
// (pkg/acl.isOperationAllowedByAccessControlPolicy), given the caller's
// SPIFFE identity and an already normalized path.
func (a *acl) allowed(caller, ns, trustDomain, verb, p string) bool {
	action := a.defaultAction
	pol, ok := a.policies[caller]
	if !ok || pol.trustDomain != trustDomain || pol.namespace != ns {
		return action == "allow"
	}
	if pol.defaultAction != "" {
		action = pol.defaultAction
	}
	op := pol.ops.search(strings.ToLower(path.Clean("/" + p)))
	if op != nil {
		if v, ok := op.verbs[verb]; ok {
			action = v
		} else if v, ok := op.verbs["*"]; ok {
			action = v
		}
	}
	return action == "allow"
}

// aclNode is one path segment of Dapr's operation trie. The matching below
// follows Dapr 1.18's pkg/config/acl_trie.go rule for rule, quirks included:
// a "/*" node matches only as the last segment, "/**" matches any number of
// segments, and a node carrying an operation answers for every path below
// it.
type aclNode struct {
	seg  string
	op   *aclOp
	kids []*aclNode
}

type aclOp struct {
	name, action string
	verbs        map[string]string
}

func (n *aclNode) put(name string, op *aclOp) {
	parts := strings.Split(name, "/")
	node := n
	for i, part := range parts {
		if i == 0 {
			continue
		}
		seg := "/" + part
		var sub *aclNode
		for _, k := range node.kids {
			if k.seg == seg {
				sub = k
				break
			}
		}
		last := i == len(parts)-1
		switch {
		case sub == nil:
			sub = &aclNode{seg: seg}
			if last {
				sub.op = op
			}
			node.kids = append(node.kids, sub)
			node = sub
		case last:
			if sub.op == nil {
				sub.op = op
			}
		default:
			node = sub
		}
	}
}

func (n *aclNode) search(p string) *aclOp {
	parts := strings.Split(p, "/")
	node := n
	for i, part := range parts {
		if i == 0 {
			continue
		}
		last := i == len(parts)-1
		node = node.find("/"+part, last)
		if node == nil {
			return nil
		}
		if node.op != nil {
			if !last && strings.HasSuffix(node.seg, "/*") && !strings.HasSuffix(node.seg, "/**") {
				continue
			}
			return node.op
		} else if last {
			node = node.find("/*", last)
			if node != nil && node.op != nil {
				return node.op
			}
		}
	}
	return nil
}

func (n *aclNode) find(seg string, last bool) *aclNode {
	for _, k := range n.kids {
		if k.seg == seg {
			return k
		}
		if k.seg == "/*" {
			if last {
				return k
			}
			continue
		}
		if k.seg == "/**" {
			return k
		}
		if globMatch(seg, k.seg) {
			return k
		}
	}
	return nil
}

// globMatch reports whether target matches pattern, where "*" stands for
// any run of characters.
func globMatch(target, pattern string) bool {
	m := make([][]bool, len(target)+1)
	for i := range m {
		m[i] = make([]bool, len(pattern)+1)
	}
	m[0][0] = true
	for j := 1; j <= len(pattern) && pattern[j-1] == '*'; j++ {
		m[0][j] = true
	}
	for i := 1; i <= len(target); i++ {
		for j := 1; j <= len(pattern); j++ {
			if pattern[j-1] == '*' {
				m[i][j] = m[i][j-1] || m[i-1][j]
			} else if target[i-1] == pattern[j-1] {
				m[i][j] = m[i-1][j-1]
			}
		}
	}
	return m[len(target)][len(pattern)]
}

// TestACLTrie pins the matching rules the allow-list is written against,
// taken from Dapr 1.18's own tests of pkg/config and pkg/acl.
func TestACLTrie(t *testing.T) {
	root := &aclNode{seg: "/"}
	ops := map[string]*aclOp{}
	for _, name := range []string{"/op3/a/*", "/op7/a/b/*", "/op7/a/b/c/f", "/op7/a/b*", "/op7/c/**", "/x/*/y", "/p", "/p/q"} {
		ops[name] = &aclOp{name: name}
		root.put(name, ops[name])
	}
	for p, want := range map[string]string{
		"/op3/a":       "/op3/a/*",
		"/op3/a/b":     "/op3/a/*",
		"/op3/b/b":     "",
		"/op7/a/b/c":   "/op7/a/b/*",
		"/op7/a/b/c/d": "",
		"/op7/a/b/c/f": "/op7/a/b/c/f",
		"/op7/a/bc":    "/op7/a/b*",
		"/op7/c/d/e":   "/op7/c/**",
		"/op7/c":       "/op7/c/**",
		"/x/z/y":       "", // a mid-path "*" never matches
		"/p/q":         "/p",
		"/p/r/s":       "/p",
	} {
		got := ""
		if op := root.search(p); op != nil {
			got = op.name
		}
		if got != want {
			t.Errorf("search(%s) = %q, want %q", p, got, want)
		}
	}
}
