package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/fabrikam/dronedelivery/internal/messages"
	"github.com/fabrikam/dronedelivery/internal/sidecar"
	"github.com/fabrikam/dronedelivery/internal/web"
)

type api struct {
	log  *slog.Logger
	proc *processor
}

// Subscription routes. components/shared/subscriptions.yaml routes each
// CloudEvent type on delivery-requests to one of them.
const (
	routeRequested   = "/events/delivery-requested"
	routeRescheduled = "/events/delivery-rescheduled"
	routeCanceled    = "/events/delivery-canceled"
	routeUnknown     = "/events/delivery-unknown"
)

func (a *api) routes(r *mux.Router) {
	// A message that can never be processed is parked on the dead-letter
	// topic with the reason, where operators can list it.
	sub := func(h sidecar.HandlerFunc) http.Handler {
		return sidecar.Subscription(a.log, sidecar.ParkOnDrop(a.log, a.proc.pub, "scheduler", h))
	}
	r.Handle(routeRequested, sub(a.onRequested)).Methods(http.MethodPost)
	r.Handle(routeRescheduled, sub(a.onRescheduled)).Methods(http.MethodPost)
	r.Handle(routeCanceled, sub(a.onCanceled)).Methods(http.MethodPost)
	r.Handle(routeUnknown, sub(func(_ context.Context, e sidecar.Event) error {
		return sidecar.Drop(fmt.Errorf("unknown event type %q", e.Type))
	})).Methods(http.MethodPost)
	// Ingestion polls a request's transaction with the id in the query and
	// gets an empty result, not a 404, before the transaction exists: Dapr
	// keeps a circuit breaker per method path and counts a 404 as a failure,
	// so a client polling a fresh request would otherwise open a breaker.
	r.Handle("/api/transactions", a.handleQuery()).Methods(http.MethodGet).Queries("id", "{id}")
	r.Handle("/api/transactions", a.handleList()).Methods(http.MethodGet)
	r.Handle("/api/transactions/{id}", a.handleGet()).Methods(http.MethodGet)
	r.Handle("/api/transactions/{id}/compensation", a.handleCompensation()).Methods(http.MethodPut)
	r.Handle("/api/transactions/{id}/resume", a.handleResume()).Methods(http.MethodPost)
}

func (a *api) onRequested(ctx context.Context, e sidecar.Event) error {
	var m messages.DeliveryRequested
	if err := e.Decode(&m); err != nil {
		return err
	}
	if m.DeliveryID == "" {
		return sidecar.Drop(errors.New("delivery request without deliveryId"))
	}
	return a.proc.Requested(ctx, m)
}

func (a *api) onRescheduled(ctx context.Context, e sidecar.Event) error {
	var m messages.DeliveryRescheduled
	if err := e.Decode(&m); err != nil {
		return err
	}
	if m.DeliveryID == "" {
		return sidecar.Drop(errors.New("reschedule without deliveryId"))
	}
	return a.proc.Rescheduled(ctx, m)
}

func (a *api) onCanceled(ctx context.Context, e sidecar.Event) error {
	var m messages.DeliveryCanceled
	if err := e.Decode(&m); err != nil {
		return err
	}
	if m.DeliveryID == "" {
		return sidecar.Drop(errors.New("cancel without deliveryId"))
	}
	return a.proc.Canceled(ctx, m)
}

// transactionBody is the view of a transaction that ingestion's status
// resource and operators read.
type transactionBody struct {
	DeliveryID string `json:"deliveryId"`
	Status     Status `json:"status"`
	Reason     string `json:"reason,omitempty"`
	Step       string `json:"step"`
	FailedStep string `json:"failedStep,omitempty"`
	// CancelRequested tells ingestion's redrive that a cancel arrived, and
	// CancelRefused that it came too late.
	CancelRequested bool   `json:"cancelRequested,omitempty"`
	CancelRefused   string `json:"cancelRefused,omitempty"`
	// LastReschedule tells the redrive which reschedule was handled last,
	// and the client whether it was refused.
	LastReschedule *RescheduleOutcome `json:"lastReschedule,omitempty"`
	Attempts       int                `json:"attempts,omitempty"`
	Schedule       *Schedule          `json:"schedule,omitempty"`
	// Request is what was asked, for the supervisor's sweep.
	Request *messages.DeliveryRequested `json:"request,omitempty"`
	// Compensation is the supervisor's undoing of a failed transaction.
	Compensation  string     `json:"compensation,omitempty"`
	CompensatedAt *time.Time `json:"compensatedAt,omitempty"`
	CreatedAt     time.Time  `json:"createdAt"`
	UpdatedAt     time.Time  `json:"updatedAt"`
}

func view(tx Transaction) transactionBody {
	b := transactionBody{
		DeliveryID: tx.DeliveryID, Status: tx.Status, Reason: tx.Reason, Step: tx.Progress.Next.String(),
		FailedStep: tx.FailedStep, CancelRequested: tx.CancelRequested, CancelRefused: tx.CancelRefused, LastReschedule: tx.LastReschedule, Attempts: tx.Attempts, Schedule: tx.schedule(),
		Compensation: tx.Compensation, CompensatedAt: tx.CompensatedAt,
		CreatedAt: tx.CreatedAt, UpdatedAt: tx.UpdatedAt,
	}
	if tx.HasRequest {
		b.Request = &tx.Request
	}
	return b
}

func (a *api) handleGet() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := mux.Vars(r)["id"]
		tx, _, found, err := a.proc.store.Get(r.Context(), txKey(id))
		switch {
		case err != nil:
			a.storeFailed(w, r, err)
		case !found:
			web.WriteProblem(w, r, web.NotFound("no transaction for delivery "+id))
		default:
			web.WriteJSON(w, http.StatusOK, view(tx))
		}
	})
}

// maxQueryIDs bounds one query, keeping its URL well under common limits.
const maxQueryIDs = 100

// handleQuery answers GET /api/transactions?id=X[&id=Y...] with the
// transactions of those ids that exist: ingestion's status resource asks for
// one, its redrive for a batch.
func (a *api) handleQuery() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ids := r.URL.Query()["id"]
		if len(ids) > maxQueryIDs {
			web.WriteProblem(w, r, web.Validation([]web.FieldError{{Field: "id", Error: fmt.Sprintf("at most %d ids per query", maxQueryIDs)}}))
			return
		}
		out := make([]transactionBody, 0, len(ids))
		for _, id := range ids {
			tx, _, found, err := a.proc.store.Get(r.Context(), txKey(id))
			if err != nil {
				a.storeFailed(w, r, err)
				return
			}
			if found {
				out = append(out, view(tx))
			}
		}
		web.WriteJSON(w, http.StatusOK, map[string][]transactionBody{"transactions": out})
	})
}

func (a *api) storeFailed(w http.ResponseWriter, r *http.Request, err error) {
	a.log.WarnContext(r.Context(), "transaction store call failed", "err", err)
	web.WriteProblem(w, r, web.Unavailable("the transaction store is unavailable", 1))
}

// handleList lists transactions that are in progress (optionally only those
// untouched for olderThan, i.e. stuck) or failed, for operators and for the
// supervisor's sweep.
func (a *api) handleList() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		status := Status(q.Get("status"))
		if status != StatusInProgress && status != StatusFailed {
			web.WriteProblem(w, r, web.Validation([]web.FieldError{{Field: "status", Error: "must be InProgress or Failed"}}))
			return
		}
		var olderThan time.Duration
		if s := q.Get("olderThan"); s != "" {
			d, err := time.ParseDuration(s)
			if err != nil || d < 0 {
				web.WriteProblem(w, r, web.Validation([]web.FieldError{{Field: "olderThan", Error: "must be a duration such as 30s"}}))
				return
			}
			olderThan = d
		}
		ids, err := a.proc.index.list(r.Context(), status)
		if err != nil {
			a.storeFailed(w, r, err)
			return
		}
		out := []transactionBody{}
		cutoff := a.proc.now().Add(-olderThan)
		for _, id := range ids {
			tx, _, found, err := a.proc.store.Get(r.Context(), txKey(id))
			if err != nil {
				a.storeFailed(w, r, err)
				return
			}
			// The index is a hint: trust only the record itself.
			if !found || tx.Status != status || (olderThan > 0 && tx.UpdatedAt.After(cutoff)) {
				continue
			}
			out = append(out, view(tx))
		}
		web.WriteJSON(w, http.StatusOK, map[string]any{"transactions": out})
	})
}

// handleCompensation records the supervisor's progress on a failed
// transaction, so the delivery request's status shows it.
func (a *api) handleCompensation() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := mux.Vars(r)["id"]
		var b struct {
			Status string `json:"status"`
		}
		if p := web.DecodeJSON(w, r, &b); p != nil {
			web.WriteProblem(w, r, p)
			return
		}
		if b.Status != "compensating" && b.Status != "compensated" {
			web.WriteProblem(w, r, web.Validation([]web.FieldError{{Field: "status", Error: "must be compensating or compensated"}}))
			return
		}
		tx, err := sidecar.UpdateKey[Transaction](r.Context(), a.proc.store, txKey(id), func(tx *Transaction, found bool) (bool, error) {
			if !found || tx.Compensation == "compensated" || tx.Compensation == b.Status {
				return false, nil
			}
			now := a.proc.now().UTC()
			tx.Compensation, tx.UpdatedAt = b.Status, now
			if b.Status == "compensated" {
				tx.CompensatedAt = &now
			}
			return true, nil
		})
		switch {
		case err != nil:
			a.storeFailed(w, r, err)
		case tx.DeliveryID == "":
			web.WriteProblem(w, r, web.NotFound("no transaction for delivery "+id))
		default:
			web.WriteJSON(w, http.StatusOK, view(tx))
		}
	})
}

// handleResume runs a stuck transaction's remaining steps now, as a
// redelivered request would. The supervisor's sweep calls it.
func (a *api) handleResume() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := mux.Vars(r)["id"]
		tx, _, found, err := a.proc.store.Get(r.Context(), txKey(id))
		switch {
		case err != nil:
			a.storeFailed(w, r, err)
			return
		case !found || !tx.HasRequest:
			web.WriteProblem(w, r, web.NotFound("no transaction to resume for delivery "+id))
			return
		}
		if err := a.proc.Requested(r.Context(), tx.Request); err != nil {
			a.log.WarnContext(r.Context(), "resume failed", "deliveryId", id, "err", err)
		}
		tx, _, _, err = a.proc.store.Get(r.Context(), txKey(id))
		if err != nil {
			a.storeFailed(w, r, err)
			return
		}
		web.WriteJSON(w, http.StatusOK, view(tx))
	})
}
