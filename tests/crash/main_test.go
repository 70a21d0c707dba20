// Package crash kills processes of a running stack in the middle of work and
// proves nothing accepted is lost or done twice. These tests kill and
// restart processes, so the package runs a stack of its own.
package crash

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/fabrikam/dronedelivery/tests/harness"
)

var env *harness.Env

// fleetSize leaves a drone for every request these tests make, so every
// request can end scheduled and double bookings would show.
const fleetSize = 700

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fabrikam-fleet-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fleet := filepath.Join(dir, "fleet.json")
	if err := harness.WriteFleet(fleet, "crash-drone", fleetSize, harness.Grid{Rows: 25, LatStep: 0.01, LonStep: 0.01}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := harness.Main(m, harness.Options{
		Env: map[string]map[string]string{
			"drone":      {"FLEET_FILE": fleet},
			"supervisor": {"STUCK_AFTER": "4s"},
			// Instead of the 2m default, so a message the broker lost is
			// published again well within the tests' deadlines.
			"ingestion": {"REDRIVE_AFTER": "10s"},
			"*":         {"FAULT_INJECTION": "on"},
		},
	}, func(e *harness.Env) { env = e })
	_ = os.RemoveAll(dir)
	os.Exit(code)
}
