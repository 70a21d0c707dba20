// Package tracking tests drone flights and delivery tracking end to end:
// drones fly (sped up 60 times), the delivery service derives stages, ETAs
// and a live stream from their reports and publishes delivery events, and
// the history service keeps each delivery's timeline.
package tracking

import (
	"encoding/json"
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
	if err := writeFleet(fleet, fleetSize); err != nil {
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

// writeFleet writes n drones on a grid over the service area, 60 km/h each,
// so that every flight's legs are a few kilometres: a few seconds of test.
func writeFleet(path string, n int) error {
	type base struct {
		Name      string  `json:"name"`
		Latitude  float64 `json:"latitude"`
		Longitude float64 `json:"longitude"`
	}
	type drone struct {
		ID           string  `json:"id"`
		Base         base    `json:"base"`
		MaxPayloadKg float64 `json:"maxPayloadKg"`
		SpeedKmh     float64 `json:"speedKmh"`
	}
	fleet := make([]drone, n)
	for i := range fleet {
		fleet[i] = drone{
			ID:           fmt.Sprintf("track-drone-%02d", i),
			Base:         base{Name: "grid", Latitude: 47.50 + float64(i%6)*0.05, Longitude: -122.40 + float64(i/6)*0.03},
			MaxPayloadKg: 20,
			SpeedKmh:     60,
		}
	}
	b, err := json.Marshal(fleet)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}
