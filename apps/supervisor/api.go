package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/gorilla/mux"

	"github.com/fabrikam/dronedelivery/internal/messages"
	"github.com/fabrikam/dronedelivery/internal/sidecar"
	"github.com/fabrikam/dronedelivery/internal/web"
)

// deadLetter is what the supervisor records of a message set aside.
type deadLetter struct {
	messages.DeadLetter
	ID         string    `json:"id"`
	ReceivedAt time.Time `json:"receivedAt"`
	// Replays counts the times an operator sent the message back to its
	// topic; LastReplayAt is the latest.
	Replays      int        `json:"replays,omitempty"`
	LastReplayAt *time.Time `json:"lastReplayAt,omitempty"`
}

type api struct {
	sup        *supervisor
	dead       sidecar.Versioned[deadLetter]
	pub        publisher
	stuckAfter time.Duration
}

// publisher sends a replayed message back to its topic; sidecar.Publisher
// is one.
type publisher interface {
	Publish(ctx context.Context, topic, eventType, key string, data any) error
}

// Routes that components/shared/*.yaml point at.
const (
	routeFailed     = "/events/delivery-failed"
	routeDeadLetter = "/events/dead-letter"
	// routeSweep is called by the cron input binding named "sweep".
	routeSweep = "/sweep"
)

func (a *api) routes(r *mux.Router) {
	log := a.sup.log
	r.Handle(routeFailed, sidecar.Subscription(log, a.onFailed)).Methods(http.MethodPost)
	r.Handle(routeDeadLetter, sidecar.Subscription(log, a.onDeadLetter)).Methods(http.MethodPost)
	r.Handle(routeSweep, a.handleSweep()).Methods(http.MethodPost, http.MethodOptions)
	r.Handle("/api/compensations", a.handleListCompensations()).Methods(http.MethodGet)
	r.Handle("/api/compensations/{id}", a.handleGetCompensation()).Methods(http.MethodGet)
	r.Handle("/api/deadletters", a.handleListDeadLetters()).Methods(http.MethodGet)
	// Dead letters are named by their CloudEvent id in the query: a
	// delivery event's id holds slashes ("{deliveryId}/{seq}/{stage}").
	r.Handle("/api/deadletters/replay", a.handleReplay()).Methods(http.MethodPost).Queries("id", "{id}")
	r.Handle("/api/deadletters/replay", a.handleReplayTopic()).Methods(http.MethodPost)
}

func (a *api) onFailed(ctx context.Context, e sidecar.Event) error {
	var f messages.DeliveryFailed
	if err := e.Decode(&f); err != nil {
		return err
	}
	if f.DeliveryID == "" {
		return sidecar.Drop(errors.New("failure message without deliveryId"))
	}
	return a.sup.compensate(ctx, f)
}

// parkedBySidecar names dead letters a sidecar's dead-letter policy moved.
const parkedBySidecar = "sidecar"

// onDeadLetter records a message set aside. Messages an app parked carry
// their reason; anything else was moved here by a sidecar's dead-letter
// policy after its retries ran out.
func (a *api) onDeadLetter(ctx context.Context, e sidecar.Event) error {
	d := deadLetter{ReceivedAt: time.Now().UTC()}
	if e.Type == messages.TypeDeadLetter {
		if err := e.Decode(&d.DeadLetter); err != nil {
			return err
		}
	} else {
		d.DeadLetter = messages.DeadLetter{
			Reason: "set aside by the sidecar: delivery kept failing until its retries ran out",
			Topic:  e.Topic, Type: e.Type, EventID: e.ID, Data: e.Data, ParkedBy: parkedBySidecar, ParkedAt: d.ReceivedAt,
		}
	}
	id := e.ID
	if id == "" {
		return sidecar.Drop(errors.New("dead letter without an id"))
	}
	d.ID = id
	if err := a.dead.Create(ctx, deadLetterKey(id), d); err != nil && !errors.Is(err, sidecar.ErrConflict) {
		return err
	}
	addToIndex(ctx, a.sup.log, a.sup.index, deadLettersIndex, id, d.ReceivedAt)
	a.sup.log.WarnContext(ctx, "dead letter recorded", "id", id, "topic", d.Topic, "type", d.Type, "reason", d.Reason)
	return nil
}

// transaction is the part of the scheduler's view the sweep needs.
type transaction struct {
	DeliveryID   string                     `json:"deliveryId"`
	Status       string                     `json:"status"`
	Reason       string                     `json:"reason"`
	Step         string                     `json:"step"`
	FailedStep   string                     `json:"failedStep"`
	Compensation string                     `json:"compensation"`
	Request      messages.DeliveryRequested `json:"request"`
}

// handleSweep finds transactions the normal path left behind and finishes
// them: in-progress ones untouched for stuckAfter are resumed (the scheduler
// runs their remaining steps, or fails them, which leads to compensation);
// failed ones whose compensation never completed (its message lost or set
// aside) are compensated here.
func (a *api) handleSweep() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		resumed, compensated, err := a.sweep(ctx)
		if err != nil {
			a.sup.log.WarnContext(ctx, "sweep", "err", err)
			web.WriteProblem(w, r, web.Unavailable("sweep incomplete: "+err.Error(), 10))
			return
		}
		if resumed+compensated > 0 {
			a.sup.log.InfoContext(ctx, "sweep finished stuck transactions", "resumed", resumed, "compensated", compensated)
		}
		web.WriteJSON(w, http.StatusOK, map[string]int{"resumed": resumed, "compensated": compensated})
	})
}

func (a *api) sweep(ctx context.Context) (resumed, compensated int, err error) {
	stuck, err := a.list(ctx, "InProgress")
	if err != nil {
		return 0, 0, err
	}
	var errs []error
	for _, t := range stuck {
		resp, err := a.sup.inv.Invoke(ctx, a.sup.schedulerID, http.MethodPost, "/api/transactions/"+t.DeliveryID+"/resume", nil)
		if err == nil && !resp.OK() {
			err = errors.New(resp.Detail())
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("resume %s: %w", t.DeliveryID, err))
			continue
		}
		resumed++
	}
	failed, err := a.list(ctx, "Failed")
	if err != nil {
		return resumed, 0, err
	}
	for _, t := range failed {
		if t.Compensation == statusCompensated {
			continue
		}
		f := messages.DeliveryFailed{
			DeliveryID: t.DeliveryID, Reason: t.Reason, FailedStep: t.FailedStep,
			Request: t.Request, ReachedStep: t.Step, FailedAt: time.Now().UTC(),
		}
		if err := a.sup.compensate(ctx, f); err != nil {
			errs = append(errs, err)
			continue
		}
		compensated++
	}
	return resumed, compensated, errors.Join(errs...)
}

func (a *api) list(ctx context.Context, status string) ([]transaction, error) {
	q := url.Values{"status": {status}, "olderThan": {a.stuckAfter.String()}}
	resp, err := a.sup.inv.Invoke(ctx, a.sup.schedulerID, http.MethodGet, "/api/transactions?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	if !resp.OK() {
		return nil, errors.New("scheduler answered " + resp.Detail())
	}
	var body struct {
		Transactions []transaction `json:"transactions"`
	}
	if err := json.Unmarshal(resp.Body, &body); err != nil {
		return nil, err
	}
	return body.Transactions, nil
}

func (a *api) handleListCompensations() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		status := r.URL.Query().Get("status")
		ix, _, _, err := a.sup.index.Get(r.Context(), compensationsIndex)
		if err != nil {
			a.storeFailed(w, r, err)
			return
		}
		out := []compensation{}
		for _, id := range newestFirst(ix) {
			c, _, found, err := a.sup.comps.Get(r.Context(), compKey(id))
			if err != nil {
				a.storeFailed(w, r, err)
				return
			}
			if found && (status == "" || c.Status == status) {
				out = append(out, c)
			}
		}
		web.WriteJSON(w, http.StatusOK, map[string]any{"compensations": out})
	})
}

func (a *api) handleGetCompensation() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := mux.Vars(r)["id"]
		c, _, found, err := a.sup.comps.Get(r.Context(), compKey(id))
		switch {
		case err != nil:
			a.storeFailed(w, r, err)
		case !found:
			web.WriteProblem(w, r, web.NotFound("no compensation for delivery "+id))
		default:
			web.WriteJSON(w, http.StatusOK, c)
		}
	})
}

// handleListDeadLetters lists the dead letters, newest first, or with ?id=
// the one of that id (none when unknown).
func (a *api) handleListDeadLetters() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ids, isQuery := r.URL.Query()["id"]
		if !isQuery {
			ix, _, _, err := a.sup.index.Get(r.Context(), deadLettersIndex)
			if err != nil {
				a.storeFailed(w, r, err)
				return
			}
			ids = newestFirst(ix)
		}
		out := []deadLetter{}
		for _, id := range ids {
			d, _, found, err := a.dead.Get(r.Context(), deadLetterKey(id))
			if err != nil {
				a.storeFailed(w, r, err)
				return
			}
			if found {
				out = append(out, d)
			}
		}
		web.WriteJSON(w, http.StatusOK, map[string]any{"deadLetters": out})
	})
}

func (a *api) storeFailed(w http.ResponseWriter, r *http.Request, err error) {
	a.sup.log.WarnContext(r.Context(), "state store call failed", "err", err)
	web.WriteProblem(w, r, web.Unavailable("the supervisor's store is unavailable", 1))
}
