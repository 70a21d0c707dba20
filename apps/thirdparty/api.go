package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/fabrikam/dronedelivery/internal/geo"
	"github.com/fabrikam/dronedelivery/internal/sidecar"
	"github.com/fabrikam/dronedelivery/internal/web"
)

type store interface {
	Get(ctx context.Context, key string) (Record, string, bool, error)
	Create(ctx context.Context, key string, v Record) error
	Update(ctx context.Context, key string, fn func(v *Record, found bool) (bool, error)) (Record, error)
}

const codeBookingCanceled = "booking-canceled"

type api struct {
	log     *slog.Logger
	store   store
	limits  limits
	carrier string
	now     func() time.Time
	newID   func() string
}

func key(deliveryID string) string { return "thirdparty:" + deliveryID }

func (a *api) routes(r *mux.Router) {
	// Internal callers (the scheduler and the supervisor, through Dapr) use
	// the forms with the id in the query. Dapr keys its circuit breakers by
	// app and method path, so with the id in the path every delivery would
	// get a breaker of its own, and none would ever protect the service.
	r.Handle("/api/thirdpartydeliveries", a.handlePut()).Methods(http.MethodPut).Queries("deliveryId", "{deliveryId}")
	r.Handle("/api/thirdpartydeliveries", a.handleCancel()).Methods(http.MethodDelete).Queries("deliveryId", "{deliveryId}")
	r.Handle("/api/thirdpartydeliveries/{deliveryId}", a.handlePut()).Methods(http.MethodPut)
	r.Handle("/api/thirdpartydeliveries/{deliveryId}", a.handleGet()).Methods(http.MethodGet)
	r.Handle("/api/thirdpartydeliveries/{deliveryId}", a.handleCancel()).Methods(http.MethodDelete)
}

// putBody is what the scheduler sends to ask whether a delivery needs a
// carrier. Locations are pointers so that a missing one is not taken for
// 0,0, which is a valid place.
type putBody struct {
	Pickup        *geo.Location `json:"pickup"`
	Dropoff       *geo.Location `json:"dropoff"`
	PackageWeight float64       `json:"packageWeight"`
	PackageSize   string        `json:"packageSize"`
}

func (b *putBody) validate(deliveryID string) []web.FieldError {
	var errs []web.FieldError
	if err := web.CheckID(deliveryID); err != nil {
		errs = append(errs, web.FieldError{Field: "deliveryId", Error: err.Error()})
	}
	for _, l := range []struct {
		field string
		loc   *geo.Location
	}{{"pickup", b.Pickup}, {"dropoff", b.Dropoff}} {
		if l.loc == nil {
			errs = append(errs, web.FieldError{Field: l.field, Error: "is required"})
		} else if err := l.loc.Valid(); err != nil {
			errs = append(errs, web.FieldError{Field: l.field, Error: err.Error()})
		}
	}
	if b.PackageWeight <= 0 {
		errs = append(errs, web.FieldError{Field: "packageWeight", Error: "must be more than 0 (kg)"})
	}
	if _, ok := canonicalSize(b.PackageSize); !ok {
		errs = append(errs, web.FieldError{Field: "packageSize", Error: "must be one of Small, Medium, Large"})
	}
	return errs
}

// handlePut decides whether the delivery needs a carrier and books one if so.
// The decision is taken once: a repeated PUT, even with other details, gets
// the stored record, so a retrying scheduler never books a second carrier.
// A canceled record is a 409, so that a retry arriving after the cancel
// cannot book again.
func (a *api) handlePut() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := mux.Vars(r)["deliveryId"]
		var b putBody
		if p := web.DecodeJSON(w, r, &b); p != nil {
			web.WriteProblem(w, r, p)
			return
		}
		if errs := b.validate(id); len(errs) > 0 {
			web.WriteProblem(w, r, web.Validation(errs))
			return
		}
		required, reason := a.limits.decide(*b.Pickup, *b.Dropoff, b.PackageWeight)
		rec := Record{DeliveryID: id, Required: required, Reason: reason, Status: StatusNotRequired, CreatedAt: a.now().UTC()}
		if required {
			// The booking id is minted before the Create, and only the
			// request whose Create wins ever shows it: that record is the
			// one booking the delivery has.
			rec.Status, rec.Carrier, rec.BookingID = StatusBooked, a.carrier, a.newID()
		}
		err := a.store.Create(r.Context(), key(id), rec)
		if err == nil {
			web.WriteJSON(w, http.StatusOK, rec)
			return
		}
		if !errors.Is(err, sidecar.ErrConflict) {
			a.storeFailed(w, r, err)
			return
		}
		cur, _, found, err := a.store.Get(r.Context(), key(id))
		switch {
		case err != nil:
			a.storeFailed(w, r, err)
		case !found:
			// Records are never deleted, so this is a store misbehaving;
			// the scheduler's retry will find or create it.
			a.storeFailed(w, r, errors.New("record vanished after a create conflict"))
		case cur.Status == StatusCanceled:
			web.WriteProblem(w, r, web.NewProblem(http.StatusConflict, codeBookingCanceled,
				"Third-party delivery canceled", "delivery "+id+" was canceled; it cannot be booked again"))
		default:
			web.WriteJSON(w, http.StatusOK, cur)
		}
	})
}

func (a *api) handleGet() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := mux.Vars(r)["deliveryId"]
		rec, _, found, err := a.store.Get(r.Context(), key(id))
		switch {
		case err != nil:
			a.storeFailed(w, r, err)
		case !found:
			web.WriteProblem(w, r, web.NotFound("no third-party decision for delivery "+id))
		default:
			web.WriteJSON(w, http.StatusOK, rec)
		}
	})
}

// handleCancel marks the record canceled. With no record yet it stores a
// canceled tombstone: the cancel may overtake the PUT it undoes, and the
// tombstone makes that PUT fail rather than book a carrier nobody will
// cancel.
func (a *api) handleCancel() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := mux.Vars(r)["deliveryId"]
		_, err := a.store.Update(r.Context(), key(id), func(rec *Record, found bool) (bool, error) {
			switch {
			case !found:
				*rec = Record{DeliveryID: id, Reason: "canceled before any decision was taken",
					Status: StatusCanceled, CreatedAt: a.now().UTC()}
			case rec.Status == StatusCanceled:
				return false, nil
			default:
				rec.Status = StatusCanceled
			}
			return true, nil
		})
		if err != nil {
			a.storeFailed(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

func (a *api) storeFailed(w http.ResponseWriter, r *http.Request, err error) {
	a.log.WarnContext(r.Context(), "state store call failed", "err", err)
	web.WriteProblem(w, r, web.Unavailable("the third-party delivery store is unavailable", 1))
}
