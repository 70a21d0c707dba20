package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/mux"

	"github.com/fabrikam/dronedelivery/internal/geo"
	"github.com/fabrikam/dronedelivery/internal/messages"
	"github.com/fabrikam/dronedelivery/internal/sidecar"
	"github.com/fabrikam/dronedelivery/internal/telemetry"
	"github.com/fabrikam/dronedelivery/internal/web"
)

// requestRecord is what ingestion remembers of a request it accepted, so that
// the status resource answers from the moment of the 202.
type requestRecord struct {
	DeliveryID string                     `json:"deliveryId"`
	AcceptedAt time.Time                  `json:"acceptedAt"`
	Request    messages.DeliveryRequested `json:"request"`
}

// idempotencyRecord binds an Idempotency-Key to the delivery it created.
type idempotencyRecord struct {
	DeliveryID  string    `json:"deliveryId"`
	BodyHash    string    `json:"bodyHash"`
	Published   bool      `json:"published"`
	RequestedAt time.Time `json:"requestedAt"`
}

type publisher interface {
	Publish(ctx context.Context, topic, eventType, key string, data any) error
}

type store[T any] interface {
	Get(ctx context.Context, key string) (T, string, bool, error)
	Create(ctx context.Context, key string, v T) error
	Replace(ctx context.Context, key string, v T, etag string) error
}

// transactionView is the scheduler's account of a delivery's transaction.
type transactionView struct {
	DeliveryID   string          `json:"deliveryId"`
	Status       string          `json:"status"`
	Compensation string          `json:"compensation,omitempty"`
	Reason       string          `json:"reason,omitempty"`
	UpdatedAt    time.Time       `json:"updatedAt"`
	Schedule     json.RawMessage `json:"schedule,omitempty"`
	// CancelRequested is set once a cancel reached the scheduler, and
	// CancelRefused when it came too late.
	CancelRequested bool   `json:"cancelRequested,omitempty"`
	CancelRefused   string `json:"cancelRefused,omitempty"`
	// LastReschedule is the newest reschedule the scheduler handled.
	LastReschedule *rescheduleOutcome `json:"lastReschedule,omitempty"`
}

// rescheduleOutcome is what became of a reschedule: applied, or refused
// with the reason.
type rescheduleOutcome struct {
	RequestedAt time.Time `json:"requestedAt"`
	Refused     string    `json:"refused,omitempty"`
}

// scheduler answers what became of a delivery request.
type scheduler interface {
	Transaction(ctx context.Context, deliveryID string) (*transactionView, bool, error)
}

// Problem codes of this service.
const (
	codeIdempotencyMismatch = "idempotency-key-reused"
	codeInvalidKey          = "invalid-idempotency-key"
)

const maxIdempotencyKeyLen = 255

type api struct {
	log       *slog.Logger
	pub       publisher
	requests  store[requestRecord]
	keys      store[idempotencyRecord]
	scheduler scheduler
	places    geo.Gazetteer
	now       func() time.Time
	newID     func() string
	// biz counts accepted requests; nil counts nothing.
	biz *telemetry.Business
	// redrive tracks accepted messages until the scheduler has seen them;
	// nil tracks nothing.
	redrive *redriver
}

func (a *api) routes(r *mux.Router) {
	r.Handle("/api/deliveryrequests", a.handleCreate()).Methods(http.MethodPost)
	r.Handle("/api/deliveryrequests/{id}", a.handleGet()).Methods(http.MethodGet)
	r.Handle("/api/deliveryrequests/{id}", a.handleReschedule()).Methods(http.MethodPatch)
	r.Handle("/api/deliveryrequests/{id}", a.handleCancel()).Methods(http.MethodDelete)
	if a.redrive != nil {
		// The cron input binding "redrive" calls this; daprd probes it with
		// OPTIONS at start-up.
		r.Handle("/redrive", a.redrive.handleRedrive()).Methods(http.MethodPost, http.MethodOptions)
	}
	r.HandleFunc("/api/probe", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }).Methods(http.MethodGet)
}

func recordKey(id string) string { return "request:" + id }
func idemKey(key string) string  { return "idempotency:" + key }

// acceptedResponse is the 202 body: the request as understood plus its id.
type acceptedResponse struct {
	messages.DeliveryRequested
	Status string `json:"status"`
}

func (a *api) handleCreate() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		var body deliveryRequestBody
		if p := web.DecodeJSON(w, r, &body); p != nil {
			web.WriteProblem(w, r, p)
			return
		}
		key := r.Header.Get("Idempotency-Key")
		if len(key) > maxIdempotencyKeyLen {
			web.WriteProblem(w, r, web.NewProblem(http.StatusBadRequest, codeInvalidKey, "Invalid Idempotency-Key",
				fmt.Sprintf("the key must be at most %d characters", maxIdempotencyKeyLen)))
			return
		}
		now := a.now()
		id := a.newID()
		msg, errs := body.toMessage(a.places, id, now)
		if len(errs) > 0 {
			web.WriteProblem(w, r, web.Validation(errs))
			return
		}

		var idem *idempotencyRecord
		var idemETag string
		if key != "" {
			rec, etag, p := a.claimKey(ctx, key, msg, id, now)
			if p != nil {
				web.WriteProblem(w, r, p)
				return
			}
			idem, idemETag = &rec, etag
			if rec.DeliveryID != id {
				// A retry of an earlier request with this key: answer for that one.
				prev, _, found, err := a.requests.Get(ctx, recordKey(rec.DeliveryID))
				if err != nil {
					a.unavailable(w, r, "read request record", err)
					return
				}
				if rec.Published && found {
					a.writeAccepted(w, prev.Request)
					return
				}
				msg.DeliveryID = rec.DeliveryID
				if found {
					msg = prev.Request
				}
			}
		}

		// The broker holds the request from here on; a 202 is only sent once
		// it has confirmed that.
		if err := a.pub.Publish(ctx, messages.TopicDeliveryRequests, messages.TypeDeliveryRequested, msg.DeliveryID, msg); err != nil {
			a.unavailable(w, r, "publish delivery request", err)
			return
		}
		rec := requestRecord{DeliveryID: msg.DeliveryID, AcceptedAt: now, Request: msg}
		if err := a.requests.Create(ctx, recordKey(msg.DeliveryID), rec); err != nil && !errors.Is(err, sidecar.ErrConflict) {
			// The request is with the broker and will be processed; the
			// status resource falls back to the scheduler's record.
			a.log.WarnContext(ctx, "request accepted but its record was not saved", "deliveryId", msg.DeliveryID, "err", err)
		}
		a.redrive.track(ctx, pendingEntry{Kind: pendingRequest, DeliveryID: msg.DeliveryID, AcceptedAt: now})
		if idem != nil {
			idem.Published = true
			if err := a.keys.Replace(ctx, idemKey(key), *idem, idemETag); err != nil {
				// A retry with this key will publish again; the scheduler
				// deduplicates by delivery id.
				a.log.WarnContext(ctx, "idempotency record not marked published", "deliveryId", msg.DeliveryID, "err", err)
			}
		}
		a.log.InfoContext(ctx, "delivery request accepted", "deliveryId", msg.DeliveryID, "ownerId", msg.OwnerID)
		a.biz.Accepted(ctx)
		a.writeAccepted(w, msg)
	})
}

// claimKey binds key to id, or returns the binding an earlier request made.
func (a *api) claimKey(ctx context.Context, key string, msg messages.DeliveryRequested, id string, now time.Time) (idempotencyRecord, string, *web.Problem) {
	hash, err := requestHash(msg)
	if err != nil {
		return idempotencyRecord{}, "", web.Internal()
	}
	for range 3 {
		rec := idempotencyRecord{DeliveryID: id, BodyHash: hash, RequestedAt: now}
		err := a.keys.Create(ctx, idemKey(key), rec)
		if err == nil {
			_, etag, _, err := a.keys.Get(ctx, idemKey(key))
			if err != nil {
				return rec, "", web.Unavailable("the request store is unavailable", 1)
			}
			return rec, etag, nil
		}
		if !errors.Is(err, sidecar.ErrConflict) {
			a.log.WarnContext(ctx, "claim idempotency key", "err", err)
			return rec, "", web.Unavailable("the request store is unavailable", 1)
		}
		prev, etag, found, err := a.keys.Get(ctx, idemKey(key))
		if err != nil {
			return rec, "", web.Unavailable("the request store is unavailable", 1)
		}
		if !found {
			continue // expired between the two calls
		}
		if prev.BodyHash != hash {
			return prev, "", web.NewProblem(http.StatusUnprocessableEntity, codeIdempotencyMismatch,
				"Idempotency-Key reused with a different body",
				"this Idempotency-Key was used for delivery "+prev.DeliveryID+" with another body; use a new key")
		}
		return prev, etag, nil
	}
	return idempotencyRecord{}, "", web.Unavailable("the request store is busy", 1)
}

// requestHash fingerprints the validated request, without the parts ingestion
// adds, so that formatting, field order and spelling variants (a location
// object's key order, dropOffLocation) do not make the same request look
// different.
func requestHash(m messages.DeliveryRequested) (string, error) {
	m.DeliveryID, m.RequestedAt = "", time.Time{}
	j, err := json.Marshal(m)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(j)
	return hex.EncodeToString(sum[:]), nil
}

func (a *api) writeAccepted(w http.ResponseWriter, msg messages.DeliveryRequested) {
	w.Header().Set("Location", "/api/deliveryrequests/"+msg.DeliveryID)
	web.WriteJSON(w, http.StatusAccepted, acceptedResponse{DeliveryRequested: msg, Status: "Accepted"})
}

// readFailed answers a read that the request store could not serve.
func (a *api) readFailed(w http.ResponseWriter, r *http.Request, err error) {
	a.log.WarnContext(r.Context(), "read request store failed", "err", err)
	web.WriteProblem(w, r, web.Unavailable("the request store is unavailable; retry later", 1))
}

func (a *api) unavailable(w http.ResponseWriter, r *http.Request, what string, err error) {
	a.log.WarnContext(r.Context(), what+" failed", "err", err)
	web.WriteProblem(w, r, web.Unavailable("the request could not be stored; nothing was accepted, retry later", 1))
}

// statusResponse is the status resource of a delivery request.
type statusResponse struct {
	DeliveryID string `json:"deliveryId"`
	Status     string `json:"status"`
	Reason     string `json:"reason,omitempty"`
	// Compensation tells how the undoing of a failed request went.
	Compensation string `json:"compensation,omitempty"`
	// CancelRefused says why a cancel was not carried out.
	CancelRefused string `json:"cancelRefused,omitempty"`
	// LastReschedule is the newest reschedule handled, and whether it was
	// refused.
	LastReschedule *rescheduleOutcome          `json:"lastReschedule,omitempty"`
	AcceptedAt     *time.Time                  `json:"acceptedAt,omitempty"`
	UpdatedAt      *time.Time                  `json:"updatedAt,omitempty"`
	Schedule       json.RawMessage             `json:"schedule,omitempty"`
	Request        *messages.DeliveryRequested `json:"request,omitempty"`
	Links          map[string]string           `json:"links"`
}

func (a *api) handleGet() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		id := mux.Vars(r)["id"]
		if _, err := uuid.Parse(id); err != nil {
			web.WriteProblem(w, r, web.NotFound("no delivery request "+id))
			return
		}
		rec, _, found, err := a.requests.Get(ctx, recordKey(id))
		if err != nil {
			a.readFailed(w, r, err)
			return
		}
		tx, txFound, txErr := a.scheduler.Transaction(ctx, id)
		if !found && !txFound {
			if txErr != nil {
				a.log.WarnContext(ctx, "ask scheduler", "err", txErr)
				web.WriteProblem(w, r, web.Unavailable("the scheduler cannot be reached", 1))
				return
			}
			web.WriteProblem(w, r, web.NotFound("no delivery request "+id))
			return
		}
		resp := statusResponse{DeliveryID: id, Status: "Accepted", Links: map[string]string{
			"self":     "/api/deliveryrequests/" + id,
			"delivery": "/api/deliveries/" + id + "/status",
		}}
		if found {
			resp.AcceptedAt = &rec.AcceptedAt
			resp.Request = &rec.Request
		}
		if txFound {
			resp.Status, resp.Reason, resp.Schedule = tx.Status, tx.Reason, tx.Schedule
			resp.Compensation, resp.CancelRefused, resp.LastReschedule = tx.Compensation, tx.CancelRefused, tx.LastReschedule
			resp.UpdatedAt = &tx.UpdatedAt
		} else if txErr != nil {
			// Accepted is still true; say so rather than fail the read.
			a.log.WarnContext(ctx, "ask scheduler", "err", txErr)
		}
		web.WriteJSON(w, http.StatusOK, resp)
	})
}

// known reports whether ingestion accepted id, asking the scheduler when the
// local record is missing.
func (a *api) known(ctx context.Context, id string) (bool, error) {
	_, _, found, err := a.requests.Get(ctx, recordKey(id))
	if err != nil || found {
		return found, err
	}
	_, found, err = a.scheduler.Transaction(ctx, id)
	return found, err
}

func (a *api) handleReschedule() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		id := mux.Vars(r)["id"]
		var body rescheduleBody
		if p := web.DecodeJSON(w, r, &body); p != nil {
			web.WriteProblem(w, r, p)
			return
		}
		msg, errs := body.toMessage(a.places, id, a.now())
		if len(errs) > 0 {
			web.WriteProblem(w, r, web.Validation(errs))
			return
		}
		if !a.requireKnown(w, r, id) {
			return
		}
		if err := a.pub.Publish(ctx, messages.TopicDeliveryRequests, messages.TypeDeliveryRescheduled, id, msg); err != nil {
			a.unavailable(w, r, "publish reschedule", err)
			return
		}
		a.redrive.track(ctx, pendingEntry{Kind: pendingReschedule, DeliveryID: id, AcceptedAt: msg.RequestedAt, Reschedule: &msg})
		w.Header().Set("Location", "/api/deliveryrequests/"+id)
		web.WriteJSON(w, http.StatusAccepted, msg)
	})
}

func (a *api) handleCancel() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		id := mux.Vars(r)["id"]
		if !a.requireKnown(w, r, id) {
			return
		}
		msg := messages.DeliveryCanceled{DeliveryID: id, RequestedAt: a.now()}
		if err := a.pub.Publish(ctx, messages.TopicDeliveryRequests, messages.TypeDeliveryCanceled, id, msg); err != nil {
			a.unavailable(w, r, "publish cancel", err)
			return
		}
		a.redrive.track(ctx, pendingEntry{Kind: pendingCancel, DeliveryID: id, AcceptedAt: msg.RequestedAt})
		w.Header().Set("Location", "/api/deliveryrequests/"+id)
		web.WriteJSON(w, http.StatusAccepted, msg)
	})
}

func (a *api) requireKnown(w http.ResponseWriter, r *http.Request, id string) bool {
	if _, err := uuid.Parse(id); err != nil {
		web.WriteProblem(w, r, web.NotFound("no delivery request "+id))
		return false
	}
	ok, err := a.known(r.Context(), id)
	switch {
	case err != nil:
		a.readFailed(w, r, err)
		return false
	case !ok:
		web.WriteProblem(w, r, web.NotFound("no delivery request "+id))
		return false
	}
	return true
}
