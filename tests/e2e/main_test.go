// Package e2e proves the platform end to end: requests go through ingestion,
// the broker, the scheduler and the backends with real sidecars, on the
// profile named by E2E_PROFILE.
package e2e

import (
	"encoding/json"
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
	if err := writeFleet(fleet, fleetSize); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := harness.Main(m, harness.Options{
		Env: map[string]map[string]string{"drone": {"FLEET_FILE": fleet}},
	}, func(e *harness.Env) { env = e })
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// writeFleet writes n drones based on a grid around Seattle.
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
			ID:           fmt.Sprintf("e2e-drone-%03d", i),
			Base:         base{Name: "grid", Latitude: 47.5 + float64(i%16)*0.015, Longitude: -122.4 + float64(i/16)*0.02},
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
