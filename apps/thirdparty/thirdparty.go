package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/fabrikam/dronedelivery/internal/geo"
)

// Status is what became of a delivery's third-party decision.
type Status string

// Record statuses.
const (
	StatusBooked      Status = "booked"
	StatusNotRequired Status = "not-required"
	StatusCanceled    Status = "canceled"
)

// Record is the decision taken for one delivery and, when a carrier is
// required, its booking. It is taken once per delivery and then kept.
type Record struct {
	DeliveryID string    `json:"deliveryId"`
	Required   bool      `json:"required"`
	Reason     string    `json:"reason"`
	Status     Status    `json:"status"`
	Carrier    string    `json:"carrier,omitempty"`
	BookingID  string    `json:"bookingId,omitempty"`
	CreatedAt  time.Time `json:"createdAt"`
}

// limits are what a drone can carry and how far; beyond either a carrier
// takes the delivery.
type limits struct {
	RangeKm   float64
	PayloadKg float64
}

// decide reports whether a carrier is required and gives the reason, naming
// every limit the delivery breaks.
func (l limits) decide(pickup, dropoff geo.Location, weightKg float64) (bool, string) {
	dist := geo.DistanceKm(pickup, dropoff)
	var reasons []string
	if dist > l.RangeKm {
		reasons = append(reasons, fmt.Sprintf("drop-off %.1f km away, beyond the %g km drone range", dist, l.RangeKm))
	}
	if weightKg > l.PayloadKg {
		reasons = append(reasons, fmt.Sprintf("package of %g kg exceeds the %g kg drone payload", weightKg, l.PayloadKg))
	}
	if len(reasons) == 0 {
		return false, fmt.Sprintf("drop-off %.1f km away and package of %g kg are within the %g km drone range and %g kg payload",
			dist, weightKg, l.RangeKm, l.PayloadKg)
	}
	return true, strings.Join(reasons, "; ")
}

// canonicalSize returns the stored spelling of a package size given in any
// case.
func canonicalSize(s string) (string, bool) {
	switch strings.ToLower(s) {
	case "small":
		return "Small", true
	case "medium":
		return "Medium", true
	case "large":
		return "Large", true
	}
	return "", false
}
