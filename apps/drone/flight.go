package main

import (
	"math"
	"strings"
	"time"

	"github.com/fabrikam/dronedelivery/internal/geo"
	"github.com/fabrikam/dronedelivery/internal/messages"
)

// Phase is where a flight is.
type Phase string

// Flight phases. A planned flight waits for its departure time; a landed
// flight is never stored, because landing clears the flight from the drone
// in the same write that frees it.
const (
	PhasePlanned   Phase = "planned"
	PhaseToPickup  Phase = "to-pickup"
	PhaseToDropoff Phase = "to-dropoff"
	PhaseReturning Phase = "returning"
)

// Flight is a drone's trip for one delivery, stored in the drone's record so
// that the claim of a drone, its flight plan and its progress change together
// under one ETag: a reschedule cannot rewrite the plan of a flight that has
// just departed, and a drone cannot be freed while it is in the air.
type Flight struct {
	DeliveryID           string       `json:"deliveryId"`
	Pickup               geo.Location `json:"pickup"`
	Dropoff              geo.Location `json:"dropoff"`
	PickupTime           time.Time    `json:"pickupTime"`
	ConfirmationRequired string       `json:"confirmationRequired"`
	Phase                Phase        `json:"phase"`
	// Aborted marks a flight turned back by a cancel before drop-off.
	Aborted bool `json:"aborted,omitempty"`
	// LegFrom is where the current leg began; the altitude profile climbs
	// away from it and descends onto the leg's end.
	LegFrom  geo.Location `json:"legFrom,omitzero"`
	Position geo.Location `json:"position,omitzero"`
	// MovedAt is the wall-clock time of the last move.
	MovedAt      time.Time              `json:"movedAt,omitzero"`
	DepartedAt   *time.Time             `json:"departedAt,omitempty"`
	PickedUpAt   *time.Time             `json:"pickedUpAt,omitempty"`
	DroppedOffAt *time.Time             `json:"droppedOffAt,omitempty"`
	Confirmation *messages.Confirmation `json:"confirmation,omitempty"`
}

// Flight profile. Drones cruise under the 120 m ceiling most aviation rules
// set for them, and climb or descend at 400 m per km flown, so a short hop
// still reaches a realistic height.
const (
	cruiseAltitudeM = 120.0
	climbMPerKm     = 400.0
)

// departed reports whether the drone has left its base for the flight.
func (f *Flight) departed() bool { return f != nil && f.Phase != PhasePlanned }

// samePlan reports whether f is the not yet departed plan p.
func (f *Flight) samePlan(p Flight) bool {
	return f != nil && f.Phase == PhasePlanned && f.DeliveryID == p.DeliveryID &&
		f.Pickup == p.Pickup && f.Dropoff == p.Dropoff && f.PickupTime.Equal(p.PickupTime) &&
		f.ConfirmationRequired == p.ConfirmationRequired
}

// planFor is the flight plan of delivery id for trip t.
func planFor(id string, t trip) Flight {
	return Flight{
		DeliveryID: id, Pickup: t.pickup, Dropoff: t.dropoff, PickupTime: t.pickupTime,
		ConfirmationRequired: t.confirmation, Phase: PhasePlanned,
	}
}

// depart takes off from base: the first report of every flight says the
// drone is headed to the pickup, even when the pickup is at its base, so
// that subscribers always see the stage.
func (f *Flight) depart(base geo.Location, now time.Time) messages.DroneStatus {
	at := ground(base)
	f.Phase, f.LegFrom, f.Position, f.MovedAt, f.DepartedAt = PhaseToPickup, at, at, now, &now
	return messages.DroneHeadedToPickup
}

// advance flies the drone on for the wall-clock time since its last move,
// counted at most maxStep (after a restart the drone carries on from where
// it was stored rather than jumping ahead), at speedKmh × scale. It returns
// the status to report and whether the drone has landed at base.
func (f *Flight) advance(droneID string, base geo.Location, speedKmh, scale float64, now time.Time, maxStep time.Duration) (messages.DroneStatus, bool) {
	elapsed := min(max(now.Sub(f.MovedAt), 0), maxStep)
	km := speedKmh * scale * elapsed.Hours()
	f.MovedAt = now
	switch f.Phase {
	case PhaseToPickup:
		if f.move(f.Pickup, km) {
			f.Phase, f.LegFrom, f.PickedUpAt = PhaseToDropoff, ground(f.Pickup), &now
			return messages.DronePickedUp, false
		}
		return messages.DroneHeadedToPickup, false
	case PhaseToDropoff:
		if f.move(f.Dropoff, km) {
			f.Phase, f.LegFrom, f.DroppedOffAt = PhaseReturning, ground(f.Dropoff), &now
			f.Confirmation = confirm(f.ConfirmationRequired, droneID, f.DeliveryID, f.Dropoff, now)
			return messages.DroneDroppedOff, false
		}
		return messages.DroneHeadedToDropoff, false
	case PhaseReturning:
		if f.move(base, km) {
			return messages.DroneLanded, true
		}
		return messages.DroneReturning, false
	}
	// A planned flight does not move; the runner departs it first.
	return messages.DroneHeadedToPickup, false
}

// move flies km towards to and reports whether the drone got there; it then
// stands on the ground at to.
func (f *Flight) move(to geo.Location, km float64) bool {
	pos, arrived := geo.MoveToward(f.Position, to, km)
	if arrived {
		f.Position = ground(to)
		return true
	}
	pos.Altitude = altitude(geo.DistanceKm(f.LegFrom, pos), geo.DistanceKm(pos, to))
	f.Position = pos
	return false
}

// abort turns a flight back to base before it drops the package off. It
// reports whether anything changed: a planned flight never left, and one
// already returning has nothing left to abort.
func (f *Flight) abort() bool {
	if f.Phase != PhaseToPickup && f.Phase != PhaseToDropoff {
		return false
	}
	f.Phase, f.Aborted, f.LegFrom = PhaseReturning, true, f.Position
	return true
}

// altitude is the height of a drone fromKm into a leg with toKm to go.
func altitude(fromKm, toKm float64) float64 {
	h := math.Min(cruiseAltitudeM, climbMPerKm*math.Min(fromKm, toKm))
	return math.Round(h*10) / 10
}

func ground(l geo.Location) geo.Location {
	return geo.Location{Latitude: l.Latitude, Longitude: l.Longitude}
}

// confirm records the proof of delivery the request asked for. The drone's
// sensors are simulated: the reference names where the recording would be
// kept.
func confirm(kind, droneID, deliveryID string, at geo.Location, now time.Time) *messages.Confirmation {
	if kind == "" {
		kind = messages.ConfirmNone
	}
	c := &messages.Confirmation{Type: kind, Location: ground(at), RecordedAt: now}
	if kind != messages.ConfirmNone {
		c.Reference = "drones/" + droneID + "/confirmations/" + deliveryID + "/" + strings.ToLower(kind)
	}
	return c
}

// report is the drone-status event for the flight f of drone d, which has
// just reached status; d.Seq must already count it.
func report(d Drone, f Flight, status messages.DroneStatus, now time.Time, scale float64) messages.DroneStatusReport {
	return messages.DroneStatusReport{
		DroneID: d.ID, DeliveryID: f.DeliveryID, Sequence: d.Seq, Timestamp: now, Status: status,
		Position: f.Position, Pickup: f.Pickup, Dropoff: f.Dropoff, PickupTime: f.PickupTime,
		SpeedKmh: d.SpeedKmh, TimeScale: scale, Aborted: f.Aborted,
		PickedUpAt: f.PickedUpAt, DroppedOffAt: f.DroppedOffAt, Confirmation: f.Confirmation,
	}
}
