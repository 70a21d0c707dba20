package main

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/fabrikam/dronedelivery/internal/geo"
	"github.com/fabrikam/dronedelivery/internal/messages"
	"github.com/fabrikam/dronedelivery/internal/sidecar"
)

// Drone is the drone record. AssignedTo holds the delivery the drone is
// working for, or "" when it is free; it is the one source of truth for
// occupancy, so claiming a drone is a single ETag-guarded write. Flight is
// the delivery's flight, planned or under way: it is written together with
// AssignedTo and cleared only when the drone is back on the ground, so a
// drone is never free while it flies. Seq counts the drone's status reports
// across flights and restarts.
type Drone struct {
	ID           string       `json:"id"`
	Base         geo.Location `json:"base"`
	MaxPayloadKg float64      `json:"maxPayloadKg"`
	SpeedKmh     float64      `json:"speedKmh"`
	AssignedTo   string       `json:"assignedTo"`
	Flight       *Flight      `json:"flight,omitempty"`
	Seq          uint64       `json:"seq,omitempty"`
}

func droneKey(id string) string { return "drone:" + id }

// Status is where an assignment is in its life.
type Status string

// Assignment statuses. Released and completed are final: a delivery that
// was canceled, failed or flown never gets a drone again.
const (
	StatusAssigned  Status = "assigned"
	StatusReleased  Status = "released"
	StatusCompleted Status = "completed"
)

// Assignment binds a delivery to a drone. A released assignment created by a
// DELETE for a delivery that never had a drone is a tombstone: it has no drone
// and no places, and only exists to stop a late PUT from assigning one.
type Assignment struct {
	DeliveryID  string       `json:"deliveryId"`
	DroneID     string       `json:"droneId,omitempty"`
	Status      Status       `json:"status"`
	Pickup      geo.Location `json:"pickup,omitzero"`
	Dropoff     geo.Location `json:"dropoff,omitzero"`
	PickupTime  time.Time    `json:"pickupTime,omitzero"`
	PickupETA   time.Time    `json:"pickupEta,omitzero"`
	DeliveryETA time.Time    `json:"deliveryEta,omitzero"`
	AssignedAt  time.Time    `json:"assignedAt,omitzero"`
	ReleasedAt  *time.Time   `json:"releasedAt,omitempty"`
	// CompletedAt and Confirmation are set when the drone lands back at
	// base after dropping the package off.
	CompletedAt  *time.Time             `json:"completedAt,omitempty"`
	Confirmation *messages.Confirmation `json:"confirmation,omitempty"`
}

func assignmentKey(deliveryID string) string { return "assignment:" + deliveryID }

// etas returns when drone d, starting from its base now, reaches pickup (not
// before pickupTime: the parcel is not ready earlier) and then dropoff.
// scale is how much faster than real time flights are simulated.
func etas(d Drone, pickup, dropoff geo.Location, pickupTime, now time.Time, scale float64) (pickupETA, deliveryETA time.Time) {
	kmh := d.SpeedKmh * scale
	// Whole seconds: sub-second precision on a flight estimate is noise.
	pickupETA = now.Add(flightTime(geo.DistanceKm(d.Base, pickup), kmh)).UTC().Round(time.Second)
	if pickupTime.After(pickupETA) {
		pickupETA = pickupTime.UTC()
	}
	deliveryETA = pickupETA.Add(flightTime(geo.DistanceKm(pickup, dropoff), kmh)).Round(time.Second)
	return pickupETA, deliveryETA
}

func flightTime(km, kmh float64) time.Duration {
	return time.Duration(km / kmh * float64(time.Hour))
}

//go:embed data/fleet.json
var embeddedFleet string

// loadFleet reads the fleet from path, or from the embedded file when path is
// empty.
func loadFleet(path string) ([]Drone, error) {
	if path == "" {
		fleet, err := parseFleet(strings.NewReader(embeddedFleet))
		if err != nil {
			return nil, fmt.Errorf("embedded fleet: %w", err)
		}
		return fleet, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read fleet file: %w", err)
	}
	fleet, err := parseFleet(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("fleet file %s: %w", path, err)
	}
	return fleet, nil
}

// parseFleet decodes and checks a fleet list. A bad fleet file stops the
// service at start rather than producing drones that cannot fly (a zero
// speed would make every ETA infinite).
func parseFleet(r io.Reader) ([]Drone, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var fleet []Drone
	if err := dec.Decode(&fleet); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	if len(fleet) == 0 {
		return nil, errors.New("the fleet is empty")
	}
	seen := make(map[string]bool, len(fleet))
	for i, d := range fleet {
		switch {
		case strings.TrimSpace(d.ID) == "":
			return nil, fmt.Errorf("drone %d: id is required", i)
		case seen[d.ID]:
			return nil, fmt.Errorf("drone %s: duplicate id", d.ID)
		case d.MaxPayloadKg <= 0:
			return nil, fmt.Errorf("drone %s: maxPayloadKg must be positive", d.ID)
		case d.SpeedKmh <= 0:
			return nil, fmt.Errorf("drone %s: speedKmh must be positive", d.ID)
		case d.AssignedTo != "" || d.Flight != nil || d.Seq != 0:
			return nil, fmt.Errorf("drone %s: assignedTo, flight and seq are state, not fleet data", d.ID)
		}
		if err := d.Base.Valid(); err != nil {
			return nil, fmt.Errorf("drone %s: base: %w", d.ID, err)
		}
		seen[d.ID] = true
	}
	return fleet, nil
}

// Seeding backoff. The sidecar only starts once the app port is open, so the
// first attempts fail while it comes up; short waits keep startup quick.
const (
	seedMinBackoff = 200 * time.Millisecond
	seedMaxBackoff = 2 * time.Second
)

// seed creates the record of every fleet drone that has none, retrying until
// all exist or ctx ends, and then marks the API ready. Existing records are
// left alone: they carry assignments, and other replicas seed the same keys.
func (a *api) seed(ctx context.Context) error {
	pending := a.fleet
	wait := seedMinBackoff
	for {
		var failed []Drone
		var lastErr error
		// Records that exist are skipped without a write: a refused create
		// is retried by the sidecar's resiliency policy before it fails, and
		// a restart would wait that long for every drone of the fleet.
		existing, err := a.drones.GetBulk(ctx, a.fleetKeys)
		if err != nil {
			failed, lastErr = pending, err
			pending = nil
		}
		for _, d := range pending {
			if _, ok := existing[droneKey(d.ID)]; ok {
				continue
			}
			err := a.drones.Create(ctx, droneKey(d.ID), d)
			if err != nil && !errors.Is(err, sidecar.ErrConflict) {
				failed = append(failed, d)
				lastErr = err
			}
		}
		if len(failed) == 0 {
			a.ready.Store(true)
			a.log.InfoContext(ctx, "fleet seeded", "drones", len(a.fleet))
			return nil
		}
		a.log.Log(ctx, seedLogLevel(wait), "seeding the fleet failed; retrying",
			"pending", len(failed), "retryIn", wait.String(), "err", lastErr)
		pending = failed
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(wait*2, seedMaxBackoff)
	}
}

// seedLogLevel keeps the expected failures of the first second, while the
// sidecar starts, out of the warning log.
func seedLogLevel(wait time.Duration) slog.Level {
	if wait < seedMaxBackoff {
		return slog.LevelDebug
	}
	return slog.LevelWarn
}
