package failures

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fabrikam/dronedelivery/internal/messages"
)

// TestHistoryOutageIsReplayedFromDeadLetters takes the history service down
// for longer than the sidecar's retry budget for a message (resiliency
// "messageRedelivery", about a minute): the event is set aside on the
// dead-letter topic, listed for operators with who set it aside, and once
// the service is back an operator's replay of the topic gets it recorded.
func TestHistoryOutageIsReplayedFromDeadLetters(t *testing.T) {
	inject(t, "deliveryhistory", map[string]any{"path": "/events/delivery-event", "status": 503, "times": -1})

	id := uuid.NewString()
	ev := messages.DeliveryEvent{DeliveryID: id, Sequence: 1, Stage: messages.StageCreated, At: time.Now().UTC()}
	data, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	// With the id the delivery service would give it, slashes and all.
	publishWithID(t, messages.TopicDeliveryEvents, messages.DeliveryEventType(messages.StageCreated),
		messages.DeliveryEventID(id, 1, messages.StageCreated), data)

	type dead struct {
		ID       string          `json:"id"`
		Topic    string          `json:"topic"`
		ParkedBy string          `json:"parkedBy"`
		Replays  int             `json:"replays"`
		Data     json.RawMessage `json:"data"`
	}
	var parked dead
	waitFor(t, 3*time.Minute, func() (bool, string) {
		var list struct {
			DeadLetters []dead `json:"deadLetters"`
		}
		r := env.Do(t, "supervisor", http.MethodGet, "/api/deadletters", nil, nil)
		if r.Status != http.StatusOK {
			return false, http.StatusText(r.Status)
		}
		r.JSON(t, &list)
		for _, d := range list.DeadLetters {
			var got messages.DeliveryEvent
			if json.Unmarshal(d.Data, &got) == nil && got.DeliveryID == id {
				parked = d
				return true, ""
			}
		}
		return false, "event not set aside yet"
	})
	setAside := time.Since(began)
	if parked.Topic != messages.TopicDeliveryEvents || parked.ParkedBy != "sidecar" || parked.ID != messages.DeliveryEventID(id, 1, messages.StageCreated) {
		t.Fatalf("dead letter %+v: want the original topic, set aside by the sidecar", parked)
	}
	if r := env.Do(t, "deliveryhistory", http.MethodGet, "/api/deliveries/"+id+"/history", nil, nil); r.Status != http.StatusNotFound {
		t.Fatalf("history answered %d during the outage", r.Status)
	}

	// Replaying while the cause remains is possible but pointless; the
	// operator fixes it first.
	clearFaults(t, "deliveryhistory")
	var replay struct {
		Replayed []string `json:"replayed"`
	}
	r := env.Do(t, "supervisor", http.MethodPost, "/api/deadletters/replay?topic="+messages.TopicDeliveryEvents, nil, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("replay answered %d %s", r.Status, r.Body)
	}
	r.JSON(t, &replay)
	if !slices.Contains(replay.Replayed, parked.ID) {
		t.Fatalf("replayed %v, want it to include %s", replay.Replayed, parked.ID)
	}
	replayedAt := time.Now()
	waitFor(t, 30*time.Second, func() (bool, string) {
		r := env.Do(t, "deliveryhistory", http.MethodGet, "/api/deliveries/"+id+"/history", nil, nil)
		if r.Status != http.StatusOK {
			return false, "history " + http.StatusText(r.Status)
		}
		var h struct {
			Events []messages.DeliveryEvent `json:"events"`
		}
		r.JSON(t, &h)
		return len(h.Events) == 1 && h.Events[0].Stage == messages.StageCreated, "event not recorded"
	})
	t.Logf("history down: event set aside after %s, recorded %s after the replay",
		setAside.Round(100*time.Millisecond), time.Since(replayedAt).Round(time.Millisecond))

	var after struct {
		DeadLetters []dead `json:"deadLetters"`
	}
	env.Do(t, "supervisor", http.MethodGet, "/api/deadletters?id="+url.QueryEscape(parked.ID), nil, nil).JSON(t, &after)
	if len(after.DeadLetters) != 1 || after.DeadLetters[0].Replays != 1 {
		t.Errorf("dead letter %s shows %+v, want 1 replay", parked.ID, after.DeadLetters)
	}
	// A second replay of the topic leaves what was replayed alone.
	r = env.Do(t, "supervisor", http.MethodPost, "/api/deadletters/replay?topic="+messages.TopicDeliveryEvents, nil, nil)
	replay.Replayed = nil
	r.JSON(t, &replay)
	if slices.Contains(replay.Replayed, parked.ID) {
		t.Errorf("replayed %s twice", parked.ID)
	}
}
