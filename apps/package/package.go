package main

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/fabrikam/dronedelivery/internal/web"
)

// Package is a parcel booked for one delivery.
type Package struct {
	ID         string    `json:"id"`
	Size       string    `json:"size"`
	Weight     float64   `json:"weight"`
	Tag        string    `json:"tag"`
	DeliveryID string    `json:"deliveryId"`
	CreatedAt  time.Time `json:"createdAt"`
	UpdatedAt  time.Time `json:"updatedAt"`
}

// sameAs reports whether p describes the same parcel for the same delivery
// as q, ignoring when either was written.
func (p Package) sameAs(q Package) bool {
	return p.ID == q.ID && p.Size == q.Size && p.Weight == q.Weight && p.Tag == q.Tag && p.DeliveryID == q.DeliveryID
}

// Limits on a package, the same as ingestion applies to requests.
const (
	maxTagLen   = 64
	maxWeightKg = 1000.0
)

// validator collects field errors so one response names all of them.
type validator struct{ errs []web.FieldError }

func (v *validator) add(field, format string, args ...any) {
	v.errs = append(v.errs, web.FieldError{Field: field, Error: fmt.Sprintf(format, args...)})
}

// size returns the canonical spelling of s, given in any case.
func (v *validator) size(s string) string {
	switch strings.ToLower(s) {
	case "small":
		return "Small"
	case "medium":
		return "Medium"
	case "large":
		return "Large"
	}
	v.add("size", "must be one of Small, Medium, Large")
	return ""
}

func (v *validator) weight(w float64) {
	if w <= 0 || w > maxWeightKg {
		v.add("weight", "must be more than 0 and at most %g (kg)", maxWeightKg)
	}
}

func (v *validator) tag(t string) {
	if utf8.RuneCountInString(t) > maxTagLen {
		v.add("tag", "must be at most %d characters", maxTagLen)
	}
}

func (v *validator) id(field, id string) {
	if err := web.CheckID(id); err != nil {
		v.add(field, "%v", err)
	}
}
