// Package tracking tests drone flights and delivery tracking end to end:
// drones fly (sped up 60 times), the delivery service derives stages, ETAs
// and a live stream from their reports and publishes delivery events, and
// the history service keeps each delivery's timeline.
package tracking

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/fabrikam/dronedelivery/tests/harness"
)

var env *harness.Env

// Simulation settings of the stack: a minute of flight per second of test,
// a report every 200ms (12 simulated seconds apart).
const (
	timeScale = 60
	tick      = "200ms"
	// fleetSize leaves room for the 50 drones of the load test.
	fleetSize = 60
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fabrikam-tracking-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fleet := filepath.Join(dir, "fleet.json")
	if err := harness.WriteFleet(fleet, "track-drone", fleetSize, harness.Grid{Rows: 6, LatStep: 0.05, LonStep: 0.03}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := harness.Main(m, harness.Options{
		// Every app but the supervisor: nothing here fails on purpose, and
		// two cores run the stack and fifty drones.
		Apps: []string{"ingestion", "scheduler", "account", "thirdparty", "package", "drone", "delivery", "deliveryhistory"},
		Env: map[string]map[string]string{
			"drone": {
				"FLEET_FILE":        fleet,
				"FLIGHT_TIME_SCALE": fmt.Sprint(timeScale),
				"FLIGHT_TICK":       tick,
			},
			"delivery": {"LIVE_POLL_INTERVAL": "100ms"},
		},
	}, func(e *harness.Env) { env = e })
	_ = os.RemoveAll(dir)
	os.Exit(code)
}
