package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/fabrikam/dronedelivery/internal/geo"
	"github.com/fabrikam/dronedelivery/internal/sidecar"
	"github.com/fabrikam/dronedelivery/internal/web"
)

type store interface {
	Get(ctx context.Context, key string) (Delivery, string, bool, error)
	Create(ctx context.Context, key string, v Delivery) error
	Update(ctx context.Context, key string, fn func(v *Delivery, found bool) (bool, error)) (Delivery, error)
}

const codeDeliveryConflict = "delivery-conflict"

type api struct {
	log   *slog.Logger
	store store
	now   func() time.Time
}

func key(id string) string { return "delivery:" + id }

func (a *api) routes(r *mux.Router) {
	r.Handle("/api/deliveries/{id}", a.handlePut()).Methods(http.MethodPut)
	r.Handle("/api/deliveries/{id}", a.handleGet()).Methods(http.MethodGet)
	r.Handle("/api/deliveries/{id}", a.handlePatch()).Methods(http.MethodPatch)
	r.Handle("/api/deliveries/{id}", a.handleCancel()).Methods(http.MethodDelete)
	r.Handle("/api/deliveries/{id}/failure", a.handleFail()).Methods(http.MethodPut)
	r.Handle("/api/deliveries/{id}/status", a.handleStatus()).Methods(http.MethodGet)
}

// putBody is what the scheduler sends to create a delivery.
type putBody struct {
	OwnerID              string        `json:"ownerId"`
	Pickup               *geo.Location `json:"pickup"`
	Dropoff              *geo.Location `json:"dropoff"`
	PickupTime           time.Time     `json:"pickupTime"`
	Deadline             *time.Time    `json:"deadline,omitempty"`
	Expedited            bool          `json:"expedited"`
	ConfirmationRequired string        `json:"confirmationRequired"`
	PackageID            string        `json:"packageId"`
	DroneID              string        `json:"droneId,omitempty"`
	Carrier              string        `json:"carrier,omitempty"`
	PickupETA            *time.Time    `json:"pickupEta,omitempty"`
	DeliveryETA          *time.Time    `json:"deliveryEta,omitempty"`
}

func locationErrors(field string, l *geo.Location, required bool) []web.FieldError {
	switch {
	case l == nil && required:
		return []web.FieldError{{Field: field, Error: "is required"}}
	case l == nil:
		return nil
	}
	if err := l.Valid(); err != nil {
		return []web.FieldError{{Field: field, Error: err.Error()}}
	}
	return nil
}

func (b *putBody) validate() []web.FieldError {
	var errs []web.FieldError
	if strings.TrimSpace(b.OwnerID) == "" {
		errs = append(errs, web.FieldError{Field: "ownerId", Error: "is required"})
	}
	errs = append(errs, locationErrors("pickup", b.Pickup, true)...)
	errs = append(errs, locationErrors("dropoff", b.Dropoff, true)...)
	if b.PickupTime.IsZero() {
		errs = append(errs, web.FieldError{Field: "pickupTime", Error: "is required"})
	}
	if strings.TrimSpace(b.PackageID) == "" {
		errs = append(errs, web.FieldError{Field: "packageId", Error: "is required"})
	}
	if b.DroneID == "" && b.Carrier == "" {
		errs = append(errs, web.FieldError{Field: "droneId", Error: "a drone or a carrier is required"})
	}
	return errs
}

// handlePut creates the delivery. Repeating the same PUT is answered 200 with
// the stored record; a PUT that would change an existing booking is a 409,
// because changes go through PATCH.
func (a *api) handlePut() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := mux.Vars(r)["id"]
		var b putBody
		if p := web.DecodeJSON(w, r, &b); p != nil {
			web.WriteProblem(w, r, p)
			return
		}
		if errs := b.validate(); len(errs) > 0 {
			web.WriteProblem(w, r, web.Validation(errs))
			return
		}
		now := a.now().UTC()
		d := Delivery{
			ID: id, OwnerID: b.OwnerID, Pickup: *b.Pickup, Dropoff: *b.Dropoff, PickupTime: b.PickupTime,
			Deadline: b.Deadline, Expedited: b.Expedited, ConfirmationRequired: b.ConfirmationRequired,
			PackageID: b.PackageID, DroneID: b.DroneID, Carrier: b.Carrier,
			PickupETA: b.PickupETA, DeliveryETA: b.DeliveryETA,
			Stage: StageCreated, CreatedAt: now, UpdatedAt: now,
		}
		err := a.store.Create(r.Context(), key(id), d)
		if err == nil {
			w.Header().Set("Location", "/api/deliveries/"+id)
			web.WriteJSON(w, http.StatusCreated, d)
			return
		}
		if !errors.Is(err, sidecar.ErrConflict) {
			a.storeFailed(w, r, err)
			return
		}
		cur, _, _, err := a.store.Get(r.Context(), key(id))
		if err != nil {
			a.storeFailed(w, r, err)
			return
		}
		if !sameBooking(cur, d) {
			web.WriteProblem(w, r, web.NewProblem(http.StatusConflict, codeDeliveryConflict,
				"Delivery exists with other details", "use PATCH to change delivery "+id))
			return
		}
		web.WriteJSON(w, http.StatusOK, cur)
	})
}

func (a *api) handleGet() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := mux.Vars(r)["id"]
		d, _, found, err := a.store.Get(r.Context(), key(id))
		switch {
		case err != nil:
			a.storeFailed(w, r, err)
		case !found:
			web.WriteProblem(w, r, web.NotFound("no delivery "+id))
		default:
			web.WriteJSON(w, http.StatusOK, d)
		}
	})
}

// statusBody is the public status of a delivery.
type statusBody struct {
	ID                string        `json:"id"`
	Stage             Stage         `json:"stage"`
	Reason            string        `json:"reason,omitempty"`
	DroneID           string        `json:"droneId,omitempty"`
	Carrier           string        `json:"carrier,omitempty"`
	LastKnownLocation *geo.Location `json:"lastKnownLocation,omitempty"`
	PickupETA         *time.Time    `json:"pickupEta,omitempty"`
	DeliveryETA       *time.Time    `json:"deliveryEta,omitempty"`
	UpdatedAt         time.Time     `json:"updatedAt"`
}

func (a *api) handleStatus() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := mux.Vars(r)["id"]
		d, _, found, err := a.store.Get(r.Context(), key(id))
		switch {
		case err != nil:
			a.storeFailed(w, r, err)
		case !found:
			web.WriteProblem(w, r, web.NotFound("no delivery "+id))
		default:
			web.WriteJSON(w, http.StatusOK, statusBody{
				ID: d.ID, Stage: d.Stage, Reason: d.Reason, DroneID: d.DroneID, Carrier: d.Carrier,
				LastKnownLocation: d.LastKnownLocation, PickupETA: d.PickupETA, DeliveryETA: d.DeliveryETA,
				UpdatedAt: d.UpdatedAt,
			})
		}
	})
}

// patchBody reschedules a delivery; nil fields stay as they are.
type patchBody struct {
	Pickup      *geo.Location `json:"pickup,omitempty"`
	Dropoff     *geo.Location `json:"dropoff,omitempty"`
	PickupTime  *time.Time    `json:"pickupTime,omitempty"`
	Deadline    *time.Time    `json:"deadline,omitempty"`
	DroneID     *string       `json:"droneId,omitempty"`
	PickupETA   *time.Time    `json:"pickupEta,omitempty"`
	DeliveryETA *time.Time    `json:"deliveryEta,omitempty"`
}

const codeDeliveryFinal = "delivery-final"

func (a *api) handlePatch() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := mux.Vars(r)["id"]
		var b patchBody
		if p := web.DecodeJSON(w, r, &b); p != nil {
			web.WriteProblem(w, r, p)
			return
		}
		errs := append(locationErrors("pickup", b.Pickup, false), locationErrors("dropoff", b.Dropoff, false)...)
		if len(errs) > 0 {
			web.WriteProblem(w, r, web.Validation(errs))
			return
		}
		var final bool
		d, err := a.store.Update(r.Context(), key(id), func(d *Delivery, found bool) (bool, error) {
			if !found {
				return false, nil
			}
			if d.Stage.Final() {
				final = true
				return false, nil
			}
			set(&d.Pickup, b.Pickup)
			set(&d.Dropoff, b.Dropoff)
			set(&d.PickupTime, b.PickupTime)
			set(&d.DroneID, b.DroneID)
			if b.Deadline != nil {
				d.Deadline = b.Deadline
			}
			if b.PickupETA != nil {
				d.PickupETA = b.PickupETA
			}
			if b.DeliveryETA != nil {
				d.DeliveryETA = b.DeliveryETA
			}
			d.Stage = StageRescheduled
			d.UpdatedAt = a.now().UTC()
			return true, nil
		})
		switch {
		case err != nil:
			a.storeFailed(w, r, err)
		case d.ID == "":
			web.WriteProblem(w, r, web.NotFound("no delivery "+id))
		case final:
			web.WriteProblem(w, r, web.NewProblem(http.StatusConflict, codeDeliveryFinal,
				"Delivery already ended", "delivery "+id+" is "+string(d.Stage)))
		default:
			web.WriteJSON(w, http.StatusOK, d)
		}
	})
}

func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

// handleCancel marks the delivery canceled. Canceling a canceled delivery
// succeeds; canceling a completed one is a conflict.
func (a *api) handleCancel() http.Handler {
	return a.endWith(StageCanceled, "canceled by the client")
}

// handleFail marks the delivery failed with the reason given in the body.
func (a *api) handleFail() http.Handler {
	return a.endWith(StageFailed, "")
}

func (a *api) endWith(stage Stage, defaultReason string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := mux.Vars(r)["id"]
		reason := defaultReason
		if r.ContentLength != 0 && r.Method != http.MethodDelete {
			var b struct {
				Reason string `json:"reason"`
			}
			if p := web.DecodeJSON(w, r, &b); p != nil {
				web.WriteProblem(w, r, p)
				return
			}
			reason = b.Reason
		}
		var conflict bool
		d, err := a.store.Update(r.Context(), key(id), func(d *Delivery, found bool) (bool, error) {
			if !found || d.Stage == stage {
				return false, nil
			}
			if d.Stage.Final() {
				conflict = true
				return false, nil
			}
			d.Stage, d.Reason, d.UpdatedAt = stage, reason, a.now().UTC()
			return true, nil
		})
		switch {
		case err != nil:
			a.storeFailed(w, r, err)
		case d.ID == "":
			web.WriteProblem(w, r, web.NotFound("no delivery "+id))
		case conflict:
			web.WriteProblem(w, r, web.NewProblem(http.StatusConflict, codeDeliveryFinal,
				"Delivery already ended", "delivery "+id+" is "+string(d.Stage)))
		default:
			web.WriteJSON(w, http.StatusOK, d)
		}
	})
}

func (a *api) storeFailed(w http.ResponseWriter, r *http.Request, err error) {
	a.log.WarnContext(r.Context(), "state store call failed", "err", err)
	web.WriteProblem(w, r, web.Unavailable("the delivery store is unavailable", 1))
}
