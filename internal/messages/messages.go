// Package messages is the contract between services: pub/sub component and
// topic names, CloudEvent types, and one Go type per message. Component names
// mirror the YAML in components/; change both together.
package messages

import (
	"encoding/json"
	"time"

	"github.com/fabrikam/dronedelivery/internal/geo"
)

// Dapr component names, identical in every profile.
const (
	PubSub     = "pubsub"
	StateStore = "statestore"
)

// Topics.
const (
	TopicDeliveryRequests = "delivery-requests"
	TopicDeliveryFailures = "delivery-failures"
	TopicDroneStatus      = "drone-status"
	TopicDeliveryEvents   = "delivery-events"
	TopicDeadLetters      = "dead-letters"
)

// CloudEvent types on delivery-requests. One topic carries all three so that
// a delivery's request, reschedule and cancel stay in order under one
// partition key.
const (
	TypeDeliveryRequested   = "com.fabrikam.delivery.requested.v1"
	TypeDeliveryRescheduled = "com.fabrikam.delivery.rescheduled.v1"
	TypeDeliveryCanceled    = "com.fabrikam.delivery.canceled.v1"
	TypeDeliveryFailed      = "com.fabrikam.delivery.failed.v1"
)

// PackageInfo describes the parcel as the client gave it.
type PackageInfo struct {
	PackageID string  `json:"packageId"`
	Size      string  `json:"size"`
	Weight    float64 `json:"weight"`
	Tag       string  `json:"tag,omitempty"`
}

// DeliveryRequested asks for a new delivery. Locations are already resolved
// to coordinates by ingestion; the original text is kept in Name.
type DeliveryRequested struct {
	DeliveryID           string       `json:"deliveryId"`
	OwnerID              string       `json:"ownerId"`
	Pickup               geo.Location `json:"pickup"`
	Dropoff              geo.Location `json:"dropoff"`
	PickupTime           time.Time    `json:"pickupTime"`
	Deadline             *time.Time   `json:"deadline,omitempty"`
	Expedited            bool         `json:"expedited"`
	ConfirmationRequired string       `json:"confirmationRequired"`
	PackageInfo          PackageInfo  `json:"packageInfo"`
	RequestedAt          time.Time    `json:"requestedAt"`
}

// DeliveryRescheduled changes the times or places of a delivery. Nil fields
// are left as they were.
type DeliveryRescheduled struct {
	DeliveryID  string        `json:"deliveryId"`
	Pickup      *geo.Location `json:"pickup,omitempty"`
	Dropoff     *geo.Location `json:"dropoff,omitempty"`
	PickupTime  *time.Time    `json:"pickupTime,omitempty"`
	Deadline    *time.Time    `json:"deadline,omitempty"`
	RequestedAt time.Time     `json:"requestedAt"`
}

// DeliveryCanceled asks for a delivery to be canceled and undone.
type DeliveryCanceled struct {
	DeliveryID  string    `json:"deliveryId"`
	RequestedAt time.Time `json:"requestedAt"`
}

// DeliveryFailed tells the supervisor that a transaction could not complete.
// It carries everything compensation needs: the request (package id, delivery
// id) and how far the transaction got.
type DeliveryFailed struct {
	DeliveryID string            `json:"deliveryId"`
	Reason     string            `json:"reason"`
	FailedStep string            `json:"failedStep"`
	Request    DeliveryRequested `json:"request"`
	// ReachedStep is the step that was running when the transaction failed;
	// it and every step before it may have side effects to undo.
	ReachedStep string    `json:"reachedStep"`
	DroneID     string    `json:"droneId,omitempty"`
	BookingID   string    `json:"bookingId,omitempty"`
	FailedAt    time.Time `json:"failedAt"`
}

// AllTopics lists every topic the system publishes to, for brokers that need
// topics prepared before use.
func AllTopics() []string {
	return []string{TopicDeliveryRequests, TopicDeliveryFailures, TopicDroneStatus, TopicDeliveryEvents, TopicDeadLetters}
}

// TypeDeadLetter is a message an app parked on the dead-letter topic because
// it can never be processed; the reason says why.
const TypeDeadLetter = "com.fabrikam.deadletter.v1"

// DeadLetter wraps a message that was set aside, with the reason.
type DeadLetter struct {
	Reason   string          `json:"reason"`
	Topic    string          `json:"topic"`
	Type     string          `json:"type"`
	EventID  string          `json:"eventId"`
	Data     json.RawMessage `json:"data,omitempty"`
	ParkedBy string          `json:"parkedBy"`
	ParkedAt time.Time       `json:"parkedAt"`
}
