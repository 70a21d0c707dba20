package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/fabrikam/dronedelivery/internal/geo"
	"github.com/fabrikam/dronedelivery/internal/messages"
	"github.com/fabrikam/dronedelivery/internal/sidecar"
	"github.com/fabrikam/dronedelivery/internal/web"
)

type store interface {
	Get(ctx context.Context, key string) (Delivery, string, bool, error)
	Create(ctx context.Context, key string, v Delivery) error
	Update(ctx context.Context, key string, fn func(v *Delivery, found bool) (bool, error)) (Delivery, error)
}

// eventPublisher publishes a CloudEvent with a chosen id; sidecar.Publisher
// is one.
type eventPublisher interface {
	PublishWithID(ctx context.Context, topic, eventType, key, id string, data any) error
}

const (
	codeDeliveryConflict = "delivery-conflict"
	codeDeliveryInFlight = "delivery-in-flight"
)

// causeAPI marks transitions made through the HTTP API.
const causeAPI = "api"

type api struct {
	log   *slog.Logger
	store store
	pub   eventPublisher
	now   func() time.Time
	// trackEvery is the least time between two applied drone reports that
	// move no stage (report timestamps); zero applies every report.
	trackEvery time.Duration
	// live tunes the Server-Sent Events stream of /live.
	live liveConfig
	// stop is closed when the service shuts down; it ends live streams,
	// which would otherwise hold the server's shutdown up.
	stop <-chan struct{}
}

func key(id string) string { return "delivery:" + id }

func (a *api) routes(r *mux.Router) {
	// Internal callers (the scheduler and the supervisor, through Dapr) use
	// the forms with the id in the query. Dapr keys its circuit breakers by
	// app and method path, so with the id in the path every delivery would
	// get a breaker of its own, and none would ever protect the service.
	r.Handle("/api/deliveries", a.handlePut()).Methods(http.MethodPut).Queries("id", "{id}")
	r.Handle("/api/deliveries", a.handlePatch()).Methods(http.MethodPatch).Queries("id", "{id}")
	r.Handle("/api/deliveries", a.handleCancel()).Methods(http.MethodDelete).Queries("id", "{id}")
	r.Handle("/api/failed-deliveries", a.handleFail()).Methods(http.MethodPut).Queries("id", "{id}")
	r.Handle("/api/deliveries/{id}", a.handlePut()).Methods(http.MethodPut)
	r.Handle("/api/deliveries/{id}", a.handleGet()).Methods(http.MethodGet)
	r.Handle("/api/deliveries/{id}", a.handlePatch()).Methods(http.MethodPatch)
	r.Handle("/api/deliveries/{id}", a.handleCancel()).Methods(http.MethodDelete)
	r.Handle("/api/deliveries/{id}/failure", a.handleFail()).Methods(http.MethodPut)
	r.Handle("/api/deliveries/{id}/status", a.handleStatus()).Methods(http.MethodGet)
	r.Handle("/api/deliveries/{id}/live", a.handleLive()).Methods(http.MethodGet)
	// Drone reports, routed here by components/shared/subscriptions-tracking.yaml.
	r.Handle(routeDroneStatus, sidecar.Subscription(a.log, a.onDroneStatus)).Methods(http.MethodPost)
	r.Handle(routeDroneUnknown, sidecar.Subscription(a.log, func(_ context.Context, e sidecar.Event) error {
		return sidecar.Drop(fmt.Errorf("unknown event type %q on %s", e.Type, e.Topic))
	})).Methods(http.MethodPost)
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
			CreatedAt: now, UpdatedAt: now,
		}
		d.enter(StageCreated, now, now, "", causeAPI)
		err := a.store.Create(r.Context(), key(id), d)
		status := http.StatusCreated
		if errors.Is(err, sidecar.ErrConflict) {
			var cur Delivery
			cur, _, _, err = a.store.Get(r.Context(), key(id))
			if err == nil && !sameBooking(cur, d) {
				web.WriteProblem(w, r, web.NewProblem(http.StatusConflict, codeDeliveryConflict,
					"Delivery exists with other details", "use PATCH to change delivery "+id))
				return
			}
			d, status = cur, http.StatusOK
		}
		if err != nil {
			a.storeFailed(w, r, err)
			return
		}
		// A repeat also publishes what an earlier attempt left unpublished.
		if err := a.flush(r.Context(), d, ""); err != nil {
			a.publishFailed(w, r, err)
			return
		}
		if status == http.StatusCreated {
			w.Header().Set("Location", "/api/deliveries/"+id)
		}
		web.WriteJSON(w, status, d.view())
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
			web.WriteJSON(w, http.StatusOK, d.view())
		}
	})
}

// view is the record as the API shows it: without the outbox, which is
// bookkeeping of this service.
func (d Delivery) view() Delivery {
	d.Outbox = nil
	return d
}

// statusBody is the public status of a delivery. The ETAs are computed from
// the drone's last reported position and speed once it flies, and are the
// times the drone service promised before; once a leg is done its ETA is the
// time it was done.
type statusBody struct {
	ID                string                 `json:"id"`
	Stage             Stage                  `json:"stage"`
	Reason            string                 `json:"reason,omitempty"`
	DroneID           string                 `json:"droneId,omitempty"`
	Carrier           string                 `json:"carrier,omitempty"`
	LastKnownLocation *geo.Location          `json:"lastKnownLocation,omitempty"`
	PickupETA         *time.Time             `json:"pickupEta,omitempty"`
	DeliveryETA       *time.Time             `json:"deliveryEta,omitempty"`
	Confirmation      *messages.Confirmation `json:"confirmation,omitempty"`
	// LastReportAt is when the drone sent the report the location and ETAs
	// come from.
	LastReportAt *time.Time `json:"lastReportAt,omitempty"`
	UpdatedAt    time.Time  `json:"updatedAt"`
}

func statusOf(d Delivery) statusBody {
	s := statusBody{
		ID: d.ID, Stage: d.Stage, Reason: d.Reason, DroneID: d.DroneID, Carrier: d.Carrier,
		LastKnownLocation: d.LastKnownLocation, PickupETA: d.PickupETA, DeliveryETA: d.DeliveryETA,
		UpdatedAt: d.UpdatedAt,
	}
	if d.Stage == StageCompleted {
		s.Confirmation = d.Confirmation
	}
	if d.Tracking != nil {
		at := d.Tracking.ReportedAt
		s.LastReportAt = &at
	}
	return s
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
			web.WriteJSON(w, http.StatusOK, statusOf(d))
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
		var final, flying bool
		d, err := a.store.Update(r.Context(), key(id), func(d *Delivery, found bool) (bool, error) {
			final, flying = false, false
			switch {
			case !found:
				return false, nil
			case d.Stage.Final():
				final = true
				return false, nil
			case d.Stage.InFlight():
				// The drone has left: a reschedule would move the delivery
				// back to before its flight.
				flying = true
				return false, nil
			}
			before := *d
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
			if sameBooking(before, *d) && timesEqual(before.PickupETA, d.PickupETA) &&
				timesEqual(before.DeliveryETA, d.DeliveryETA) && d.Stage == StageRescheduled {
				return false, nil // a repeat of the reschedule just applied
			}
			now := a.now().UTC()
			d.UpdatedAt = now
			d.enter(StageRescheduled, now, now, "", causeAPI)
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
		case flying:
			web.WriteProblem(w, r, web.NewProblem(http.StatusConflict, codeDeliveryInFlight,
				"Delivery in flight", "the drone of delivery "+id+" has taken off"))
		default:
			if err := a.flush(r.Context(), d, ""); err != nil {
				a.publishFailed(w, r, err)
				return
			}
			web.WriteJSON(w, http.StatusOK, d.view())
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
		// The scheduler and supervisor undo through the query form. For them
		// a delivery that was never created, or already ended another way,
		// is nothing to undo, answered 2xx: Dapr counts every other answer
		// as a failure towards the delivery service's circuit breaker.
		undo := r.URL.Query().Has("id")
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
			conflict = false
			if !found || d.Stage == stage {
				return false, nil
			}
			if d.Stage.Final() {
				conflict = true
				return false, nil
			}
			now := a.now().UTC()
			d.Reason, d.UpdatedAt = reason, now
			d.enter(stage, now, now, reason, causeAPI)
			return true, nil
		})
		switch {
		case err != nil:
			a.storeFailed(w, r, err)
		case d.ID == "" && undo:
			w.WriteHeader(http.StatusNoContent)
		case d.ID == "":
			web.WriteProblem(w, r, web.NotFound("no delivery "+id))
		case conflict && undo:
			// The delivery as it stands, so the caller sees how it ended: a
			// cancel must not undo the rest of a delivery that was completed.
			web.WriteJSON(w, http.StatusOK, d.view())
		case conflict:
			web.WriteProblem(w, r, web.NewProblem(http.StatusConflict, codeDeliveryFinal,
				"Delivery already ended", "delivery "+id+" is "+string(d.Stage)))
		default:
			if err := a.flush(r.Context(), d, ""); err != nil {
				a.publishFailed(w, r, err)
				return
			}
			web.WriteJSON(w, http.StatusOK, d.view())
		}
	})
}

func (a *api) storeFailed(w http.ResponseWriter, r *http.Request, err error) {
	a.log.WarnContext(r.Context(), "state store call failed", "err", err)
	web.WriteProblem(w, r, web.Unavailable("the delivery store is unavailable", 1))
}

// publishFailed answers a change that is stored but whose delivery event
// could not be published yet: 503, so that the caller repeats the call,
// and the repeat, finding the change made, publishes the event.
func (a *api) publishFailed(w http.ResponseWriter, r *http.Request, err error) {
	a.log.WarnContext(r.Context(), "publish delivery event failed", "err", err)
	web.WriteProblem(w, r, web.Unavailable("delivery events cannot be published right now", 1))
}
