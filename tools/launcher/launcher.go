package launcher

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/fabrikam/dronedelivery/internal/messages"
)

// Options say what to run and how.
type Options struct {
	// Root is the repository root, where dapr.yaml is.
	Root string
	// Profile selects components/<Profile>: "local" (embedded JetStream and
	// SQLite) or "redis". Default "local".
	Profile string
	// Daprd is the daprd binary; FindDaprd locates the pinned one.
	Daprd string
	// DataDir holds the broker store and state databases. Default
	// <Root>/.data/<Profile>.
	DataDir string
	// BinDir receives the built apps. Default <Root>/.bin.
	BinDir string
	// FreePorts picks free ports for every process and an isolated broker
	// and Redis database, so a stack can run beside another one. Tests set it.
	FreePorts bool
	// Apps limits the stack to these app IDs; empty means all in dapr.yaml.
	Apps []string
	// Env adds environment variables to apps, by app ID ("*" for all).
	Env map[string]map[string]string
	// Output receives every process's prefixed log lines. Default os.Stdout.
	Output io.Writer
	// Color prefixes log lines with per-app colours.
	Color bool
	// StartTimeout bounds the wait for every process to be healthy.
	StartTimeout time.Duration
	// DaprdLogLevel overrides the run file's logLevel for the sidecars.
	DaprdLogLevel string
}

// App is where one app and its sidecar listen.
type App struct {
	ID               string
	AppPort          int
	DaprHTTPPort     int
	DaprGRPCPort     int
	DaprInternalPort int
	MetricsPort      int
}

// URL is the app's own base URL.
func (a App) URL() string { return "http://127.0.0.1:" + strconv.Itoa(a.AppPort) }

// DaprURL is the sidecar's HTTP API base URL.
func (a App) DaprURL() string { return "http://127.0.0.1:" + strconv.Itoa(a.DaprHTTPPort) }

// MetricsURL is the sidecar's Prometheus endpoint.
func (a App) MetricsURL() string {
	return "http://127.0.0.1:" + strconv.Itoa(a.MetricsPort) + "/metrics"
}

// Stack is a running local stack.
type Stack struct {
	opts     Options
	apps     []App
	entries  map[string]appEntry
	rf       *runFile
	sink     *logSink
	nats     *natsBroker
	redis    *redisLease
	env      map[string][]string // per app: the daprd environment
	binDir   string
	natsPort int

	mu       sync.Mutex
	procs    map[string]*process // by process name
	stopped  bool
	failures chan string
}

// Start builds the apps and starts the broker, the sidecars and the apps,
// returning once all are healthy. On failure it stops whatever it started
// and returns an error naming the process at fault with its last log lines.
func Start(ctx context.Context, opts Options) (_ *Stack, err error) {
	if opts.Profile == "" {
		opts.Profile = "local"
	}
	if opts.Output == nil {
		opts.Output = os.Stdout
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 90 * time.Second
	}
	if opts.Root == "" {
		return nil, errors.New("launcher: Root is required")
	}
	root, err := filepath.Abs(opts.Root)
	if err != nil {
		return nil, fmt.Errorf("launcher: root: %w", err)
	}
	opts.Root = root
	if opts.Daprd == "" {
		return nil, errors.New("launcher: no daprd binary given (see FindDaprd)")
	}
	if opts.DataDir == "" {
		opts.DataDir = filepath.Join(opts.Root, ".data", opts.Profile)
	}
	if opts.BinDir == "" {
		opts.BinDir = filepath.Join(opts.Root, ".bin")
	}
	rf, err := readRunFile(opts.Root)
	if err != nil {
		return nil, err
	}
	s := &Stack{
		opts: opts, rf: rf, entries: map[string]appEntry{}, env: map[string][]string{},
		procs: map[string]*process{}, failures: make(chan string, 64), binDir: opts.BinDir,
	}
	var names []string
	for _, e := range rf.Apps {
		if len(opts.Apps) > 0 && !slices.Contains(opts.Apps, e.AppID) {
			continue
		}
		s.entries[e.AppID] = e
		names = append(names, e.AppID)
	}
	s.sink = newLogSink(opts.Output, opts.Color, names)
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()

	if err := s.assignPorts(names); err != nil {
		return nil, err
	}
	if err := s.build(ctx); err != nil {
		return nil, err
	}
	brokerEnv, err := s.startBroker(ctx)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(opts.StartTimeout)
	for _, a := range s.apps {
		if err := s.startApp(a, brokerEnv); err != nil {
			return nil, err
		}
	}
	if err := s.waitHealthy(ctx, deadline); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Stack) assignPorts(names []string) error {
	var pp portPicker
	defer pp.close()
	s.natsPort = DefaultNATSPort
	if s.opts.FreePorts {
		p, err := pp.pick()
		if err != nil {
			return err
		}
		s.natsPort = p
	}
	for _, id := range names {
		e := s.entries[id]
		a := App{ID: id, AppPort: e.AppPort, DaprHTTPPort: e.DaprHTTPPort, DaprGRPCPort: e.DaprGRPCPort, MetricsPort: e.MetricsPort}
		ports := []*int{&a.DaprInternalPort}
		if s.opts.FreePorts {
			ports = append(ports, &a.AppPort, &a.DaprHTTPPort, &a.DaprGRPCPort, &a.MetricsPort)
		}
		for _, p := range ports {
			if *p != 0 && !s.opts.FreePorts {
				continue
			}
			port, err := pp.pick()
			if err != nil {
				return err
			}
			*p = port
		}
		if a.AppPort == 0 || a.DaprHTTPPort == 0 || a.DaprGRPCPort == 0 || a.MetricsPort == 0 {
			return fmt.Errorf("dapr.yaml: %s needs appPort, daprHTTPPort, daprGRPCPort and metricsPort", id)
		}
		s.apps = append(s.apps, a)
	}
	return nil
}

// build compiles every app once, in one go build, into BinDir.
func (s *Stack) build(ctx context.Context) error {
	if err := os.MkdirAll(s.binDir, 0o755); err != nil {
		return fmt.Errorf("bin dir: %w", err)
	}
	args := []string{"build", "-o", s.binDir + string(filepath.Separator)}
	for _, a := range s.apps {
		args = append(args, "./"+filepath.ToSlash(filepath.Clean(s.entries[a.ID].AppDirPath)))
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = s.opts.Root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("build apps: %w\n%s", err, out)
	}
	return nil
}

// startBroker starts what the profile needs and returns the environment
// the sidecars need to reach it.
func (s *Stack) startBroker(ctx context.Context) ([]string, error) {
	switch s.opts.Profile {
	case "local":
		subs, err := topics([]string{filepath.Join(s.opts.Root, "components", "shared")})
		if err != nil {
			return nil, err
		}
		all := append(messages.AllTopics(), subs...)
		slices.Sort(all)
		all = slices.Compact(all)
		b, err := startNATS(s.natsPort, filepath.Join(s.opts.DataDir, "nats"), all)
		if err != nil {
			return nil, err
		}
		s.nats = b
		return []string{"FABRIKAM_NATS_URL=" + b.url}, nil
	case "redis":
		if !s.opts.FreePorts {
			return nil, checkRedis(ctx)
		}
		l, err := leaseRedisDB(ctx)
		if err != nil {
			return nil, err
		}
		s.redis = l
		return []string{"FABRIKAM_REDIS_DB=" + strconv.Itoa(l.db)}, nil
	default:
		// Profiles that need nothing started here (a remote broker, say).
		return nil, nil
	}
}

func (s *Stack) startApp(a App, brokerEnv []string) error {
	e := s.entries[a.ID]
	if _, err := s.rf.resourcesPaths(s.opts.Root, e, s.opts.Profile); err != nil {
		return err
	}
	if err := os.MkdirAll(s.opts.DataDir, 0o755); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	daprEnv := append(os.Environ(), brokerEnv...)
	daprEnv = append(daprEnv,
		"FABRIKAM_STATE_DB="+filepath.Join(s.opts.DataDir, a.ID+".db"),
		"FABRIKAM_NAMERES_DB="+filepath.Join(s.opts.DataDir, "nameresolution.db"))
	s.mu.Lock()
	s.env[a.ID] = daprEnv
	s.mu.Unlock()
	if err := s.startSidecar(a); err != nil {
		return err
	}
	return s.startAppProcess(a)
}

func (s *Stack) daprdArgs(a App) []string {
	e := s.entries[a.ID]
	paths, _ := s.rf.resourcesPaths(s.opts.Root, e, s.opts.Profile)
	level := firstNonEmpty(s.opts.DaprdLogLevel, e.LogLevel, s.rf.Common.LogLevel, "info")
	args := []string{s.opts.Daprd,
		"--mode", "standalone",
		"--app-id", a.ID,
		"--app-port", strconv.Itoa(a.AppPort),
		"--app-protocol", "http",
		"--app-channel-address", "127.0.0.1",
		"--dapr-listen-addresses", "127.0.0.1",
		"--dapr-http-port", strconv.Itoa(a.DaprHTTPPort),
		"--dapr-grpc-port", strconv.Itoa(a.DaprGRPCPort),
		"--dapr-internal-grpc-port", strconv.Itoa(a.DaprInternalPort),
		"--metrics-port", strconv.Itoa(a.MetricsPort),
		"--log-level", level,
	}
	for _, p := range paths {
		args = append(args, "--resources-path", p)
	}
	if cfg := s.rf.configFile(s.opts.Root, e); cfg != "" {
		args = append(args, "--config", cfg)
	}
	args = append(args, "--config", filepath.Join(s.opts.Root, "tools", "launcher", "nameresolution.yaml"))
	if n := firstPositive(e.AppMaxConcurrency, s.rf.Common.AppMaxConcurrency); n > 0 {
		args = append(args, "--app-max-concurrency", strconv.Itoa(n))
	}
	return args
}

func (s *Stack) startSidecar(a App) error {
	s.mu.Lock()
	env := s.env[a.ID]
	s.mu.Unlock()
	p, err := startProcess(a.ID+"-dapr", s.opts.Root, env, s.sink, s.onExit, s.daprdArgs(a)...)
	if err != nil {
		return err
	}
	s.track(p)
	return nil
}

func (s *Stack) startAppProcess(a App) error {
	e := s.entries[a.ID]
	env := os.Environ()
	env = append(env,
		"APP_ID="+a.ID,
		"APP_PORT="+strconv.Itoa(a.AppPort),
		"DAPR_HTTP_PORT="+strconv.Itoa(a.DaprHTTPPort),
		"DAPR_GRPC_PORT="+strconv.Itoa(a.DaprGRPCPort),
	)
	env = append(env, envList(s.rf.Common.Env)...)
	env = append(env, envList(e.Env)...)
	env = append(env, envList(s.opts.Env["*"])...)
	env = append(env, envList(s.opts.Env[a.ID])...)
	bin := filepath.Join(s.binDir, filepath.Base(filepath.Clean(e.AppDirPath)))
	p, err := startProcess(a.ID, filepath.Join(s.opts.Root, e.AppDirPath), env, s.sink, s.onExit, bin)
	if err != nil {
		return err
	}
	s.track(p)
	return nil
}

func (s *Stack) track(p *process) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.procs[p.name] = p
}

func (s *Stack) onExit(p *process) {
	if p.expectedExit() {
		return
	}
	s.mu.Lock()
	stopped := s.stopped
	s.mu.Unlock()
	if stopped {
		return
	}
	s.sink.write(p.name, "exited unexpectedly: "+p.exitError().Error())
	select {
	case s.failures <- p.name:
	default:
	}
}

// Failures delivers the name of each process that exits without being told
// to, so a caller can report it.
func (s *Stack) Failures() <-chan string { return s.failures }

func (s *Stack) waitHealthy(ctx context.Context, deadline time.Time) error {
	errs := make(chan error, 2*len(s.apps))
	var wg sync.WaitGroup
	for _, a := range s.apps {
		wg.Add(2)
		go func() {
			defer wg.Done()
			errs <- s.WaitSidecar(ctx, a.ID, deadline)
		}()
		go func() {
			defer wg.Done()
			errs <- s.WaitApp(ctx, a.ID, deadline)
		}()
	}
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		if err != nil {
			all = append(all, err)
		}
	}
	return errors.Join(all...)
}

// WaitSidecar waits until the app's sidecar reports healthy.
func (s *Stack) WaitSidecar(ctx context.Context, id string, deadline time.Time) error {
	a := s.App(id)
	p := s.proc(id + "-dapr")
	return s.failed(p, waitFor(ctx, p, deadline, httpCheck(a.DaprURL()+"/v1.0/healthz")))
}

// WaitApp waits until the app's /healthz answers 200.
func (s *Stack) WaitApp(ctx context.Context, id string, deadline time.Time) error {
	a := s.App(id)
	p := s.proc(id)
	return s.failed(p, waitFor(ctx, p, deadline, httpCheck(a.URL()+"/healthz")))
}

// failed decorates a start-up error with the tail of the process's log.
func (s *Stack) failed(p *process, err error) error {
	if err == nil {
		return nil
	}
	tail := p.Tail()
	if len(tail) > 15 {
		tail = tail[len(tail)-15:]
	}
	return fmt.Errorf("%w\n--- last lines of %s ---\n%s", err, p.name, strings.Join(tail, "\n"))
}

func httpCheck(url string) func(context.Context) error {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("%s answered %d", url, resp.StatusCode)
		}
		return nil
	}
}

// App returns where the app listens. It panics on an unknown id: that is a
// mistake in the caller, not a condition to handle.
func (s *Stack) App(id string) App {
	for _, a := range s.apps {
		if a.ID == id {
			return a
		}
	}
	panic("launcher: no app " + id)
}

// Apps lists the running apps.
func (s *Stack) Apps() []App { return append([]App(nil), s.apps...) }

// RedisDB is the Redis database the stack uses (redis profile).
func (s *Stack) RedisDB() int {
	if s.redis == nil {
		return 0
	}
	return s.redis.db
}

// NATSURL is the embedded broker's URL (local profile).
func (s *Stack) NATSURL() string {
	if s.nats == nil {
		return ""
	}
	return s.nats.url
}

func (s *Stack) proc(name string) *process {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.procs[name]
}

// PIDs lists the process ids of every child still running.
func (s *Stack) PIDs() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for n, p := range s.procs {
		if !p.exited() {
			out[n] = p.pid()
		}
	}
	return out
}

// Kill sends SIGKILL to the app (sidecar=false) or its sidecar and waits
// until it is gone: a crash, for failure tests.
func (s *Stack) Kill(id string, sidecar bool) {
	s.proc(procName(id, sidecar)).kill()
}

// StopProcess stops the app or its sidecar gracefully.
func (s *Stack) StopProcess(id string, sidecar bool) {
	s.proc(procName(id, sidecar)).stop(15 * time.Second)
}

// Restart starts the app or its sidecar again on the same ports and waits
// until it is healthy.
func (s *Stack) Restart(ctx context.Context, id string, sidecar bool) error {
	if p := s.proc(procName(id, sidecar)); p != nil && !p.exited() {
		return fmt.Errorf("%s is still running", procName(id, sidecar))
	}
	a := s.App(id)
	deadline := time.Now().Add(s.opts.StartTimeout)
	if sidecar {
		if err := s.startSidecar(a); err != nil {
			return err
		}
		return s.WaitSidecar(ctx, id, deadline)
	}
	if err := s.startAppProcess(a); err != nil {
		return err
	}
	return s.WaitApp(ctx, id, deadline)
}

func procName(id string, sidecar bool) string {
	if sidecar {
		return id + "-dapr"
	}
	return id
}

// Stop stops the apps, then the sidecars, then the broker, each gracefully
// with a deadline, and reaps every child. It is safe to call more than once.
func (s *Stack) Stop() {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	s.stopped = true
	var apps, sidecars []*process
	for n, p := range s.procs {
		if strings.HasSuffix(n, "-dapr") {
			sidecars = append(sidecars, p)
		} else {
			apps = append(apps, p)
		}
	}
	s.mu.Unlock()
	stopAll(apps, 12*time.Second)
	stopAll(sidecars, 12*time.Second)
	if s.nats != nil {
		s.nats.stop()
	}
	if s.redis != nil {
		s.redis.release()
	}
}

func stopAll(ps []*process, grace time.Duration) {
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.stop(grace)
		}()
	}
	wg.Wait()
}

// PrintTable writes what runs where.
func (s *Stack) PrintTable(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "APP\tAPP URL\tAPP METRICS\tDAPR HTTP\tDAPR gRPC\tSIDECAR METRICS")
	apps := s.Apps()
	sort.Slice(apps, func(i, j int) bool { return apps[i].ID < apps[j].ID })
	for _, a := range apps {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t127.0.0.1:%d\t%s\n", a.ID, a.URL(), a.URL()+"/metrics", a.DaprURL(), a.DaprGRPCPort, a.MetricsURL())
	}
	tw.Flush()
	switch {
	case s.nats != nil:
		fmt.Fprintf(w, "broker: embedded NATS JetStream at %s (store %s)\n", s.nats.url, filepath.Join(s.opts.DataDir, "nats"))
	case s.opts.Profile == "redis":
		fmt.Fprintf(w, "broker and state: Redis at %s, database %d\n", redisAddr, s.RedisDB())
	}
}

func envList(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]string, 0, len(m))
	for _, k := range keys {
		out = append(out, k+"="+m[k])
	}
	return out
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

func firstPositive(ns ...int) int {
	for _, n := range ns {
		if n > 0 {
			return n
		}
	}
	return 0
}
