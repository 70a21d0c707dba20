package main

import (
	"errors"
	"time"

	"github.com/fabrikam/dronedelivery/internal/geo"
	"github.com/fabrikam/dronedelivery/internal/messages"
)

// Stage is where a delivery is in its life.
type Stage string

// Stages, in the order a delivery normally passes them.
const (
	StageCreated         Stage = messages.StageCreated
	StageRescheduled     Stage = messages.StageRescheduled
	StageHeadedToPickup  Stage = messages.StageHeadedToPickup
	StageHeadedToDropoff Stage = messages.StageHeadedToDropoff
	StageCompleted       Stage = messages.StageCompleted
	StageCanceled        Stage = messages.StageCanceled
	StageFailed          Stage = messages.StageFailed
)

// Final reports whether no further stage can follow.
func (s Stage) Final() bool {
	return s == StageCompleted || s == StageCanceled || s == StageFailed
}

// InFlight reports whether the drone is on its way with or for the package:
// the delivery can then still end, but no longer be rescheduled.
func (s Stage) InFlight() bool {
	return s == StageHeadedToPickup || s == StageHeadedToDropoff
}

// rank orders the stages a flight moves a delivery through. A drone report
// only ever raises it, which is what keeps duplicate and late reports from
// moving a delivery backwards.
func (s Stage) rank() int {
	switch s {
	case StageHeadedToPickup:
		return 1
	case StageHeadedToDropoff:
		return 2
	case StageCompleted, StageCanceled, StageFailed:
		return 3
	}
	return 0 // created or rescheduled: not flying yet
}

// flightStages are the stages a drone's reports lead through, in order.
var flightStages = []Stage{StageHeadedToPickup, StageHeadedToDropoff, StageCompleted}

// Delivery is the delivery record.
type Delivery struct {
	ID                   string        `json:"id"`
	OwnerID              string        `json:"ownerId"`
	Pickup               geo.Location  `json:"pickup"`
	Dropoff              geo.Location  `json:"dropoff"`
	PickupTime           time.Time     `json:"pickupTime"`
	Deadline             *time.Time    `json:"deadline,omitempty"`
	Expedited            bool          `json:"expedited"`
	ConfirmationRequired string        `json:"confirmationRequired"`
	PackageID            string        `json:"packageId"`
	DroneID              string        `json:"droneId,omitempty"`
	Carrier              string        `json:"carrier,omitempty"`
	PickupETA            *time.Time    `json:"pickupEta,omitempty"`
	DeliveryETA          *time.Time    `json:"deliveryEta,omitempty"`
	Stage                Stage         `json:"stage"`
	Reason               string        `json:"reason,omitempty"`
	LastKnownLocation    *geo.Location `json:"lastKnownLocation,omitempty"`
	CreatedAt            time.Time     `json:"createdAt"`
	UpdatedAt            time.Time     `json:"updatedAt"`
	// Tracking is the latest drone report applied, its sequence number
	// included: reports with a lower one are stale or repeated.
	Tracking *Tracking `json:"tracking,omitempty"`
	// Confirmation is the proof of delivery the drone recorded.
	Confirmation *messages.Confirmation `json:"confirmation,omitempty"`
	// Transitions are the delivery's stage changes, in order; the n-th is
	// published as the delivery event with sequence n.
	Transitions []Transition `json:"transitions,omitempty"`
	// Outbox holds the delivery events of transitions not yet known to be
	// published. A transition and its event are written in one record, so
	// a crash between saving and publishing cannot lose the event: whoever
	// touches the delivery next publishes what is left here.
	Outbox []OutboxEvent `json:"outbox,omitempty"`
}

// Transition is one stage change.
type Transition struct {
	Seq          int                    `json:"seq"`
	Stage        Stage                  `json:"stage"`
	At           time.Time              `json:"at"`
	Location     *geo.Location          `json:"location,omitempty"`
	PickupETA    *time.Time             `json:"pickupEta,omitempty"`
	DeliveryETA  *time.Time             `json:"deliveryEta,omitempty"`
	Reason       string                 `json:"reason,omitempty"`
	Confirmation *messages.Confirmation `json:"confirmation,omitempty"`
}

// Tracking is what the delivery knows of its drone's flight.
type Tracking struct {
	DroneID    string               `json:"droneId"`
	Seq        uint64               `json:"seq"`
	Status     messages.DroneStatus `json:"status"`
	ReportedAt time.Time            `json:"reportedAt"`
	// AppliedAt is when this service applied the report: the lag behind
	// ReportedAt is how far the delivery's status trails the drone.
	AppliedAt time.Time `json:"appliedAt"`
	SpeedKmh  float64   `json:"speedKmh"`
	TimeScale float64   `json:"timeScale"`
}

// OutboxEvent is a delivery event waiting to be published. CausedBy names
// what made the transition (the id of a drone report, or "api"), so that a
// redelivery of the same report publishes it again without waiting.
type OutboxEvent struct {
	ID       string                 `json:"id"`
	Type     string                 `json:"type"`
	Event    messages.DeliveryEvent `json:"event"`
	CausedBy string                 `json:"causedBy"`
	AddedAt  time.Time              `json:"addedAt"`
}

// enter moves d to stage at the given time, records the transition and
// queues its delivery event (at now), all in d: the caller stores d once. A
// stage is never dated before the one it follows: a drone takes off the
// moment it is assigned, a step before the scheduler creates the delivery,
// and its first report is then older than the delivery's Created.
func (d *Delivery) enter(stage Stage, at, now time.Time, reason, cause string) {
	if n := len(d.Transitions); n > 0 && at.Before(d.Transitions[n-1].At) {
		at = d.Transitions[n-1].At
	}
	seq := len(d.Transitions) + 1
	tr := Transition{
		Seq: seq, Stage: stage, At: at, Location: d.LastKnownLocation,
		PickupETA: d.PickupETA, DeliveryETA: d.DeliveryETA, Reason: reason,
	}
	if stage == StageCompleted {
		tr.Confirmation = d.Confirmation
	}
	d.Stage = stage
	d.Transitions = append(d.Transitions, tr)
	ev := messages.DeliveryEvent{
		DeliveryID: d.ID, Sequence: seq, Stage: string(stage), At: at, DroneID: d.DroneID,
		Location: tr.Location, PickupETA: tr.PickupETA, DeliveryETA: tr.DeliveryETA,
		Reason: reason, Confirmation: tr.Confirmation,
	}
	d.Outbox = append(d.Outbox, OutboxEvent{
		ID: messages.DeliveryEventID(d.ID, seq, string(stage)), Type: messages.DeliveryEventType(string(stage)),
		Event: ev, CausedBy: cause, AddedAt: now,
	})
}

// catchUpWindow is how long a drone report may wait for the booking it
// belongs to. The scheduler books the drone first and the delivery second,
// and a drone whose pickup time is now takes off at once: its first reports
// can come before the delivery is created or rescheduled.
const catchUpWindow = 30 * time.Second

// errAhead reports a drone report for a booking the delivery has not been
// told of yet; it is to be retried.
var errAhead = errors.New("the drone report is ahead of the delivery's booking")

// track applies a drone report to d and reports whether d changed. Reports
// of an ended delivery, and any not newer than the last one applied, are
// ignored. A report for another drone or another trip than the booked one
// is ahead of a reschedule: it is refused with errAhead until the
// reschedule has had time to arrive, then ignored (another drone) or taken
// as it is (the trip of the delivery's own drone). A report may skip stages
// (earlier reports lost or still on their way): the stages in between are
// entered too, in order, so the delivery's history always has each once.
// A report that moves no stage is skipped when the last one applied was
// reported less than every before it: drones may report faster than the
// status needs to follow them, and each applied report is a write.
func (d *Delivery) track(r messages.DroneStatusReport, cause string, now time.Time, every time.Duration) (bool, error) {
	if d.Stage.Final() {
		return false, nil
	}
	t := d.Tracking
	if t != nil && t.DroneID == r.DroneID && r.Sequence <= t.Seq {
		return false, nil
	}
	if t != nil && t.DroneID == r.DroneID && r.Timestamp.Sub(t.ReportedAt) < every &&
		(r.Aborted || stageOf(r).rank() <= d.Stage.rank()) {
		return false, nil
	}
	if r.DroneID != d.DroneID || !d.flies(r) {
		if now.Sub(r.Timestamp) < catchUpWindow {
			return false, errAhead
		}
		if r.DroneID != d.DroneID {
			return false, nil
		}
	}
	d.Tracking = &Tracking{
		DroneID: r.DroneID, Seq: r.Sequence, Status: r.Status, ReportedAt: r.Timestamp, AppliedAt: now,
		SpeedKmh: r.SpeedKmh, TimeScale: r.TimeScale,
	}
	pos := r.Position
	d.LastKnownLocation = &pos
	d.UpdatedAt = now
	if r.Aborted {
		// Turned back: the delivery ends by its cancel, not by the drone.
		return true, nil
	}
	target := stageOf(r)
	if target.rank() < d.Stage.rank() {
		// A report from earlier in the flight with a newer sequence number
		// (a drone restored from an old state, or a forged report): its
		// position is the drone's latest, but the flight is further on.
		target = d.Stage
	}
	d.estimate(r, target)
	if r.Confirmation != nil {
		d.Confirmation = r.Confirmation
	}
	for _, s := range flightStages {
		if s.rank() > d.Stage.rank() && s.rank() <= target.rank() {
			d.enter(s, r.Timestamp, now, "", cause)
		}
	}
	return true, nil
}

// flies reports whether r is a report of the trip d is booked for. Reports
// of older drone services carry no trip and are taken to be.
func (d *Delivery) flies(r messages.DroneStatusReport) bool {
	if r.PickupTime.IsZero() {
		return true
	}
	same := func(a, b geo.Location) bool { return a.Latitude == b.Latitude && a.Longitude == b.Longitude }
	return same(d.Pickup, r.Pickup) && same(d.Dropoff, r.Dropoff) && d.PickupTime.Equal(r.PickupTime)
}

// stageOf is the stage a (not aborted) drone report puts its delivery in.
func stageOf(r messages.DroneStatusReport) Stage {
	switch {
	case r.DroppedOffAt != nil || r.Status == messages.DroneDroppedOff ||
		r.Status == messages.DroneReturning || r.Status == messages.DroneLanded:
		return StageCompleted
	case r.PickedUpAt != nil || r.Status == messages.DronePickedUp || r.Status == messages.DroneHeadedToDropoff:
		return StageHeadedToDropoff
	}
	return StageHeadedToPickup
}

// estimate computes the pickup and delivery ETAs of a delivery at stage
// from the drone's position and speed as of the report: the distance left
// over the ground the drone covers per hour of wall-clock time. A leg that
// is done keeps the time it was done at.
func (d *Delivery) estimate(r messages.DroneStatusReport, stage Stage) {
	kmh := r.SpeedKmh * r.TimeScale
	if kmh <= 0 {
		return
	}
	pickup, dropoff := d.Pickup, d.Dropoff
	if !r.PickupTime.IsZero() {
		pickup, dropoff = r.Pickup, r.Dropoff
	}
	after := func(from time.Time, km float64) *time.Time {
		t := from.Add(time.Duration(km / kmh * float64(time.Hour))).UTC().Truncate(time.Millisecond)
		return &t
	}
	if r.PickedUpAt != nil {
		t := r.PickedUpAt.UTC()
		d.PickupETA = &t
	}
	switch stage {
	case StageHeadedToPickup:
		d.PickupETA = after(r.Timestamp, geo.DistanceKm(r.Position, pickup))
		d.DeliveryETA = after(*d.PickupETA, geo.DistanceKm(pickup, dropoff))
	case StageHeadedToDropoff:
		d.DeliveryETA = after(r.Timestamp, geo.DistanceKm(r.Position, dropoff))
	case StageCompleted:
		if r.DroppedOffAt != nil {
			t := r.DroppedOffAt.UTC()
			d.DeliveryETA = &t
		}
	}
}

// sameBooking reports whether two records describe the same delivery as
// booked, ignoring what has happened to it since.
func sameBooking(a, b Delivery) bool {
	return a.ID == b.ID && a.OwnerID == b.OwnerID && a.Pickup == b.Pickup && a.Dropoff == b.Dropoff &&
		a.PickupTime.Equal(b.PickupTime) && timesEqual(a.Deadline, b.Deadline) && a.Expedited == b.Expedited &&
		a.ConfirmationRequired == b.ConfirmationRequired && a.PackageID == b.PackageID &&
		a.DroneID == b.DroneID && a.Carrier == b.Carrier
}

func timesEqual(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}
