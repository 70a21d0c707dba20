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

type store interface {
	Get(ctx context.Context, key string) (Timeline, string, bool, error)
	Update(ctx context.Context, key string, fn func(v *Timeline, found bool) (bool, error)) (Timeline, error)
}

// Subscription routes; components/shared/subscriptions-tracking.yaml routes
// every delivery event type to the first and anything else on the topic to
// the second.
const (
	routeDeliveryEvent = "/events/delivery-event"
	routeUnknown       = "/events/delivery-unknown"
)

type api struct {
	log   *slog.Logger
	store store
	now   func() time.Time
}

func key(id string) string { return "history:" + id }

func (a *api) routes(r *mux.Router) {
	r.Handle("/api/deliveries/{id}/history", a.handleHistory()).Methods(http.MethodGet)
	r.Handle(routeDeliveryEvent, sidecar.Subscription(a.log, a.onDeliveryEvent)).Methods(http.MethodPost)
	r.Handle(routeUnknown, sidecar.Subscription(a.log, func(_ context.Context, e sidecar.Event) error {
		return sidecar.Drop(fmt.Errorf("unknown event type %q on %s", e.Type, e.Topic))
	})).Methods(http.MethodPost)
}

// onDeliveryEvent adds a delivery event to its delivery's timeline.
func (a *api) onDeliveryEvent(ctx context.Context, e sidecar.Event) error {
	var ev messages.DeliveryEvent
	if err := e.Decode(&ev); err != nil {
		return err
	}
	switch {
	case ev.DeliveryID == "" || ev.Sequence < 1:
		return sidecar.Drop(errors.New("delivery event without deliveryId or sequence"))
	case messages.DeliveryEventType(ev.Stage) != e.Type:
		return sidecar.Drop(fmt.Errorf("delivery event of type %s has stage %q", e.Type, ev.Stage))
	}
	id := e.ID
	if id == "" {
		id = messages.DeliveryEventID(ev.DeliveryID, ev.Sequence, ev.Stage)
	}
	entry := Entry{EventID: id, Type: e.Type, DeliveryEvent: ev, ReceivedAt: a.now().UTC()}
	added := false
	_, err := a.store.Update(ctx, key(ev.DeliveryID), func(t *Timeline, found bool) (bool, error) {
		if !found {
			*t = Timeline{DeliveryID: ev.DeliveryID}
		}
		added = t.add(entry)
		return added, nil
	})
	if err != nil {
		return fmt.Errorf("record delivery event %s: %w", id, err)
	}
	if added {
		a.log.DebugContext(ctx, "delivery event recorded", "deliveryId", ev.DeliveryID, "seq", ev.Sequence, "stage", ev.Stage)
	}
	return nil
}

// historyBody is a delivery's timeline. Complete is false while an event is
// missing between the first and the last (still on its way).
type historyBody struct {
	DeliveryID string  `json:"deliveryId"`
	Complete   bool    `json:"complete"`
	Events     []Entry `json:"events"`
}

func (a *api) handleHistory() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := mux.Vars(r)["id"]
		t, _, found, err := a.store.Get(r.Context(), key(id))
		switch {
		case err != nil:
			a.log.WarnContext(r.Context(), "state store call failed", "err", err)
			web.WriteProblem(w, r, web.Unavailable("the history store is unavailable", 1))
		case !found:
			web.WriteProblem(w, r, web.NotFound("no history for delivery "+id))
		default:
			web.WriteJSON(w, http.StatusOK, historyBody{DeliveryID: t.DeliveryID, Complete: t.complete(), Events: t.Events})
		}
	})
}
