package main

import (
	"time"

	"github.com/fabrikam/dronedelivery/internal/messages"
	"github.com/fabrikam/dronedelivery/internal/workflow"
)

// Status is where a scheduling transaction stands.
type Status string

// Transaction statuses. All but InProgress are final.
const (
	StatusInProgress Status = "InProgress"
	StatusScheduled  Status = "Scheduled"
	StatusRejected   Status = "Rejected"
	StatusCanceled   Status = "Canceled"
	StatusFailed     Status = "Failed"
)

// Final reports whether the transaction has ended. A scheduled delivery can
// still be canceled or rescheduled, but its transaction has ended.
func (s Status) Final() bool { return s != StatusInProgress }

// Transaction is the scheduler's checkpointed record of one delivery request.
// It is written after every step, with ETag concurrency, so a redelivered
// message or a restarted scheduler resumes where the last one stopped.
type Transaction struct {
	DeliveryID string                     `json:"deliveryId"`
	Status     Status                     `json:"status"`
	Reason     string                     `json:"reason,omitempty"`
	Request    messages.DeliveryRequested `json:"request"`
	HasRequest bool                       `json:"hasRequest"`
	Progress   workflow.Progress          `json:"progress"`
	// CancelRequested is set by a cancel message; whoever next touches the
	// transaction undoes it.
	CancelRequested bool `json:"cancelRequested,omitempty"`
	// CancelRefused says why a cancel was not carried out: the delivery had
	// already been completed.
	CancelRefused string `json:"cancelRefused,omitempty"`
	// Attempts counts transient failures; past the limit the transaction fails.
	Attempts int `json:"attempts,omitempty"`
	// WaitingForDroneSince is when the drone step first found no drone free.
	WaitingForDroneSince *time.Time `json:"waitingForDroneSince,omitempty"`
	FailedStep           string     `json:"failedStep,omitempty"`
	// UndoPending names a step that completed after the transaction was
	// undone (it raced a cancel) and still has to be taken back. It is
	// recorded before the undo runs so a failed undo is retried on
	// redelivery instead of forgotten.
	UndoPending *workflow.Step `json:"undoPending,omitempty"`
	Reschedules int            `json:"reschedules,omitempty"`
	// LastReschedule is the outcome of the newest reschedule handled; an
	// older one arriving late (a redelivery, a redrive) is ignored.
	LastReschedule *RescheduleOutcome `json:"lastReschedule,omitempty"`
	// Compensation is the supervisor's progress undoing a failed
	// transaction: "compensating", then "compensated".
	Compensation  string     `json:"compensation,omitempty"`
	CompensatedAt *time.Time `json:"compensatedAt,omitempty"`
	CreatedAt     time.Time  `json:"createdAt"`
	UpdatedAt     time.Time  `json:"updatedAt"`
}

// RescheduleOutcome is what became of a reschedule, by when the client
// asked for it.
type RescheduleOutcome struct {
	RequestedAt time.Time `json:"requestedAt"`
	// Refused says why it could not be applied; empty when it was.
	Refused string `json:"refused,omitempty"`
}

// Schedule is the public summary of what was booked.
type Schedule struct {
	DroneID          string     `json:"droneId,omitempty"`
	Carrier          string     `json:"carrier,omitempty"`
	CarrierBookingID string     `json:"carrierBookingId,omitempty"`
	ThirdPartyReason string     `json:"thirdPartyReason,omitempty"`
	PickupTime       time.Time  `json:"pickupTime"`
	PickupETA        *time.Time `json:"pickupEta,omitempty"`
	DeliveryETA      *time.Time `json:"deliveryEta,omitempty"`
}

func (t *Transaction) schedule() *Schedule {
	if t.Status != StatusScheduled {
		return nil
	}
	s := &Schedule{PickupTime: t.Request.PickupTime}
	if tp := t.Progress.ThirdParty; tp != nil && tp.Required {
		s.Carrier, s.CarrierBookingID, s.ThirdPartyReason = tp.Carrier, tp.BookingID, tp.Reason
	}
	if d := t.Progress.Drone; d != nil {
		s.DroneID = d.DroneID
		s.PickupETA, s.DeliveryETA = &d.PickupETA, &d.DeliveryETA
	}
	return s
}
