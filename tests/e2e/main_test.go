// Package e2e proves the platform end to end: requests go through ingestion,
// the broker, the scheduler and the backends with real sidecars, on the
// profile named by E2E_PROFILE.
package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/fabrikam/dronedelivery/tests/harness"
)

var env *harness.Env

// fleetSize is large enough for every request these tests make to get a
// drone; the scheduling tests run against the small default fleet instead.
const fleetSize = 260

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fabrikam-fleet-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fleet := filepath.Join(dir, "fleet.json")
	if err := harness.WriteFleet(fleet, "e2e-drone", fleetSize, harness.Grid{Rows: 16, LatStep: 0.015, LonStep: 0.02}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := harness.Main(m, harness.Options{
		Env: map[string]map[string]string{"drone": {"FLEET_FILE": fleet}},
	}, func(e *harness.Env) { env = e })
	_ = os.RemoveAll(dir)
	os.Exit(code)
}
