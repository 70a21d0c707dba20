package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestEmbeddedFleet(t *testing.T) {
	fleet, err := loadFleet("")
	if err != nil {
		t.Fatal(err)
	}
	if len(fleet) != 12 {
		t.Fatalf("%d drones, want 12", len(fleet))
	}
	for _, d := range fleet {
		b := d.Base
		if b.Name == "" || b.Latitude < 47.45 || b.Latitude > 47.78 || b.Longitude < -122.45 || b.Longitude > -122.02 {
			t.Errorf("%s: base %+v outside the service area", d.ID, b)
		}
		if d.MaxPayloadKg < 5 || d.MaxPayloadKg > 20 {
			t.Errorf("%s: maxPayloadKg %v outside 5..20", d.ID, d.MaxPayloadKg)
		}
		if d.SpeedKmh < 50 || d.SpeedKmh > 90 {
			t.Errorf("%s: speedKmh %v outside 50..90", d.ID, d.SpeedKmh)
		}
	}
}

func TestFleetFileOverride(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fleet.json")
	data := `[{"id":"x","base":{"latitude":47.6,"longitude":-122.3},"maxPayloadKg":3,"speedKmh":40}]`
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	fleet, err := loadFleet(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(fleet) != 1 || fleet[0].ID != "x" || fleet[0].SpeedKmh != 40 {
		t.Fatalf("fleet = %+v", fleet)
	}
	if _, err := loadFleet(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Fatal("a missing fleet file loaded")
	}
}

func TestParseFleetRejects(t *testing.T) {
	base := `"base":{"latitude":47.6,"longitude":-122.3}`
	tests := map[string]string{
		"empty":         `[]`,
		"no id":         `[{"id":"",` + base + `,"maxPayloadKg":3,"speedKmh":40}]`,
		"duplicate id":  `[{"id":"a",` + base + `,"maxPayloadKg":3,"speedKmh":40},{"id":"a",` + base + `,"maxPayloadKg":3,"speedKmh":40}]`,
		"zero speed":    `[{"id":"a",` + base + `,"maxPayloadKg":3,"speedKmh":0}]`,
		"zero payload":  `[{"id":"a",` + base + `,"maxPayloadKg":0,"speedKmh":40}]`,
		"bad base":      `[{"id":"a","base":{"latitude":99,"longitude":0},"maxPayloadKg":3,"speedKmh":40}]`,
		"assigned":      `[{"id":"a",` + base + `,"maxPayloadKg":3,"speedKmh":40,"assignedTo":"d1"}]`,
		"unknown field": `[{"id":"a",` + base + `,"maxPayloadKg":3,"speedKmh":40,"colour":"red"}]`,
		"not a list":    `{"id":"a"}`,
	}
	for name, data := range tests {
		t.Run(name, func(t *testing.T) {
			if fleet, err := parseFleet(strings.NewReader(data)); err == nil {
				t.Fatalf("accepted %+v", fleet)
			}
		})
	}
}
