// Package harness starts the real stack for end-to-end tests (real daprd
// sidecars, a real broker, the real apps on free ports) and offers the small
// HTTP and broker helpers the tests share.
package harness

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/fabrikam/dronedelivery/tools/launcher"
)

// Env is a running stack shared by the tests of one package.
type Env struct {
	Stack   *launcher.Stack
	Profile string
	LogPath string
	Started time.Duration
}

// Options tune the stack a package starts.
type Options struct {
	// Apps limits the stack; empty means every app in dapr.yaml.
	Apps []string
	// Env adds environment variables per app id ("*" for all).
	Env map[string]map[string]string
}

// RepoRoot is the repository root, found from this file's location.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Profile is the component profile under test: $E2E_PROFILE, default local.
func Profile() string {
	if p := os.Getenv("E2E_PROFILE"); p != "" {
		return p
	}
	return "local"
}

// Start starts a stack on free ports with its logs in a file under dir.
func Start(ctx context.Context, dir string, o Options) (*Env, error) {
	daprd, err := launcher.FindDaprd()
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "stack.log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	began := time.Now()
	s, err := launcher.Start(ctx, launcher.Options{
		Root:      RepoRoot(),
		Profile:   Profile(),
		Daprd:     daprd,
		DataDir:   filepath.Join(dir, "data"),
		BinDir:    filepath.Join(dir, "bin"),
		FreePorts: true,
		Apps:      o.Apps,
		Env:       o.Env,
		Output:    syncWriter{f},
	})
	if err != nil {
		return nil, fmt.Errorf("start %s stack (log %s): %w", Profile(), logPath, err)
	}
	return &Env{Stack: s, Profile: Profile(), LogPath: logPath, Started: time.Since(began)}, nil
}

// Main runs a test package against one shared stack: it starts the stack,
// runs the tests, stops every process and, when something failed, prints
// the end of the stack's log. Use it from TestMain.
func Main(m *testing.M, o Options, set func(*Env)) int {
	dir, err := os.MkdirTemp("", "fabrikam-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	env, err := Start(ctx, dir, o)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("e2e: %s stack healthy in %s\n", env.Profile, env.Started.Round(time.Millisecond))
	set(env)
	code := m.Run()
	env.Stack.Stop()
	if code != 0 {
		env.PrintLogTail(os.Stderr, 150)
	} else {
		_ = os.RemoveAll(dir)
	}
	return code
}

// PrintLogTail writes the last n lines of the stack's log.
func (e *Env) PrintLogTail(w io.Writer, n int) {
	b, err := os.ReadFile(e.LogPath)
	if err != nil {
		return
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	fmt.Fprintf(w, "--- last %d lines of %s ---\n%s\n", len(lines), e.LogPath, strings.Join(lines, "\n"))
}

// syncWriter keeps the log file writes whole; the launcher serialises lines.
type syncWriter struct{ f *os.File }

func (w syncWriter) Write(p []byte) (int, error) { return w.f.Write(p) }
