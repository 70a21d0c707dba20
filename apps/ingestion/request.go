package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/fabrikam/dronedelivery/internal/geo"
	"github.com/fabrikam/dronedelivery/internal/messages"
	"github.com/fabrikam/dronedelivery/internal/web"
)

// deliveryRequestBody is the public request body, compatible with the
// original Ingestion service. Locations are raw so that a place name,
// "lat,lon" and a {latitude, longitude} object are all accepted. The original
// serialised the drop-off as dropOffLocation; both spellings are read.
type deliveryRequestBody struct {
	OwnerID              *string          `json:"ownerId"`
	PickupLocation       json.RawMessage  `json:"pickupLocation"`
	DropoffLocation      json.RawMessage  `json:"dropoffLocation"`
	DropOffLocation      json.RawMessage  `json:"dropOffLocation"`
	PickupTime           *string          `json:"pickupTime"`
	Deadline             *string          `json:"deadline"`
	Expedited            bool             `json:"expedited"`
	ConfirmationRequired *string          `json:"confirmationRequired"`
	PackageInfo          *packageInfoBody `json:"packageInfo"`
}

type packageInfoBody struct {
	PackageID *string  `json:"packageId"`
	Size      *string  `json:"size"`
	Weight    *float64 `json:"weight"`
	Tag       string   `json:"tag"`
}

// rescheduleBody is the PATCH body: every field optional, at least one given.
type rescheduleBody struct {
	PickupLocation  json.RawMessage `json:"pickupLocation"`
	DropoffLocation json.RawMessage `json:"dropoffLocation"`
	DropOffLocation json.RawMessage `json:"dropOffLocation"`
	PickupTime      *string         `json:"pickupTime"`
	Deadline        *string         `json:"deadline"`
}

// Limits on what a request may carry.
const (
	maxTagLen       = 64
	maxWeightKg     = 1000.0
	maxPickupAhead  = 365 * 24 * time.Hour
	maxPickupBehind = time.Hour
)

// confirmationTypes maps accepted spellings to the canonical value.
var confirmationTypes = map[string]string{
	"none": "None", "fingerprint": "FingerPrint", "picture": "Picture", "voice": "Voice",
}

var packageSizes = map[string]string{"small": "Small", "medium": "Medium", "large": "Large"}

// validator collects field errors so one response names all of them.
type validator struct{ errs []web.FieldError }

func (v *validator) add(field, format string, args ...any) {
	v.errs = append(v.errs, web.FieldError{Field: field, Error: fmt.Sprintf(format, args...)})
}

func (v *validator) id(field string, s *string) string {
	if s == nil {
		v.add(field, "is required")
		return ""
	}
	if err := web.CheckID(*s); err != nil {
		v.add(field, "%v", err)
	}
	return *s
}

func (v *validator) location(g geo.Gazetteer, field string, raw json.RawMessage) geo.Location {
	l, err := g.ResolveJSON(raw)
	if err != nil {
		v.add(field, "%v", err)
	}
	return l
}

func (v *validator) time(field string, s *string, required bool) *time.Time {
	if s == nil || *s == "" {
		if required {
			v.add(field, "is required")
		}
		return nil
	}
	t, err := time.Parse(time.RFC3339, *s)
	if err != nil {
		v.add(field, "must be an RFC 3339 date-time such as 2026-05-14T20:10:00Z")
		return nil
	}
	t = t.UTC()
	return &t
}

func (v *validator) pickupWindow(now time.Time, pickup, deadline *time.Time) {
	if pickup != nil {
		if pickup.Before(now.Add(-maxPickupBehind)) {
			v.add("pickupTime", "must not be more than %s in the past", maxPickupBehind)
		}
		if pickup.After(now.Add(maxPickupAhead)) {
			v.add("pickupTime", "must be within a year")
		}
	}
	if pickup != nil && deadline != nil && !deadline.After(*pickup) {
		v.add("deadline", "must be after pickupTime")
	}
}

func dropoff(a, b json.RawMessage, v *validator) json.RawMessage {
	if len(a) > 0 && len(b) > 0 {
		v.add("dropoffLocation", "give dropoffLocation or dropOffLocation, not both")
	}
	if len(a) > 0 {
		return a
	}
	return b
}

// toMessage validates body and builds the request message. It returns the
// field errors when the body is invalid.
func (b *deliveryRequestBody) toMessage(g geo.Gazetteer, id string, now time.Time) (messages.DeliveryRequested, []web.FieldError) {
	var v validator
	m := messages.DeliveryRequested{DeliveryID: id, Expedited: b.Expedited, RequestedAt: now}
	m.OwnerID = v.id("ownerId", b.OwnerID)
	m.Pickup = v.location(g, "pickupLocation", b.PickupLocation)
	m.Dropoff = v.location(g, "dropoffLocation", dropoff(b.DropoffLocation, b.DropOffLocation, &v))
	if pt := v.time("pickupTime", b.PickupTime, true); pt != nil {
		m.PickupTime = *pt
	}
	m.Deadline = v.time("deadline", b.Deadline, false)
	v.pickupWindow(now, timeIfSet(m.PickupTime), m.Deadline)

	m.ConfirmationRequired = "None"
	if b.ConfirmationRequired != nil {
		c, ok := confirmationTypes[strings.ToLower(*b.ConfirmationRequired)]
		if !ok {
			v.add("confirmationRequired", "must be one of FingerPrint, Picture, Voice, None")
		}
		m.ConfirmationRequired = c
	}

	if b.PackageInfo == nil {
		v.add("packageInfo", "is required")
		return m, v.errs
	}
	p := b.PackageInfo
	m.PackageInfo.PackageID = v.id("packageInfo.packageId", p.PackageID)
	if p.Size == nil {
		v.add("packageInfo.size", "is required")
	} else if s, ok := packageSizes[strings.ToLower(*p.Size)]; ok {
		m.PackageInfo.Size = s
	} else {
		v.add("packageInfo.size", "must be one of Small, Medium, Large")
	}
	switch {
	case p.Weight == nil:
		v.add("packageInfo.weight", "is required")
	case *p.Weight <= 0 || *p.Weight > maxWeightKg:
		v.add("packageInfo.weight", "must be more than 0 and at most %g (kg)", maxWeightKg)
	default:
		m.PackageInfo.Weight = *p.Weight
	}
	if len(p.Tag) > maxTagLen {
		v.add("packageInfo.tag", "must be at most %d characters", maxTagLen)
	}
	m.PackageInfo.Tag = p.Tag
	return m, v.errs
}

func timeIfSet(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// toMessage validates a reschedule body and builds its message.
func (b *rescheduleBody) toMessage(g geo.Gazetteer, id string, now time.Time) (messages.DeliveryRescheduled, []web.FieldError) {
	var v validator
	m := messages.DeliveryRescheduled{DeliveryID: id, RequestedAt: now}
	if len(b.PickupLocation) > 0 {
		l := v.location(g, "pickupLocation", b.PickupLocation)
		m.Pickup = &l
	}
	if d := dropoff(b.DropoffLocation, b.DropOffLocation, &v); len(d) > 0 {
		l := v.location(g, "dropoffLocation", d)
		m.Dropoff = &l
	}
	m.PickupTime = v.time("pickupTime", b.PickupTime, false)
	m.Deadline = v.time("deadline", b.Deadline, false)
	v.pickupWindow(now, m.PickupTime, m.Deadline)
	if m.Pickup == nil && m.Dropoff == nil && m.PickupTime == nil && m.Deadline == nil && len(v.errs) == 0 {
		v.add("(body)", "give at least one of pickupLocation, dropoffLocation, pickupTime, deadline")
	}
	return m, v.errs
}
