package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/gorilla/mux"

	"github.com/fabrikam/dronedelivery/internal/messages"
	"github.com/fabrikam/dronedelivery/internal/sidecar"
	"github.com/fabrikam/dronedelivery/internal/web"
)

// A message lands in the dead letters either because an app found it
// unprocessable (parked by that app, with the reason) or because its
// subscriber kept failing until the sidecar's retries ran out (parked by
// "sidecar"): an outage longer than the retry budget, such as a history
// store down for minutes. The second kind is worth sending again once the
// cause is fixed; these routes let an operator do that, one message or a
// whole topic's worth.

const codeNotReplayable = "not-replayable"

func deadLetterKey(id string) string { return "deadletter:" + id }

var errNotReplayable = errors.New("not replayable")

// replay publishes the dead letter's message again, on its original topic
// with its original type, and records that it did.
func (a *api) replay(ctx context.Context, d deadLetter) (deadLetter, error) {
	if d.Topic == "" || d.Topic == messages.TopicDeadLetters || len(d.Data) == 0 {
		return d, errNotReplayable
	}
	// The delivery id keeps the replayed message in its delivery's partition
	// on brokers that partition.
	var key struct {
		DeliveryID string `json:"deliveryId"`
	}
	_ = json.Unmarshal(d.Data, &key)
	if err := a.pub.Publish(ctx, d.Topic, d.Type, key.DeliveryID, d.Data); err != nil {
		return d, err
	}
	now := a.sup.now().UTC()
	updated, err := sidecar.UpdateKey(ctx, a.dead, deadLetterKey(d.ID), func(v *deadLetter, found bool) (bool, error) {
		if !found {
			return false, nil
		}
		v.Replays++
		v.LastReplayAt = &now
		return true, nil
	})
	if err != nil {
		// Published already; only the record of it is missing.
		a.sup.log.WarnContext(ctx, "record dead-letter replay", "id", d.ID, "err", err)
		d.Replays++
		d.LastReplayAt = &now
		return d, nil
	}
	a.sup.log.InfoContext(ctx, "dead letter replayed", "id", d.ID, "topic", d.Topic, "type", d.Type, "replays", updated.Replays)
	return updated, nil
}

// handleReplay sends one dead letter back to its topic, whoever parked it:
// the operator decides that the cause is gone.
func (a *api) handleReplay() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		id := mux.Vars(r)["id"]
		d, _, found, err := a.dead.Get(ctx, deadLetterKey(id))
		switch {
		case err != nil:
			a.storeFailed(w, r, err)
			return
		case !found:
			web.WriteProblem(w, r, web.NotFound("no dead letter "+id))
			return
		}
		d, err = a.replay(ctx, d)
		switch {
		case errors.Is(err, errNotReplayable):
			web.WriteProblem(w, r, web.NewProblem(http.StatusConflict, codeNotReplayable, "Dead letter cannot be replayed",
				"the dead letter has no original topic or no message data to send again"))
		case err != nil:
			a.sup.log.WarnContext(ctx, "replay dead letter", "id", id, "err", err)
			web.WriteProblem(w, r, web.Unavailable("the broker did not accept the message; retry later", 1))
		default:
			web.WriteJSON(w, http.StatusAccepted, d)
		}
	})
}

// handleReplayTopic sends back every dead letter of one topic that the
// sidecar set aside and that was not replayed yet: the recovery after an
// outage. Messages an app parked as unprocessable stay where they are.
func (a *api) handleReplayTopic() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		topic := r.URL.Query().Get("topic")
		if topic == "" || topic == messages.TopicDeadLetters {
			web.WriteProblem(w, r, web.Validation([]web.FieldError{{Field: "topic", Error: "name the topic whose dead letters to replay"}}))
			return
		}
		ix, _, _, err := a.sup.index.Get(ctx, deadLettersIndex)
		if err != nil {
			a.storeFailed(w, r, err)
			return
		}
		replayed := []string{}
		for _, id := range newestFirst(ix) {
			d, _, found, err := a.dead.Get(ctx, deadLetterKey(id))
			if err != nil {
				a.storeFailed(w, r, err)
				return
			}
			if !found || d.Topic != topic || d.ParkedBy != parkedBySidecar || d.Replays > 0 {
				continue
			}
			if _, err := a.replay(ctx, d); err != nil {
				if errors.Is(err, errNotReplayable) {
					continue
				}
				a.sup.log.WarnContext(ctx, "replay dead letters", "topic", topic, "replayed", len(replayed), "err", err)
				web.WriteProblem(w, r, web.Unavailable("the broker did not accept a message; the rest were not replayed, retry later", 1))
				return
			}
			replayed = append(replayed, id)
		}
		web.WriteJSON(w, http.StatusOK, map[string]any{"topic": topic, "replayed": replayed})
	})
}
