// Package geo holds coordinates, great-circle distances and the small
// gazetteer that turns the free-text place names of the original API into
// coordinates.
package geo

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Location is a point on Earth. Altitude is in metres above ground.
type Location struct {
	Name      string  `json:"name,omitempty"`
	Latitude  float64 `json:"latitude"`
	Longitude float64 `json:"longitude"`
	Altitude  float64 `json:"altitude,omitempty"`
}

const earthRadiusKm = 6371.0088

// DistanceKm returns the great-circle distance between a and b.
func DistanceKm(a, b Location) float64 {
	rad := func(d float64) float64 { return d * math.Pi / 180 }
	dLat := rad(b.Latitude - a.Latitude)
	dLon := rad(b.Longitude - a.Longitude)
	h := math.Sin(dLat/2)*math.Sin(dLat/2) +
		math.Cos(rad(a.Latitude))*math.Cos(rad(b.Latitude))*math.Sin(dLon/2)*math.Sin(dLon/2)
	return 2 * earthRadiusKm * math.Asin(math.Min(1, math.Sqrt(h)))
}

// Interpolate returns the point a fraction f (0..1) of the way from a to b.
// Linear interpolation of coordinates is accurate enough over drone ranges.
func Interpolate(a, b Location, f float64) Location {
	f = math.Max(0, math.Min(1, f))
	return Location{
		Latitude:  a.Latitude + (b.Latitude-a.Latitude)*f,
		Longitude: a.Longitude + (b.Longitude-a.Longitude)*f,
	}
}

// Valid reports whether the coordinates are on Earth.
func (l Location) Valid() error {
	if math.IsNaN(l.Latitude) || l.Latitude < -90 || l.Latitude > 90 {
		return fmt.Errorf("latitude %v is outside -90..90", l.Latitude)
	}
	if math.IsNaN(l.Longitude) || l.Longitude < -180 || l.Longitude > 180 {
		return fmt.Errorf("longitude %v is outside -180..180", l.Longitude)
	}
	return nil
}

// ErrUnknownPlace reports a free-text location that is neither coordinates
// nor a place the gazetteer knows.
var ErrUnknownPlace = errors.New("unknown place")

// Gazetteer resolves place names, case-insensitively, to coordinates.
type Gazetteer map[string]Location

// DefaultGazetteer returns the built-in places: Fabrikam's service area around
// Seattle, plus a few cities beyond drone range.
func DefaultGazetteer() Gazetteer {
	places := []Location{
		{Name: "Seattle", Latitude: 47.6062, Longitude: -122.3321},
		{Name: "Bellevue", Latitude: 47.6101, Longitude: -122.2015},
		{Name: "Redmond", Latitude: 47.6740, Longitude: -122.1215},
		{Name: "Kirkland", Latitude: 47.6769, Longitude: -122.2060},
		{Name: "Renton", Latitude: 47.4829, Longitude: -122.2171},
		{Name: "Bothell", Latitude: 47.7601, Longitude: -122.2054},
		{Name: "Issaquah", Latitude: 47.5301, Longitude: -122.0326},
		{Name: "Everett", Latitude: 47.9790, Longitude: -122.2021},
		{Name: "Tacoma", Latitude: 47.2529, Longitude: -122.4443},
		{Name: "Sea-Tac Airport", Latitude: 47.4502, Longitude: -122.3088},
		{Name: "Portland", Latitude: 45.5152, Longitude: -122.6784},
		{Name: "Spokane", Latitude: 47.6588, Longitude: -117.4260},
		{Name: "Vancouver BC", Latitude: 49.2827, Longitude: -123.1207},
	}
	g := make(Gazetteer, len(places))
	for _, p := range places {
		g[normalize(p.Name)] = p
	}
	return g
}

// Names lists the places the gazetteer knows, sorted.
func (g Gazetteer) Names() []string {
	names := make([]string, 0, len(g))
	for _, l := range g {
		names = append(names, l.Name)
	}
	sort.Strings(names)
	return names
}

// Resolve turns text into a location: "lat,lon" coordinates are taken as
// they are; anything else must be a gazetteer name.
func (g Gazetteer) Resolve(text string) (Location, error) {
	text = strings.TrimSpace(text)
	if l, ok, err := parseCoordinates(text); ok {
		if err != nil {
			return Location{}, err
		}
		return l, nil
	}
	if l, ok := g[normalize(text)]; ok {
		return l, nil
	}
	return Location{}, fmt.Errorf("%w %q: give \"lat,lon\" or one of %s", ErrUnknownPlace, text, strings.Join(g.Names(), ", "))
}

// ResolveJSON resolves a location given either as a JSON string (a name or
// "lat,lon") or as an object {"latitude":…, "longitude":…, "altitude":…}.
func (g Gazetteer) ResolveJSON(raw json.RawMessage) (Location, error) {
	raw = json.RawMessage(strings.TrimSpace(string(raw)))
	if len(raw) == 0 || string(raw) == "null" {
		return Location{}, errors.New("is required")
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return Location{}, err
		}
		if strings.TrimSpace(s) == "" {
			return Location{}, errors.New("is required")
		}
		return g.Resolve(s)
	case '{':
		var obj struct {
			Name      string   `json:"name"`
			Latitude  *float64 `json:"latitude"`
			Longitude *float64 `json:"longitude"`
			Altitude  float64  `json:"altitude"`
		}
		dec := json.NewDecoder(strings.NewReader(string(raw)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&obj); err != nil {
			return Location{}, fmt.Errorf("must be {\"latitude\":number,\"longitude\":number}: %w", err)
		}
		if obj.Latitude == nil || obj.Longitude == nil {
			return Location{}, errors.New("needs both latitude and longitude")
		}
		l := Location{Name: obj.Name, Latitude: *obj.Latitude, Longitude: *obj.Longitude, Altitude: obj.Altitude}
		return l, l.Valid()
	default:
		return Location{}, errors.New("must be a place name, \"lat,lon\", or {\"latitude\":…,\"longitude\":…}")
	}
}

func parseCoordinates(s string) (Location, bool, error) {
	lat, lon, ok := strings.Cut(s, ",")
	if !ok {
		return Location{}, false, nil
	}
	la, err1 := strconv.ParseFloat(strings.TrimSpace(lat), 64)
	lo, err2 := strconv.ParseFloat(strings.TrimSpace(lon), 64)
	if err1 != nil || err2 != nil {
		// "Seattle, WA" is a name with a comma, not broken coordinates.
		return Location{}, false, nil
	}
	l := Location{Latitude: la, Longitude: lo}
	return l, true, l.Valid()
}

func normalize(s string) string {
	return strings.ToLower(strings.Join(strings.Fields(s), " "))
}

// MoveToward returns the point km kilometres from a on the way to b, and
// whether that reaches b; then it returns b itself, so that arrivals land
// exactly on the destination rather than a rounding error short of it.
// Altitude is not interpolated: callers decide how high a point flies.
func MoveToward(a, b Location, km float64) (Location, bool) {
	total := DistanceKm(a, b)
	if km >= total {
		return Location{Latitude: b.Latitude, Longitude: b.Longitude}, true
	}
	if km <= 0 {
		return Location{Latitude: a.Latitude, Longitude: a.Longitude}, false
	}
	return Interpolate(a, b, km/total), false
}
