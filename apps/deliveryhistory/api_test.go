package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fabrikam/dronedelivery/internal/messages"
	"github.com/fabrikam/dronedelivery/internal/sidecar"
	"github.com/fabrikam/dronedelivery/internal/sidecar/sidecartest"
	"github.com/fabrikam/dronedelivery/internal/web"
)

var t0 = time.Date(2026, 5, 14, 9, 0, 0, 0, time.UTC)

type fixture struct {
	store   *sidecartest.Store[Timeline]
	handler http.Handler
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{store: sidecartest.NewStore[Timeline]()}
	a := &api{log: slog.New(slog.DiscardHandler), store: f.store, now: func() time.Time { return t0 }}
	r := web.NewRouter(a.log)
	a.routes(r)
	f.handler = r
	return f
}

// event is the seq-th delivery event of delivery id.
func event(id string, seq int, stage string) messages.DeliveryEvent {
	return messages.DeliveryEvent{DeliveryID: id, Sequence: seq, Stage: stage, At: t0.Add(time.Duration(seq) * time.Minute)}
}

// deliver posts ev as the sidecar would, with the CloudEvent id and type the
// delivery service gives it unless overridden, and returns the answer.
func (f *fixture) deliver(t *testing.T, ev messages.DeliveryEvent, id, typ string) string {
	t.Helper()
	if id == "" {
		id = messages.DeliveryEventID(ev.DeliveryID, ev.Sequence, ev.Stage)
	}
	if typ == "" {
		typ = messages.DeliveryEventType(ev.Stage)
	}
	data, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf(`{"id":%q,"type":%q,"topic":"delivery-events","pubsubname":"pubsub","data":%s}`, id, typ, data)
	rec := httptest.NewRecorder()
	f.handler.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, routeDeliveryEvent, strings.NewReader(body)))
	var resp struct{ Status string }
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
		t.Fatalf("answer %q: %v", rec.Body, err)
	}
	return resp.Status
}

func (f *fixture) history(t *testing.T, id string) (historyBody, int) {
	t.Helper()
	rec := httptest.NewRecorder()
	f.handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/deliveries/"+id+"/history", nil))
	var h historyBody
	if rec.Code == http.StatusOK {
		if err := json.Unmarshal(rec.Body.Bytes(), &h); err != nil {
			t.Fatal(err)
		}
	}
	return h, rec.Code
}

func stagesOf(h historyBody) []string {
	out := make([]string, len(h.Events))
	for i, e := range h.Events {
		out[i] = e.Stage
	}
	return out
}

var flown = []messages.DeliveryEvent{
	event("d1", 1, messages.StageCreated),
	event("d1", 2, messages.StageRescheduled),
	event("d1", 3, messages.StageHeadedToPickup),
	event("d1", 4, messages.StageHeadedToDropoff),
	event("d1", 5, messages.StageCompleted),
}

func TestTimelineInOrderWhateverTheArrival(t *testing.T) {
	t.Parallel()
	want := []string{"Created", "Rescheduled", "HeadedToPickup", "HeadedToDropoff", "Completed"}
	for i := range 20 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			// Every event two or three times, in any order.
			var arrivals []messages.DeliveryEvent
			for _, e := range flown {
				for range 2 + rng.IntN(2) {
					arrivals = append(arrivals, e)
				}
			}
			rng.Shuffle(len(arrivals), func(a, b int) { arrivals[a], arrivals[b] = arrivals[b], arrivals[a] })
			for _, e := range arrivals {
				if got := f.deliver(t, e, "", ""); got != sidecar.StatusSuccess {
					t.Fatalf("event %d: %s", e.Sequence, got)
				}
			}
			h, code := f.history(t, "d1")
			if code != http.StatusOK || !h.Complete || !slices.Equal(stagesOf(h), want) {
				t.Fatalf("history %d %+v, want %v complete", code, stagesOf(h), want)
			}
			for i, e := range h.Events {
				if e.Sequence != i+1 || e.EventID != messages.DeliveryEventID("d1", i+1, e.Stage) ||
					e.Type != messages.DeliveryEventType(e.Stage) || !e.ReceivedAt.Equal(t0) {
					t.Errorf("entry %d: %+v", i, e)
				}
			}
		})
	}
}

func TestTimelineWithAGapIsIncomplete(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.deliver(t, flown[0], "", "")
	f.deliver(t, flown[2], "", "")
	h, _ := f.history(t, "d1")
	if h.Complete || len(h.Events) != 2 {
		t.Fatalf("history %+v, want two events and incomplete", h)
	}
	f.deliver(t, flown[1], "", "")
	if h, _ := f.history(t, "d1"); !h.Complete {
		t.Errorf("history %v, want complete once the gap is filled", stagesOf(h))
	}
}

func TestSameEventUnderAnotherIDIsKeptOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.deliver(t, flown[0], "", "")
	f.deliver(t, flown[0], "random-id-from-an-older-publisher", "")
	if h, _ := f.history(t, "d1"); len(h.Events) != 1 {
		t.Errorf("%d events, want 1: the sequence number names the stage change", len(h.Events))
	}
}

func TestCompletedKeepsTheConfirmation(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	e := event("d1", 1, messages.StageCompleted)
	e.Confirmation = &messages.Confirmation{Type: messages.ConfirmVoice, Reference: "r", RecordedAt: t0}
	f.deliver(t, e, "", "")
	h, _ := f.history(t, "d1")
	if c := h.Events[0].Confirmation; c == nil || c.Type != messages.ConfirmVoice {
		t.Errorf("confirmation %+v, want Voice", c)
	}
}

func TestSubscriptionAnswers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		ev      messages.DeliveryEvent
		typ     string
		storeUp bool
		want    string
	}{
		{"recorded", flown[0], "", true, sidecar.StatusSuccess},
		{"store down", flown[0], "", false, sidecar.StatusRetry},
		{"no delivery id", event("", 1, messages.StageCreated), "", true, sidecar.StatusDrop},
		{"no sequence", event("d1", 0, messages.StageCreated), "", true, sidecar.StatusDrop},
		{"type and stage disagree", flown[0], messages.TypeDeliveryTrackingCompleted, true, sidecar.StatusDrop},
		{"unknown stage", event("d1", 1, "Lost"), messages.TypeDeliveryTrackingCreated, true, sidecar.StatusDrop},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			if !tt.storeUp {
				f.store.Err = errors.New("store down")
			}
			if got := f.deliver(t, tt.ev, "", tt.typ); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
	t.Run("unknown type", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		rec := httptest.NewRecorder()
		f.handler.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, routeUnknown, strings.NewReader(`{"id":"x","type":"t","data":{}}`)))
		if !strings.Contains(rec.Body.String(), sidecar.StatusDrop) {
			t.Errorf("got %s, want DROP", rec.Body)
		}
	})
}

func TestHistoryNotFoundAndStoreDown(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if _, code := f.history(t, "nope"); code != http.StatusNotFound {
		t.Errorf("unknown delivery: %d, want 404", code)
	}
	f.store.Err = errors.New("store down")
	if _, code := f.history(t, "d1"); code != http.StatusServiceUnavailable {
		t.Errorf("store down: %d, want 503", code)
	}
}

// The declarative subscription routes every delivery event type here: one
// added to internal/messages and not to the YAML would be dropped.
func TestSubscriptionRoutesEveryDeliveryEventType(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join("..", "..", "components", "shared", "subscriptions-tracking.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	yaml := string(b)
	for _, typ := range messages.DeliveryTrackingTypes() {
		if !strings.Contains(yaml, `"`+typ+`"`) {
			t.Errorf("subscriptions-tracking.yaml does not route %s", typ)
		}
	}
	for _, route := range []string{routeDeliveryEvent, routeUnknown} {
		if !strings.Contains(yaml, "path: "+route) && !strings.Contains(yaml, "default: "+route) {
			t.Errorf("subscriptions-tracking.yaml has no route to %s", route)
		}
	}
	if !strings.Contains(yaml, `event.type == "`+messages.TypeDroneStatus+`"`) {
		t.Errorf("subscriptions-tracking.yaml does not route %s", messages.TypeDroneStatus)
	}
}
