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
	r.Handle(routeRequested, sidecar.Subscription(a.log, a.onRequested)).Methods(http.MethodPost)
	r.Handle(routeRescheduled, sidecar.Subscription(a.log, a.onRescheduled)).Methods(http.MethodPost)
	r.Handle(routeCanceled, sidecar.Subscription(a.log, a.onCanceled)).Methods(http.MethodPost)
	r.Handle(routeUnknown, sidecar.Subscription(a.log, func(_ context.Context, e sidecar.Event) error {
		return sidecar.Drop(fmt.Errorf("unknown event type %q", e.Type))
	})).Methods(http.MethodPost)
	r.Handle("/api/transactions/{id}", a.handleGet()).Methods(http.MethodGet)
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
	DeliveryID string    `json:"deliveryId"`
	Status     Status    `json:"status"`
	Reason     string    `json:"reason,omitempty"`
	Step       string    `json:"step"`
	FailedStep string    `json:"failedStep,omitempty"`
	Attempts   int       `json:"attempts,omitempty"`
	Schedule   *Schedule `json:"schedule,omitempty"`
	CreatedAt  time.Time `json:"createdAt"`
	UpdatedAt  time.Time `json:"updatedAt"`
}

func (a *api) handleGet() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := mux.Vars(r)["id"]
		tx, _, found, err := a.proc.store.Get(r.Context(), txKey(id))
		switch {
		case err != nil:
			a.log.WarnContext(r.Context(), "read transaction", "err", err)
			web.WriteProblem(w, r, web.Unavailable("the transaction store is unavailable", 1))
		case !found:
			web.WriteProblem(w, r, web.NotFound("no transaction for delivery "+id))
		default:
			web.WriteJSON(w, http.StatusOK, transactionBody{
				DeliveryID: tx.DeliveryID, Status: tx.Status, Reason: tx.Reason, Step: tx.Progress.Next.String(),
				FailedStep: tx.FailedStep, Attempts: tx.Attempts, Schedule: tx.schedule(),
				CreatedAt: tx.CreatedAt, UpdatedAt: tx.UpdatedAt,
			})
		}
	})
}
