package main

import (
	"time"

	"github.com/fabrikam/dronedelivery/internal/geo"
)

// Stage is where a delivery is in its life.
type Stage string

// Stages, in the order a delivery normally passes them.
const (
	StageCreated         Stage = "Created"
	StageRescheduled     Stage = "Rescheduled"
	StageHeadedToPickup  Stage = "HeadedToPickup"
	StageHeadedToDropoff Stage = "HeadedToDropoff"
	StageCompleted       Stage = "Completed"
	StageCanceled        Stage = "Canceled"
	StageFailed          Stage = "Failed"
)

// Final reports whether no further stage can follow.
func (s Stage) Final() bool {
	return s == StageCompleted || s == StageCanceled || s == StageFailed
}

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
