package messages

import (
	"strconv"
	"time"

	"github.com/fabrikam/dronedelivery/internal/geo"
)

// TypeDroneStatus is a drone's position and status report on drone-status,
// one per flight tick.
const TypeDroneStatus = "com.fabrikam.drone.status.v1"

// DroneStatus is what a drone in flight is doing.
type DroneStatus string

// Drone statuses, in the order a flight passes them. A canceled flight goes
// straight to Returning with Aborted set.
const (
	DroneHeadedToPickup  DroneStatus = "headed-to-pickup"
	DronePickedUp        DroneStatus = "picked-up"
	DroneHeadedToDropoff DroneStatus = "headed-to-drop-off"
	DroneDroppedOff      DroneStatus = "dropped-off"
	DroneReturning       DroneStatus = "returning"
	DroneLanded          DroneStatus = "landed"
)

// Confirmation types a delivery request may ask for, recorded by the drone
// at drop-off.
const (
	ConfirmFingerPrint = "FingerPrint"
	ConfirmPicture     = "Picture"
	ConfirmVoice       = "Voice"
	ConfirmNone        = "None"
)

// Confirmation is the proof of delivery a drone recorded at drop-off.
// Reference names the recording (fingerprint scan, picture, voice clip) in
// the drone's store; it is empty when none was asked for.
type Confirmation struct {
	Type       string       `json:"type"`
	Reference  string       `json:"reference,omitempty"`
	Location   geo.Location `json:"location"`
	RecordedAt time.Time    `json:"recordedAt"`
}

// DroneStatusReport is one drone-status event. Every report is a complete
// snapshot of the flight, so a lost or late report costs one position sample
// and nothing else: a later report still says whether the package was picked
// up or dropped off. Sequence grows by one with every report of the drone,
// across flights and restarts, and is how subscribers tell a stale or
// repeated report from a new one.
type DroneStatusReport struct {
	DroneID    string       `json:"droneId"`
	DeliveryID string       `json:"deliveryId"`
	Sequence   uint64       `json:"sequence"`
	Timestamp  time.Time    `json:"timestamp"`
	Status     DroneStatus  `json:"status"`
	Position   geo.Location `json:"position"`
	// Pickup, Dropoff and PickupTime are the trip the drone flies. A
	// subscriber learns of a reschedule from the scheduler and of the
	// flight from the drone, in either order; the trip says which booking a
	// report belongs to, and gives what an ETA needs.
	Pickup     geo.Location `json:"pickup"`
	Dropoff    geo.Location `json:"dropoff"`
	PickupTime time.Time    `json:"pickupTime"`
	// SpeedKmh is the drone's cruise speed and TimeScale how much faster
	// than real time the flight is simulated (1 for real drones): the
	// ground covered per hour of wall-clock time is their product. They
	// travel with every report so that a subscriber can compute ETAs
	// without asking the drone service.
	SpeedKmh  float64 `json:"speedKmh"`
	TimeScale float64 `json:"timeScale"`
	// Aborted marks a flight turned back before drop-off (the delivery was
	// canceled): the drone returns to base with the package, if it has it.
	Aborted      bool          `json:"aborted,omitempty"`
	PickedUpAt   *time.Time    `json:"pickedUpAt,omitempty"`
	DroppedOffAt *time.Time    `json:"droppedOffAt,omitempty"`
	Confirmation *Confirmation `json:"confirmation,omitempty"`
}

// Delivery events on delivery-events, one type per stage. They are named
// apart from the commands on delivery-requests and delivery-failures
// (com.fabrikam.delivery.{rescheduled,canceled,failed}.v1), which carry other
// data: a consumer that routes on the type alone must never mistake one for
// the other.
const (
	TypeDeliveryTrackingCreated         = "com.fabrikam.delivery.tracking.created.v1"
	TypeDeliveryTrackingRescheduled     = "com.fabrikam.delivery.tracking.rescheduled.v1"
	TypeDeliveryTrackingHeadedToPickup  = "com.fabrikam.delivery.tracking.headedtopickup.v1"
	TypeDeliveryTrackingHeadedToDropoff = "com.fabrikam.delivery.tracking.headedtodropoff.v1"
	TypeDeliveryTrackingCompleted       = "com.fabrikam.delivery.tracking.completed.v1"
	TypeDeliveryTrackingCanceled        = "com.fabrikam.delivery.tracking.canceled.v1"
	TypeDeliveryTrackingFailed          = "com.fabrikam.delivery.tracking.failed.v1"
)

// Delivery stages as they appear in delivery events and status resources.
const (
	StageCreated         = "Created"
	StageRescheduled     = "Rescheduled"
	StageHeadedToPickup  = "HeadedToPickup"
	StageHeadedToDropoff = "HeadedToDropoff"
	StageCompleted       = "Completed"
	StageCanceled        = "Canceled"
	StageFailed          = "Failed"
)

// DeliveryEventType returns the CloudEvent type of the delivery event for
// stage, or "" for an unknown stage.
func DeliveryEventType(stage string) string {
	switch stage {
	case StageCreated:
		return TypeDeliveryTrackingCreated
	case StageRescheduled:
		return TypeDeliveryTrackingRescheduled
	case StageHeadedToPickup:
		return TypeDeliveryTrackingHeadedToPickup
	case StageHeadedToDropoff:
		return TypeDeliveryTrackingHeadedToDropoff
	case StageCompleted:
		return TypeDeliveryTrackingCompleted
	case StageCanceled:
		return TypeDeliveryTrackingCanceled
	case StageFailed:
		return TypeDeliveryTrackingFailed
	}
	return ""
}

// DeliveryTrackingTypes lists every delivery event type.
func DeliveryTrackingTypes() []string {
	return []string{
		TypeDeliveryTrackingCreated, TypeDeliveryTrackingRescheduled, TypeDeliveryTrackingHeadedToPickup,
		TypeDeliveryTrackingHeadedToDropoff, TypeDeliveryTrackingCompleted, TypeDeliveryTrackingCanceled,
		TypeDeliveryTrackingFailed,
	}
}

// DeliveryEvent is one stage change of a delivery (DeliveryCreated,
// DeliveryRescheduled, DeliveryHeadedToPickup, DeliveryHeadedToDropoff,
// DeliveryCompleted, DeliveryCanceled, DeliveryFailed: the CloudEvent type
// says which). Sequence numbers a delivery's stage changes from 1 with no
// gaps; it orders the timeline whatever order the events arrive in. The
// CloudEvent id is derived from the delivery id and Sequence, so a
// re-published event has the id of the original and consumers dedupe on it.
type DeliveryEvent struct {
	DeliveryID   string        `json:"deliveryId"`
	Sequence     int           `json:"sequence"`
	Stage        string        `json:"stage"`
	At           time.Time     `json:"at"`
	DroneID      string        `json:"droneId,omitempty"`
	Location     *geo.Location `json:"location,omitempty"`
	PickupETA    *time.Time    `json:"pickupEta,omitempty"`
	DeliveryETA  *time.Time    `json:"deliveryEta,omitempty"`
	Reason       string        `json:"reason,omitempty"`
	Confirmation *Confirmation `json:"confirmation,omitempty"`
}

// DeliveryEventID is the CloudEvent id of a delivery's seq-th stage change.
func DeliveryEventID(deliveryID string, seq int, stage string) string {
	return deliveryID + "/" + strconv.Itoa(seq) + "/" + stage
}
