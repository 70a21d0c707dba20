package launcher

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// DaprVersion is the pinned Dapr runtime. tools/daprd builds it; change both
// together.
const DaprVersion = "1.18.0"

// CacheDir is where the pinned daprd and sentry are built: outside any clone,
// keyed by version, so every clone on the machine (CI's included) reuses one
// build.
func CacheDir() (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("locate cache dir: %w", err)
	}
	return filepath.Join(base, "fabrikam-dapr", DaprVersion), nil
}

// FindDaprd returns the daprd to run: $DAPRD if set, else ~/.dapr/bin/daprd
// when it is a 1.18 build, else the pinned build in CacheDir. It does not
// build anything: `make daprd` does.
func FindDaprd() (string, error) {
	if p := os.Getenv("DAPRD"); p != "" {
		return p, nil
	}
	if home, err := os.UserHomeDir(); err == nil {
		p := filepath.Join(home, ".dapr", "bin", "daprd")
		if v, err := daprdVersion(p); err == nil && strings.HasPrefix(v, "1.18.") {
			return p, nil
		}
	}
	dir, err := CacheDir()
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, "daprd")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("no daprd %s at %s: run `make daprd` (or set DAPRD)", DaprVersion, p)
	}
	return p, nil
}

func daprdVersion(path string) (string, error) {
	if _, err := os.Stat(path); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--version").Output()
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}
