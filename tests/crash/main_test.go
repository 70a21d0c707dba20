// Package crash kills processes of a running stack in the middle of work and
// proves nothing accepted is lost or done twice. These tests kill and
// restart processes, so the package runs a stack of its own.
package crash

import (
	"encoding/json"
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
	if err := writeFleet(fleet, fleetSize); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := harness.Main(m, harness.Options{
		Env: map[string]map[string]string{
			"drone":      {"FLEET_FILE": fleet},
			"supervisor": {"STUCK_AFTER": "4s"},
			"*":          {"FAULT_INJECTION": "on"},
		},
	}, func(e *harness.Env) { env = e })
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

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
			ID:           fmt.Sprintf("crash-drone-%03d", i),
			Base:         base{Name: "grid", Latitude: 47.5 + float64(i%25)*0.01, Longitude: -122.4 + float64(i/25)*0.01},
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
