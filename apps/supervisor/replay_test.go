package main

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/fabrikam/dronedelivery/internal/messages"
	"github.com/fabrikam/dronedelivery/internal/sidecar/sidecartest"
	"github.com/fabrikam/dronedelivery/internal/web"
)

var t0 = time.Date(2026, 5, 14, 9, 0, 0, 0, time.UTC)

type replayFixture struct {
	dead    *sidecartest.Store[deadLetter]
	index   *sidecartest.Store[listIndex]
	pub     *sidecartest.Publisher
	handler http.Handler
}

func newReplayFixture(t *testing.T) *replayFixture {
	t.Helper()
	f := &replayFixture{
		dead:  sidecartest.NewStore[deadLetter](),
		index: sidecartest.NewStore[listIndex](),
		pub:   &sidecartest.Publisher{},
	}
	log := slog.New(slog.DiscardHandler)
	a := &api{
		sup:  &supervisor{log: log, index: f.index, now: func() time.Time { return t0 }},
		dead: f.dead, pub: f.pub,
	}
	r := web.NewRouter(log)
	a.routes(r)
	f.handler = r
	return f
}

// park stores a dead letter as onDeadLetter would.
func (f *replayFixture) park(t *testing.T, id, topic, parkedBy, data string, age time.Duration) {
	t.Helper()
	d := deadLetter{ID: id, ReceivedAt: t0.Add(-age), DeadLetter: messages.DeadLetter{
		Reason: "test", Topic: topic, Type: "com.fabrikam.test.v1", EventID: id, ParkedBy: parkedBy,
	}}
	if data != "" {
		d.Data = json.RawMessage(data)
	}
	if err := f.dead.Create(t.Context(), deadLetterKey(id), d); err != nil {
		t.Fatal(err)
	}
	addToIndex(t.Context(), slog.New(slog.DiscardHandler), f.index, deadLettersIndex, id, d.ReceivedAt)
}

func (f *replayFixture) post(t *testing.T, path string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	f.handler.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, path, nil))
	return rec
}

func TestReplayOneDeadLetter(t *testing.T) {
	t.Parallel()
	f := newReplayFixture(t)
	// A delivery event's id, slashes and all.
	const id = "d1/2/HeadedToDropoff"
	f.park(t, id, messages.TopicDeliveryEvents, "sidecar", `{"deliveryId":"d1","stage":"PickedUp"}`, time.Minute)

	rec := f.post(t, "/api/deadletters/replay?id="+url.QueryEscape(id))
	if rec.Code != http.StatusAccepted {
		t.Fatalf("replay answered %d %s", rec.Code, rec.Body)
	}
	msgs := f.pub.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d published, want 1", len(msgs))
	}
	m := msgs[0]
	data, _ := json.Marshal(m.Data)
	if m.Topic != messages.TopicDeliveryEvents || m.Type != "com.fabrikam.test.v1" || m.Key != "d1" || string(data) != `{"deliveryId":"d1","stage":"PickedUp"}` {
		t.Errorf("published %+v (data %s), want the original message on its topic, keyed by its delivery", m, data)
	}
	var list struct{ DeadLetters []deadLetter }
	rec = httptest.NewRecorder()
	f.handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/deadletters?id="+url.QueryEscape(id), nil))
	if err := json.Unmarshal(rec.Body.Bytes(), &list); err != nil || len(list.DeadLetters) != 1 {
		t.Fatalf("GET ?id= answered %d %s", rec.Code, rec.Body)
	}
	if d := list.DeadLetters[0]; d.ID != id || d.Replays != 1 || d.LastReplayAt == nil || !d.LastReplayAt.Equal(t0) {
		t.Errorf("record %+v, want one replay at %s", d, t0)
	}

	if rec := f.post(t, "/api/deadletters/replay?id=nope"); rec.Code != http.StatusNotFound {
		t.Errorf("unknown dead letter answered %d", rec.Code)
	}
}

func TestReplayRefusesWhatCannotBeSentAgain(t *testing.T) {
	t.Parallel()
	f := newReplayFixture(t)
	f.park(t, "no-data", messages.TopicDeliveryEvents, "sidecar", "", time.Minute)
	f.park(t, "no-topic", "", "scheduler", `{}`, time.Minute)
	for _, id := range []string{"no-data", "no-topic"} {
		rec := f.post(t, "/api/deadletters/replay?id="+id)
		var p web.Problem
		if rec.Code != http.StatusConflict || json.Unmarshal(rec.Body.Bytes(), &p) != nil || p.Code != codeNotReplayable {
			t.Errorf("%s: answered %d %s, want 409 %s", id, rec.Code, rec.Body, codeNotReplayable)
		}
	}
	if n := len(f.pub.Messages()); n != 0 {
		t.Errorf("%d published", n)
	}
}

func TestReplayTopicSendsBackWhatTheSidecarSetAside(t *testing.T) {
	t.Parallel()
	f := newReplayFixture(t)
	f.park(t, "a", messages.TopicDeliveryEvents, "sidecar", `{"deliveryId":"d1"}`, 3*time.Minute)
	f.park(t, "b", messages.TopicDeliveryEvents, "sidecar", `{"deliveryId":"d2"}`, 2*time.Minute)
	f.park(t, "poison", messages.TopicDeliveryEvents, "deliveryhistory", `{"deliveryId":"d3"}`, time.Minute)
	f.park(t, "other", messages.TopicDroneStatus, "sidecar", `{"droneId":"x"}`, time.Minute)
	if rec := f.post(t, "/api/deadletters/replay?id=a"); rec.Code != http.StatusAccepted {
		t.Fatalf("replay a: %d", rec.Code)
	}

	rec := f.post(t, "/api/deadletters/replay?topic="+messages.TopicDeliveryEvents)
	var got struct{ Replayed []string }
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &got) != nil {
		t.Fatalf("answered %d %s", rec.Code, rec.Body)
	}
	// a was replayed already; poison was parked by its app; other is on
	// another topic.
	if !slices.Equal(got.Replayed, []string{"b"}) {
		t.Errorf("replayed %v, want [b]", got.Replayed)
	}
	if n := len(f.pub.Messages()); n != 2 {
		t.Errorf("%d published in all, want 2", n)
	}
	if rec := f.post(t, "/api/deadletters/replay"); rec.Code != http.StatusBadRequest {
		t.Errorf("replay without a topic answered %d", rec.Code)
	}
}
