// Package launcher tests the local launcher as a user runs it: start the
// whole stack, press Ctrl-C, and find no process left behind.
package launcher

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fabrikam/dronedelivery/tests/harness"
	"github.com/fabrikam/dronedelivery/tools/launcher"
)

func TestCtrlCStopsEverything(t *testing.T) {
	daprd, err := launcher.FindDaprd()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	root := harness.RepoRoot()
	bin := filepath.Join(dir, "launcher")
	build := exec.Command("go", "build", "-o", bin, "./tools/launcher/cmd/launcher")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build launcher: %v\n%s", err, out)
	}

	cmd := exec.Command(bin, "-profile", harness.Profile(), "-free-ports",
		"-data-dir", filepath.Join(dir, "data"), "-bin-dir", filepath.Join(dir, "bin"))
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "DAPRD="+daprd)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	began := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})

	ready := make(chan struct{})
	var tail []string
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			tail = append(tail[max(0, len(tail)-30):], line)
			if strings.Contains(line, "press Ctrl-C to stop") {
				close(ready)
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(3 * time.Minute):
		t.Fatalf("stack not ready in time; last output:\n%s", strings.Join(tail, "\n"))
	}
	startup := time.Since(began)

	children := descendants(cmd.Process.Pid)
	var daprds, apps int
	for _, pid := range children {
		if strings.HasSuffix(exeName(pid), "daprd") {
			daprds++
		} else {
			apps++
		}
	}
	if daprds == 0 || daprds != apps {
		t.Fatalf("%d sidecars and %d apps running, want one sidecar per app", daprds, apps)
	}

	stopBegan := time.Now()
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("launcher exited with %v after Ctrl-C, want 0", err)
		}
	case <-time.After(time.Minute):
		t.Fatalf("launcher still running a minute after Ctrl-C")
	}
	var left []int
	for _, pid := range children {
		if alive(pid) {
			left = append(left, pid)
		}
	}
	t.Logf("start-up to all healthy: %s (incl. build); %d processes (%d apps, %d sidecars) before Ctrl-C, %d after; stopped in %s",
		startup.Round(time.Millisecond), len(children), apps, daprds, len(left), time.Since(stopBegan).Round(time.Millisecond))
	if len(left) > 0 {
		t.Errorf("processes left after Ctrl-C: %v", left)
	}
}

// descendants lists the pids whose parent chain leads to pid.
func descendants(pid int) []int {
	parents := map[int]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// The command name may hold spaces; fields resume after the last ')'.
		fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(fields) > 1 {
			ppid, _ := strconv.Atoi(fields[1])
			parents[p] = ppid
		}
	}
	var out []int
	for p := range parents {
		for q := parents[p]; q > 1; q = parents[q] {
			if q == pid {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

func exeName(pid int) string {
	p, _ := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "exe"))
	return p
}

func alive(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	// A zombie is dead; only its parent's reaping is missing.
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(fields) > 0 && fields[0] != "Z"
}
