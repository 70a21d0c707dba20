package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fabrikam/dronedelivery/internal/messages"
	"github.com/fabrikam/dronedelivery/internal/sidecar/sidecartest"
	"github.com/fabrikam/dronedelivery/internal/web"
	"github.com/fabrikam/dronedelivery/internal/workflow"
)

type apiFixture struct {
	*fixture
	handler http.Handler
}

func newAPIFixture(t *testing.T) *apiFixture {
	t.Helper()
	f := newFixture(t)
	log := slog.New(slog.DiscardHandler)
	a := &api{log: log, proc: f.proc}
	router := web.NewRouter(log)
	a.routes(router)
	return &apiFixture{fixture: f, handler: router}
}

func (f *apiFixture) do(t *testing.T, method, path, body string) *httptest.ResponseRecorder {
	t.Helper()
	var req *http.Request
	if body == "" {
		req = httptest.NewRequest(method, path, nil)
	} else {
		req = httptest.NewRequest(method, path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/cloudevents+json")
	}
	rec := httptest.NewRecorder()
	f.handler.ServeHTTP(rec, req)
	return rec
}

// cloudEvent wraps data (raw JSON) the way the sidecar delivers it.
func cloudEvent(t *testing.T, eventType string, data any) string {
	t.Helper()
	var raw json.RawMessage
	switch d := data.(type) {
	case string:
		raw = json.RawMessage(d)
	default:
		b, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		raw = b
	}
	b, err := json.Marshal(map[string]any{
		"id": "evt-1", "source": "ingestion", "type": eventType, "specversion": "1.0",
		"datacontenttype": "application/json", "topic": messages.TopicDeliveryRequests,
		"pubsubname": messages.PubSub, "data": raw,
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// subscriptionStatus asserts the 200 answer of a subscription route and
// returns its status.
func subscriptionStatus(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	if rec.Code != http.StatusOK {
		t.Fatalf("HTTP status %d, want 200; body %s", rec.Code, rec.Body)
	}
	var b struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil {
		t.Fatalf("decode %q: %v", rec.Body, err)
	}
	return b.Status
}

func TestSubscriptionRequested(t *testing.T) {
	f := newAPIFixture(t)
	rec := f.do(t, http.MethodPost, routeRequested, cloudEvent(t, messages.TypeDeliveryRequested, request("d1")))
	if got := subscriptionStatus(t, rec); got != "SUCCESS" {
		t.Fatalf("status %q, want SUCCESS; body %s", got, rec.Body)
	}
	if got := f.steps.stepsRun(); !equalSteps(got, allSteps) {
		t.Fatalf("steps run %v", got)
	}
	if tx := f.tx(t, "d1"); tx.Status != StatusScheduled {
		t.Fatalf("status %s", tx.Status)
	}
}

func TestSubscriptionDrops(t *testing.T) {
	tests := []struct {
		name, route, body string
	}{
		{"not a cloudevent", routeRequested, `{not json`},
		{"no data", routeRequested, `{"id":"e","type":"x"}`},
		{"null data", routeRequested, `{"id":"e","type":"x","data":null}`},
		{"data of the wrong shape", routeRequested, `{"id":"e","type":"x","data":{"deliveryId":42}}`},
		{"data is a string", routeRequested, `{"id":"e","type":"x","data":"{\"deliveryId\":\"d1\"}"}`},
		{"unknown field", routeRequested, `{"id":"e","type":"x","data":{"deliveryId":"d1","color":"red"}}`},
		{"no delivery id", routeRequested, `{"id":"e","type":"x","data":{"ownerId":"contoso"}}`},
		{"cancel without id", routeCanceled, `{"id":"e","type":"x","data":{"requestedAt":"2030-05-14T09:00:00Z"}}`},
		{"cancel unknown field", routeCanceled, `{"id":"e","type":"x","data":{"deliveryId":"d1","why":"x"}}`},
		{"reschedule without id", routeRescheduled, `{"id":"e","type":"x","data":{}}`},
		{"reschedule bad time", routeRescheduled, `{"id":"e","type":"x","data":{"deliveryId":"d1","pickupTime":"tomorrow"}}`},
		{"unknown type", routeUnknown, `{"id":"e","type":"com.fabrikam.delivery.exploded.v1","data":{"deliveryId":"d1"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newAPIFixture(t)
			rec := f.do(t, http.MethodPost, tt.route, tt.body)
			// An undecodable CloudEvent is dropped to the sidecar's
			// dead-letter policy; anything the handler refuses is parked on
			// the dead-letter topic with its reason and acknowledged.
			want, parked := "SUCCESS", 1
			if tt.name == "not a cloudevent" {
				want, parked = "DROP", 0
			}
			if got := subscriptionStatus(t, rec); got != want {
				t.Fatalf("status %q, want %s", got, want)
			}
			var dead []sidecartest.Published
			for _, m := range f.pub.Messages() {
				if m.Topic == messages.TopicDeadLetters {
					dead = append(dead, m)
				}
			}
			if len(dead) != parked {
				t.Fatalf("%d messages parked on the dead-letter topic, want %d", len(dead), parked)
			}
			if parked == 1 {
				dl, ok := dead[0].Data.(messages.DeadLetter)
				if !ok || dl.Reason == "" || dl.Topic == "" && dl.EventID != "e" {
					t.Errorf("dead letter %+v lacks its reason or origin", dead[0].Data)
				}
			}
			if ev := f.steps.Events(); len(ev) != 0 {
				t.Fatalf("a dropped message reached the steps: %+v", ev)
			}
			if f.store.Len() != 0 {
				t.Fatal("a dropped message wrote a record")
			}
		})
	}
}

func TestSubscriptionRetries(t *testing.T) {
	t.Run("transient step failure", func(t *testing.T) {
		f := newAPIFixture(t)
		f.steps.script(workflow.StepAccount, errTransient)
		rec := f.do(t, http.MethodPost, routeRequested, cloudEvent(t, messages.TypeDeliveryRequested, request("d1")))
		if got := subscriptionStatus(t, rec); got != "RETRY" {
			t.Fatalf("status %q, want RETRY", got)
		}
		if tx := f.tx(t, "d1"); tx.Attempts != 1 {
			t.Fatalf("attempts %d, want 1", tx.Attempts)
		}
	})
	t.Run("store down", func(t *testing.T) {
		f := newAPIFixture(t)
		f.store.Err = errors.New("down")
		rec := f.do(t, http.MethodPost, routeCanceled, cloudEvent(t, messages.TypeDeliveryCanceled, cancelOf("d1")))
		if got := subscriptionStatus(t, rec); got != "RETRY" {
			t.Fatalf("status %q, want RETRY", got)
		}
	})
	t.Run("reschedule before scheduled", func(t *testing.T) {
		f := newAPIFixture(t)
		pt := time.Date(2030, 5, 14, 16, 0, 0, 0, time.UTC)
		rec := f.do(t, http.MethodPost, routeRescheduled, cloudEvent(t, messages.TypeDeliveryRescheduled,
			messages.DeliveryRescheduled{DeliveryID: "d1", PickupTime: &pt}))
		if got := subscriptionStatus(t, rec); got != "RETRY" {
			t.Fatalf("status %q, want RETRY", got)
		}
	})
}

func TestSubscriptionCancelAndReschedule(t *testing.T) {
	f := newAPIFixture(t)
	if got := subscriptionStatus(t, f.do(t, http.MethodPost, routeRequested,
		cloudEvent(t, messages.TypeDeliveryRequested, request("d1")))); got != "SUCCESS" {
		t.Fatalf("request: %q", got)
	}
	pt := time.Date(2030, 5, 14, 16, 0, 0, 0, time.UTC)
	if got := subscriptionStatus(t, f.do(t, http.MethodPost, routeRescheduled,
		cloudEvent(t, messages.TypeDeliveryRescheduled, messages.DeliveryRescheduled{DeliveryID: "d1", PickupTime: &pt}))); got != "SUCCESS" {
		t.Fatalf("reschedule: %q", got)
	}
	if tx := f.tx(t, "d1"); tx.Reschedules != 1 || !tx.Request.PickupTime.Equal(pt) {
		t.Fatalf("record %+v", tx)
	}
	if got := subscriptionStatus(t, f.do(t, http.MethodPost, routeCanceled,
		cloudEvent(t, messages.TypeDeliveryCanceled, cancelOf("d1")))); got != "SUCCESS" {
		t.Fatalf("cancel: %q", got)
	}
	if tx := f.tx(t, "d1"); tx.Status != StatusCanceled {
		t.Fatalf("status %s", tx.Status)
	}
}

func TestSubscriptionRoutesArePostOnly(t *testing.T) {
	f := newAPIFixture(t)
	rec := f.do(t, http.MethodGet, routeRequested, "")
	if rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("GET %s = %d, want 405", routeRequested, rec.Code)
	}
}

func TestGetTransaction(t *testing.T) {
	t.Run("not found", func(t *testing.T) {
		f := newAPIFixture(t)
		rec := f.do(t, http.MethodGet, "/api/transactions/nope", "")
		if rec.Code != http.StatusNotFound {
			t.Fatalf("status %d, want 404; body %s", rec.Code, rec.Body)
		}
		if ct := rec.Header().Get("Content-Type"); ct != web.ProblemContentType {
			t.Fatalf("Content-Type %q", ct)
		}
		var p web.Problem
		if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Code != web.CodeNotFound {
			t.Fatalf("problem %+v (%v)", p, err)
		}
	})

	t.Run("store down", func(t *testing.T) {
		f := newAPIFixture(t)
		f.store.Err = errors.New("down")
		rec := f.do(t, http.MethodGet, "/api/transactions/d1", "")
		if rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("status %d, want 503", rec.Code)
		}
	})

	t.Run("scheduled", func(t *testing.T) {
		f := newAPIFixture(t)
		if err := f.proc.Requested(t.Context(), request("d1")); err != nil {
			t.Fatal(err)
		}
		rec := f.do(t, http.MethodGet, "/api/transactions/d1", "")
		if rec.Code != http.StatusOK {
			t.Fatalf("status %d; body %s", rec.Code, rec.Body)
		}
		var b transactionBody
		if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil {
			t.Fatal(err)
		}
		if b.DeliveryID != "d1" || b.Status != StatusScheduled || b.Step != "done" || b.Schedule == nil ||
			b.Schedule.DroneID != "drone-7" || b.Schedule.PickupETA == nil || !b.Schedule.PickupETA.Equal(f.steps.drone.PickupETA) ||
			b.Schedule.DeliveryETA == nil || !b.Schedule.PickupTime.Equal(request("d1").PickupTime) || !b.CreatedAt.Equal(t0) {
			t.Fatalf("body %s", rec.Body)
		}
		// The raw JSON names the fields ingestion reads.
		var raw map[string]any
		_ = json.Unmarshal(rec.Body.Bytes(), &raw)
		for _, k := range []string{"deliveryId", "status", "step", "schedule", "createdAt", "updatedAt"} {
			if _, ok := raw[k]; !ok {
				t.Fatalf("body lacks %q: %s", k, rec.Body)
			}
		}
	})

	t.Run("in progress", func(t *testing.T) {
		f := newAPIFixture(t)
		f.steps.script(workflow.StepPackage, errTransient)
		_ = f.proc.Requested(t.Context(), request("d1"))
		rec := f.do(t, http.MethodGet, "/api/transactions/d1", "")
		var b transactionBody
		if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil || rec.Code != http.StatusOK {
			t.Fatalf("status %d body %s (%v)", rec.Code, rec.Body, err)
		}
		if b.Status != StatusInProgress || b.Step != "package" || b.Attempts != 1 || b.Schedule != nil {
			t.Fatalf("body %s", rec.Body)
		}
	})

	t.Run("failed", func(t *testing.T) {
		f := newAPIFixture(t)
		f.steps.script(workflow.StepDrone, &workflow.Permanent{Step: workflow.StepDrone, Err: errors.New("bad")})
		_ = f.proc.Requested(t.Context(), request("d1"))
		rec := f.do(t, http.MethodGet, "/api/transactions/d1", "")
		var b transactionBody
		if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil {
			t.Fatal(err)
		}
		if b.Status != StatusFailed || b.FailedStep != "drone" || b.Reason == "" || b.Schedule != nil {
			t.Fatalf("body %s", rec.Body)
		}
	})
}

func TestQueryTransactionsByID(t *testing.T) {
	f := newAPIFixture(t)
	for _, id := range []string{"d1", "d2"} {
		if err := f.proc.Requested(t.Context(), request(id)); err != nil {
			t.Fatal(err)
		}
	}
	query := func(ids ...string) *httptest.ResponseRecorder {
		return f.do(t, http.MethodGet, "/api/transactions?"+url.Values{"id": ids}.Encode(), "")
	}
	rec := query("d1", "nope", "d2")
	var got struct{ Transactions []transactionBody }
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &got) != nil {
		t.Fatalf("status %d; body %s", rec.Code, rec.Body)
	}
	var ids []string
	for _, tx := range got.Transactions {
		ids = append(ids, tx.DeliveryID)
	}
	if !slices.Equal(ids, []string{"d1", "d2"}) {
		t.Errorf("found %v, want [d1 d2]: an unknown id is left out, not an error", ids)
	}

	many := make([]string, maxQueryIDs+1)
	for i := range many {
		many[i] = fmt.Sprintf("d%d", i)
	}
	if rec := query(many...); rec.Code != http.StatusBadRequest {
		t.Errorf("%d ids answered %d, want 400", len(many), rec.Code)
	}
}
