package geo_test

import (
	"math"
	"testing"

	"github.com/fabrikam/dronedelivery/internal/geo"
)

func TestMoveToward(t *testing.T) {
	t.Parallel()
	seattle := geo.Location{Latitude: 47.6062, Longitude: -122.3321}
	bellevue := geo.Location{Latitude: 47.6101, Longitude: -122.2015, Altitude: 50}
	total := geo.DistanceKm(seattle, bellevue)
	tests := []struct {
		name        string
		km          float64
		wantArrived bool
		wantFromA   float64
	}{
		{"no step", 0, false, 0},
		{"negative step", -1, false, 0},
		{"a kilometre", 1, false, 1},
		{"most of the way", total - 0.01, false, total - 0.01},
		{"exactly there", total, true, total},
		{"past it", total + 5, true, total},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, arrived := geo.MoveToward(seattle, bellevue, tt.km)
			if arrived != tt.wantArrived {
				t.Errorf("arrived = %v, want %v", arrived, tt.wantArrived)
			}
			if d := geo.DistanceKm(seattle, got); math.Abs(d-tt.wantFromA) > 0.01 {
				t.Errorf("moved %.3f km, want %.3f", d, tt.wantFromA)
			}
			if got.Altitude != 0 {
				t.Errorf("altitude %v, want 0: MoveToward leaves altitude to the caller", got.Altitude)
			}
		})
	}
	if got, _ := geo.MoveToward(seattle, bellevue, total+1); got.Latitude != bellevue.Latitude || got.Longitude != bellevue.Longitude {
		t.Errorf("arrival at %+v, want exactly %+v", got, bellevue)
	}
}
