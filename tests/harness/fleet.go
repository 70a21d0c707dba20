package harness

import (
	"encoding/json"
	"fmt"
	"os"
)

// Grid lays a test fleet's bases out south-west to north-east from
// 47.5,-122.4 (south Seattle): Rows bases per column, LatStep and LonStep
// degrees apart.
type Grid struct {
	Rows             int
	LatStep, LonStep float64
}

// WriteFleet writes a fleet file for the drone service (FLEET_FILE) with n
// drones named prefix-000…, each carrying 20 kg at 60 km/h.
func WriteFleet(path, prefix string, n int, g Grid) error {
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
			ID: fmt.Sprintf("%s-%03d", prefix, i),
			Base: base{Name: "grid",
				Latitude:  47.5 + float64(i%g.Rows)*g.LatStep,
				Longitude: -122.4 + float64(i/g.Rows)*g.LonStep},
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
