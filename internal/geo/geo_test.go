package geo_test

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/fabrikam/dronedelivery/internal/geo"
)

func TestDistanceKm(t *testing.T) {
	t.Parallel()
	g := geo.DefaultGazetteer()
	place := func(name string) geo.Location {
		t.Helper()
		l, err := g.Resolve(name)
		if err != nil {
			t.Fatalf("Resolve(%q): %v", name, err)
		}
		return l
	}
	tests := []struct {
		name    string
		a, b    geo.Location
		want    float64
		tolerKm float64
	}{
		{"Seattle-Bellevue", place("Seattle"), place("Bellevue"), 9.8, 0.2},
		{"Seattle-Portland", place("Seattle"), place("Portland"), 233, 3},
		{"same point", place("Redmond"), place("Redmond"), 0, 1e-9},
		// One degree of latitude along a meridian is about 111.2 km.
		{"one degree of latitude", geo.Location{Latitude: 0}, geo.Location{Latitude: 1}, 111.19, 0.05},
		// Antipodes: half the circumference, pi * R.
		{"antipodes", geo.Location{Latitude: 0, Longitude: 0}, geo.Location{Latitude: 0, Longitude: 180}, math.Pi * 6371.0088, 0.01},
		// Across the antimeridian is short, not most of the way round.
		{"across antimeridian", geo.Location{Latitude: 0, Longitude: 179.5}, geo.Location{Latitude: 0, Longitude: -179.5}, 111.19, 0.05},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := geo.DistanceKm(tt.a, tt.b)
			if math.Abs(got-tt.want) > tt.tolerKm {
				t.Errorf("DistanceKm = %.3f km, want %.3f ± %.3f km", got, tt.want, tt.tolerKm)
			}
			if back := geo.DistanceKm(tt.b, tt.a); math.Abs(back-got) > 1e-9 {
				t.Errorf("DistanceKm(b, a) = %.6f, want symmetric %.6f", back, got)
			}
		})
	}
}

func TestResolve(t *testing.T) {
	t.Parallel()
	g := geo.DefaultGazetteer()
	seattle := geo.Location{Name: "Seattle", Latitude: 47.6062, Longitude: -122.3321}
	seaTac := geo.Location{Name: "Sea-Tac Airport", Latitude: 47.4502, Longitude: -122.3088}
	tests := []struct {
		name string
		text string
		want geo.Location
	}{
		{"exact name", "Seattle", seattle},
		{"lower case", "seattle", seattle},
		{"upper case", "SEATTLE", seattle},
		{"surrounding space", "  Seattle\t", seattle},
		{"inner spaces collapsed", "  sea-tac    AIRPORT ", seaTac},
		{"coordinates", "47.61,-122.2", geo.Location{Latitude: 47.61, Longitude: -122.2}},
		{"coordinates with spaces", " 47.61 , -122.2 ", geo.Location{Latitude: 47.61, Longitude: -122.2}},
		{"coordinates at the limits", "-90,180", geo.Location{Latitude: -90, Longitude: 180}},
		{"integer coordinates", "0,0", geo.Location{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := g.Resolve(tt.text)
			if err != nil {
				t.Fatalf("Resolve(%q): got error %v, want %+v", tt.text, err, tt.want)
			}
			if got != tt.want {
				t.Errorf("Resolve(%q) = %+v, want %+v", tt.text, got, tt.want)
			}
		})
	}
}

func TestResolveErrors(t *testing.T) {
	t.Parallel()
	g := geo.DefaultGazetteer()
	tests := []struct {
		name        string
		text        string
		unknown     bool   // the error must wrap ErrUnknownPlace
		errContains string // and mention this
	}{
		{"unknown name", "Atlantis", true, `"Atlantis"`},
		{"name with comma", "Seattle, WA", true, `"Seattle, WA"`},
		{"three numbers", "1,2,3", true, `"1,2,3"`},
		{"empty", "", true, "unknown place"},
		{"latitude too large", "91,0", false, "latitude 91"},
		{"latitude too small", "-90.5,0", false, "latitude -90.5"},
		{"longitude too large", "0,180.01", false, "longitude 180.01"},
		{"longitude too small", "0,-181", false, "longitude -181"},
		{"NaN latitude", "NaN,0", false, "latitude NaN"},
		{"infinite longitude", "0,Inf", false, "longitude +Inf"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := g.Resolve(tt.text)
			if err == nil {
				t.Fatalf("Resolve(%q) = %+v, want an error", tt.text, got)
			}
			if is := errors.Is(err, geo.ErrUnknownPlace); is != tt.unknown {
				t.Errorf("errors.Is(%v, ErrUnknownPlace) = %v, want %v", err, is, tt.unknown)
			}
			if !strings.Contains(err.Error(), tt.errContains) {
				t.Errorf("error %q does not mention %q", err, tt.errContains)
			}
		})
	}
}

func TestUnknownPlaceListsKnownNames(t *testing.T) {
	t.Parallel()
	g := geo.DefaultGazetteer()
	_, err := g.Resolve("Atlantis")
	if err == nil {
		t.Fatal("got nil error, want unknown place")
	}
	for _, name := range []string{"Seattle", "Bellevue", "Sea-Tac Airport"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not list known place %q", err, name)
		}
	}
}

func TestNamesSorted(t *testing.T) {
	t.Parallel()
	names := geo.DefaultGazetteer().Names()
	if got, want := len(names), 13; got != want {
		t.Fatalf("got %d names, want %d: %v", got, want, names)
	}
	for i := 1; i < len(names); i++ {
		if names[i-1] > names[i] {
			t.Fatalf("names not sorted: %q before %q", names[i-1], names[i])
		}
	}
}

func TestResolveJSON(t *testing.T) {
	t.Parallel()
	g := geo.DefaultGazetteer()
	tests := []struct {
		name string
		raw  string
		want geo.Location
	}{
		{"place name", `"Bellevue"`, geo.Location{Name: "Bellevue", Latitude: 47.6101, Longitude: -122.2015}},
		{"place name with padding", ` "  bellevue " `, geo.Location{Name: "Bellevue", Latitude: 47.6101, Longitude: -122.2015}},
		{"coordinate string", `"47.5,-122.1"`, geo.Location{Latitude: 47.5, Longitude: -122.1}},
		{"object", `{"latitude":47.5,"longitude":-122.1}`, geo.Location{Latitude: 47.5, Longitude: -122.1}},
		{"object with name and altitude", `{"name":"Depot","latitude":47.5,"longitude":-122.1,"altitude":12.5}`,
			geo.Location{Name: "Depot", Latitude: 47.5, Longitude: -122.1, Altitude: 12.5}},
		{"object at origin", `{"latitude":0,"longitude":0}`, geo.Location{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := g.ResolveJSON(json.RawMessage(tt.raw))
			if err != nil {
				t.Fatalf("ResolveJSON(%s): got error %v, want %+v", tt.raw, err, tt.want)
			}
			if got != tt.want {
				t.Errorf("ResolveJSON(%s) = %+v, want %+v", tt.raw, got, tt.want)
			}
		})
	}
}

func TestResolveJSONErrors(t *testing.T) {
	t.Parallel()
	g := geo.DefaultGazetteer()
	tests := []struct {
		name        string
		raw         string
		unknown     bool
		errContains string
	}{
		{"absent", ``, false, "is required"},
		{"null", `null`, false, "is required"},
		{"blank string", `"   "`, false, "is required"},
		{"number", `42`, false, "must be a place name"},
		{"boolean", `true`, false, "must be a place name"},
		{"array", `[47.5,-122.1]`, false, "must be a place name"},
		{"unknown name", `"Atlantis"`, true, "Atlantis"},
		{"name with comma", `"Seattle, WA"`, true, "Seattle, WA"},
		{"object missing longitude", `{"latitude":47.5}`, false, "needs both latitude and longitude"},
		{"object missing latitude", `{"longitude":-122.1}`, false, "needs both latitude and longitude"},
		{"object with null latitude", `{"latitude":null,"longitude":-122.1}`, false, "needs both latitude and longitude"},
		{"object with unknown field", `{"lat":47.5,"lon":-122.1}`, false, "unknown field"},
		{"object with string latitude", `{"latitude":"47.5","longitude":-122.1}`, false, "must be {"},
		{"object latitude out of range", `{"latitude":95,"longitude":0}`, false, "latitude 95"},
		{"object longitude out of range", `{"latitude":0,"longitude":-200}`, false, "longitude -200"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := g.ResolveJSON(json.RawMessage(tt.raw))
			if err == nil {
				t.Fatalf("ResolveJSON(%s) = %+v, want an error", tt.raw, got)
			}
			if is := errors.Is(err, geo.ErrUnknownPlace); is != tt.unknown {
				t.Errorf("errors.Is(%v, ErrUnknownPlace) = %v, want %v", err, is, tt.unknown)
			}
			if !strings.Contains(err.Error(), tt.errContains) {
				t.Errorf("error %q does not mention %q", err, tt.errContains)
			}
		})
	}
}

func TestValid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		l    geo.Location
		ok   bool
	}{
		{"origin", geo.Location{}, true},
		{"north pole", geo.Location{Latitude: 90}, true},
		{"date line west", geo.Location{Longitude: -180}, true},
		{"past north pole", geo.Location{Latitude: 90.0001}, false},
		{"past date line", geo.Location{Longitude: 180.0001}, false},
		{"NaN latitude", geo.Location{Latitude: math.NaN()}, false},
		{"NaN longitude", geo.Location{Longitude: math.NaN()}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.l.Valid()
			if (err == nil) != tt.ok {
				t.Errorf("Valid(%+v) = %v, want ok=%v", tt.l, err, tt.ok)
			}
		})
	}
}

func TestInterpolate(t *testing.T) {
	t.Parallel()
	a := geo.Location{Latitude: 10, Longitude: 20}
	b := geo.Location{Latitude: 20, Longitude: 40}
	tests := []struct {
		f    float64
		want geo.Location
	}{
		{0, a},
		{1, b},
		{0.5, geo.Location{Latitude: 15, Longitude: 30}},
		{-1, a}, // clamped
		{2, b},  // clamped
	}
	for _, tt := range tests {
		if got := geo.Interpolate(a, b, tt.f); got != tt.want {
			t.Errorf("Interpolate(a, b, %v) = %+v, want %+v", tt.f, got, tt.want)
		}
	}
}
