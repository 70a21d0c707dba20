package launcher

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// process is one child: an app or a sidecar.
type process struct {
	name string // "ingestion" or "ingestion-dapr"
	cmd  *exec.Cmd
	out  *logSink

	mu       sync.Mutex
	tail     []string
	done     chan struct{}
	exitErr  error
	stopping bool
}

const tailLines = 40

// startProcess launches the process in a session of its own, so neither a
// Ctrl-C nor a hangup of the terminal reaches it directly: only the launcher
// gets those, and it stops children in order. (daprd takes SIGHUP as "restart
// in place", which fails under load.) Pdeathsig kills the child if the
// launcher itself dies without cleaning up.
func startProcess(name, dir string, env []string, out *logSink, onExit func(*process), argv ...string) (*process, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
	p := &process{name: name, cmd: cmd, out: out, done: make(chan struct{})}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.line(sc.Text())
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	go func() {
		err := cmd.Wait()
		_ = pw.Close()
		<-copied
		p.mu.Lock()
		p.exitErr = err
		p.mu.Unlock()
		close(p.done)
		if onExit != nil {
			onExit(p)
		}
	}()
	return p, nil
}

func (p *process) line(s string) {
	p.mu.Lock()
	p.tail = append(p.tail, s)
	if len(p.tail) > tailLines {
		p.tail = p.tail[len(p.tail)-tailLines:]
	}
	p.mu.Unlock()
	p.out.write(p.name, s)
}

// Tail returns the last lines the process wrote.
func (p *process) Tail() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.tail...)
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *process) expectedExit() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stopping
}

// stop sends SIGTERM and waits up to grace for the process to exit, then
// kills it. It returns once the process is reaped.
func (p *process) stop(grace time.Duration) {
	p.mu.Lock()
	p.stopping = true
	p.mu.Unlock()
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.out.write(p.name, fmt.Sprintf("did not stop within %s; killing it", grace))
		p.kill()
	}
}

// kill sends SIGKILL to the process and waits until it is reaped.
func (p *process) kill() {
	p.mu.Lock()
	p.stopping = true
	p.mu.Unlock()
	if !p.exited() {
		_ = p.cmd.Process.Kill()
	}
	<-p.done
}

func (p *process) pid() int { return p.cmd.Process.Pid }

// exitError describes how the process ended.
func (p *process) exitError() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exitErr == nil {
		return errors.New("exited with status 0")
	}
	return p.exitErr
}

// logSink writes every child's lines to one writer, prefixed with the
// child's name and, on a terminal, coloured per app.
type logSink struct {
	mu    sync.Mutex
	w     io.Writer
	color bool
	width int
	hues  map[string]string
}

var palette = []string{"36", "32", "33", "35", "34", "91", "92", "93", "94", "95", "96"}

func newLogSink(w io.Writer, color bool, names []string) *logSink {
	s := &logSink{w: w, color: color, hues: map[string]string{}}
	for i, n := range names {
		s.hues[n] = palette[i%len(palette)]
		if l := len(n) + len("-dapr"); l > s.width {
			s.width = l
		}
	}
	return s
}

func (s *logSink) write(name, line string) {
	app := strings.TrimSuffix(name, "-dapr")
	prefix := fmt.Sprintf("%-*s |", s.width, name)
	if s.color {
		prefix = "\x1b[" + s.hues[app] + "m" + prefix + "\x1b[0m"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Fprintf(s.w, "%s %s\n", prefix, line)
}

// waitFor polls check until it succeeds, the process dies or the deadline
// passes.
func waitFor(ctx context.Context, p *process, deadline time.Time, check func(context.Context) error) error {
	var last error
	for {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		last = check(cctx)
		cancel()
		if last == nil {
			return nil
		}
		if p.exited() {
			return fmt.Errorf("%s exited during start-up: %w", p.name, p.exitError())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not healthy in time: %w", p.name, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
