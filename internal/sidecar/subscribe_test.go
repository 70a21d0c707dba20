package sidecar_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/fabrikam/dronedelivery/internal/sidecar"
)

var discard = slog.New(slog.DiscardHandler)

const cloudEvent = `{"id":"e1","source":"ingestion","type":"com.fabrikam.test.v1","topic":"t","pubsubname":"pubsub",` +
	`"specversion":"1.0","datacontenttype":"application/json","data":{"n":1}}`

func deliver(t *testing.T, h http.Handler, body string) string {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/events", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/cloudevents+json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("got HTTP status %d, want 200", rec.Code)
	}
	if got := rec.Header().Get("Content-Type"); got != "application/json" {
		t.Errorf("got Content-Type %q, want application/json", got)
	}
	var resp struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
		t.Fatalf("body %q: %v", rec.Body, err)
	}
	return resp.Status
}

func TestSubscriptionStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body string
		err  error
		want string
	}{
		{"handled", cloudEvent, nil, sidecar.StatusSuccess},
		{"dropped", cloudEvent, sidecar.Drop(errors.New("bad message")), sidecar.StatusDrop},
		{"drop wrapped further", cloudEvent, fmt.Errorf("handle: %w", sidecar.Drop(errors.New("bad"))), sidecar.StatusDrop},
		{"transient error", cloudEvent, errors.New("store down"), sidecar.StatusRetry},
		{"context error", cloudEvent, context.DeadlineExceeded, sidecar.StatusRetry},
		{"not JSON", `not json`, nil, sidecar.StatusDrop},
		{"empty body", ``, nil, sidecar.StatusDrop},
		{"JSON array", `[1,2]`, nil, sidecar.StatusDrop},
		{"wrong field type", `{"id":5}`, nil, sidecar.StatusDrop},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			called := false
			h := sidecar.Subscription(discard, func(context.Context, sidecar.Event) error {
				called = true
				return tt.err
			})
			if got := deliver(t, h, tt.body); got != tt.want {
				t.Errorf("got status %q, want %q", got, tt.want)
			}
			wantCalled := tt.body == cloudEvent
			if called != wantCalled {
				t.Errorf("handler called = %v, want %v", called, wantCalled)
			}
		})
	}
}

func TestSubscriptionBodyExact(t *testing.T) {
	t.Parallel()
	h := sidecar.Subscription(discard, func(context.Context, sidecar.Event) error { return nil })
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/events", strings.NewReader(cloudEvent)))
	if got, want := rec.Body.String(), "{\"status\":\"SUCCESS\"}\n"; got != want {
		t.Errorf("got body %q, want %q", got, want)
	}
}

func TestSubscriptionPassesEvent(t *testing.T) {
	t.Parallel()
	var got sidecar.Event
	h := sidecar.Subscription(discard, func(_ context.Context, e sidecar.Event) error {
		got = e
		return nil
	})
	deliver(t, h, `{"id":"e1","source":"s","type":"ty","topic":"to","pubsubname":"ps","traceparent":"00-abc-def-01","tracestate":"x=1","data":{"n":1}}`)
	want := sidecar.Event{ID: "e1", Source: "s", Type: "ty", Topic: "to", PubSubName: "ps", TraceParent: "00-abc-def-01", TraceState: "x=1"}
	if got.ID != want.ID || got.Source != want.Source || got.Type != want.Type || got.Topic != want.Topic ||
		got.PubSubName != want.PubSubName || got.TraceParent != want.TraceParent || got.TraceState != want.TraceState {
		t.Errorf("got event %+v, want %+v", got, want)
	}
	if string(got.Data) != `{"n":1}` {
		t.Errorf("got data %s, want {\"n\":1}", got.Data)
	}
}

func TestEventDecode(t *testing.T) {
	t.Parallel()
	type payload struct {
		N    int    `json:"n"`
		Name string `json:"name"`
	}
	tests := []struct {
		name    string
		data    string
		want    payload
		wantErr string // "" means success; otherwise a Drop error containing this
	}{
		{"valid", `{"n":1,"name":"a"}`, payload{N: 1, Name: "a"}, ""},
		{"subset of fields", `{"n":2}`, payload{N: 2}, ""},
		{"unknown field", `{"n":1,"extra":true}`, payload{}, `unknown field "extra"`},
		{"wrong type", `{"n":"one"}`, payload{}, "cannot unmarshal"},
		{"no data", ``, payload{}, "no data"},
		{"null data", `null`, payload{}, "no data"},
		{"truncated", `{"n":`, payload{}, "decode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := sidecar.Event{Type: "com.fabrikam.test.v1", Data: json.RawMessage(tt.data)}
			var got payload
			err := e.Decode(&got)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("got error %v, want nil", err)
				}
				if got != tt.want {
					t.Errorf("got %+v, want %+v", got, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("got nil error, want a drop error containing %q", tt.wantErr)
			}
			if !sidecar.IsDrop(err) {
				t.Errorf("IsDrop(%v) = false, want true", err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("got error %q, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestDropUnwraps(t *testing.T) {
	t.Parallel()
	cause := errors.New("cause")
	err := sidecar.Drop(cause)
	if !errors.Is(err, cause) {
		t.Errorf("errors.Is(Drop(cause), cause) = false, want true")
	}
	if err.Error() != "cause" {
		t.Errorf("got %q, want %q", err.Error(), "cause")
	}
	if sidecar.IsDrop(cause) {
		t.Errorf("IsDrop(plain error) = true, want false")
	}
	if sidecar.IsDrop(nil) {
		t.Errorf("IsDrop(nil) = true, want false")
	}
}

// A subscription handler that decodes with Event.Decode drops a message with
// unknown fields end to end.
func TestSubscriptionDropsUnknownFieldsThroughDecode(t *testing.T) {
	t.Parallel()
	h := sidecar.Subscription(discard, func(_ context.Context, e sidecar.Event) error {
		var v struct {
			N int `json:"n"`
		}
		return e.Decode(&v)
	})
	if got := deliver(t, h, cloudEvent); got != sidecar.StatusSuccess {
		t.Errorf("known fields: got %q, want %q", got, sidecar.StatusSuccess)
	}
	withExtra := strings.Replace(cloudEvent, `{"n":1}`, `{"n":1,"m":2}`, 1)
	if got := deliver(t, h, withExtra); got != sidecar.StatusDrop {
		t.Errorf("unknown field: got %q, want %q", got, sidecar.StatusDrop)
	}
}
