// Package workflow holds the steps of the scheduling transaction and their
// undo operations, as calls to the services that own them. The scheduler runs
// the steps; the scheduler and the supervisor both undo them.
package workflow

import (
	"errors"
	"fmt"
	"time"
)

// Step is one step of the scheduling transaction, in the order they run.
type Step int

// The steps. StepDone means every step has completed.
const (
	StepAccount Step = iota
	StepThirdParty
	StepPackage
	StepDrone
	StepDelivery
	StepDone
)

var stepNames = [...]string{"account", "thirdparty", "package", "drone", "delivery", "done"}

func (s Step) String() string {
	if s < 0 || int(s) >= len(stepNames) {
		return fmt.Sprintf("step(%d)", int(s))
	}
	return stepNames[s]
}

// MarshalText writes the step by name, so records and messages stay readable.
func (s Step) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a step name.
func (s *Step) UnmarshalText(b []byte) error {
	for i, n := range stepNames {
		if n == string(b) {
			*s = Step(i)
			return nil
		}
	}
	return fmt.Errorf("unknown step %q", b)
}

// Progress is what a transaction has achieved: the next step to run and the
// results later steps and undo operations need.
type Progress struct {
	Next       Step             `json:"next"`
	ThirdParty *ThirdParty      `json:"thirdParty,omitempty"`
	Drone      *DroneAssignment `json:"drone,omitempty"`
}

// ThirdParty is the carrier decision.
type ThirdParty struct {
	Required  bool   `json:"required"`
	Reason    string `json:"reason,omitempty"`
	Carrier   string `json:"carrier,omitempty"`
	BookingID string `json:"bookingId,omitempty"`
}

// DroneAssignment is the drone booked for a delivery and its ETAs.
type DroneAssignment struct {
	DroneID     string    `json:"droneId"`
	PickupETA   time.Time `json:"pickupEta"`
	DeliveryETA time.Time `json:"deliveryEta"`
}

// Rejection is a business decision against the delivery: retrying cannot
// change it, and the transaction ends rejected with Reason.
type Rejection struct {
	Step   Step
	Reason string
}

func (r *Rejection) Error() string {
	return fmt.Sprintf("%s rejected the delivery: %s", r.Step, r.Reason)
}

// TooLate reports a cancel refused because the delivery already ended in a
// way that cannot be taken back: the package was delivered.
type TooLate struct {
	Stage string
}

func (e *TooLate) Error() string { return "too late to cancel: the delivery is already " + e.Stage }

// Permanent is a failure that retrying will not mend (a contract mismatch
// between services, say). The transaction ends failed and is compensated.
type Permanent struct {
	Step Step
	Err  error
}

func (p *Permanent) Error() string { return fmt.Sprintf("%s failed permanently: %v", p.Step, p.Err) }
func (p *Permanent) Unwrap() error { return p.Err }

// ErrNoDroneAvailable reports that every capable drone is busy right now.
var ErrNoDroneAvailable = errors.New("no drone is available right now")

// ErrRaced reports that an undo got to the resource first (a cancel racing the
// step); the caller re-reads the transaction and finds out what happened.
var ErrRaced = errors.New("the step raced an undo of the same delivery")
