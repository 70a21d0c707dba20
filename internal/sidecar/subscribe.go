package sidecar

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
)

// Event is a CloudEvent delivered by the sidecar to a subscription route.
type Event struct {
	ID          string          `json:"id"`
	Source      string          `json:"source"`
	Type        string          `json:"type"`
	Topic       string          `json:"topic"`
	PubSubName  string          `json:"pubsubname"`
	TraceParent string          `json:"traceparent"`
	TraceState  string          `json:"tracestate"`
	Data        json.RawMessage `json:"data"`
}

// Decode unmarshals the event's data strictly into v: a message with fields
// this version does not know is a contract break, not something to guess at.
func (e Event) Decode(v any) error {
	if len(e.Data) == 0 || string(e.Data) == "null" {
		return Drop(errors.New("event has no data"))
	}
	dec := json.NewDecoder(bytes.NewReader(e.Data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return Drop(fmt.Errorf("decode %s data: %w", e.Type, err))
	}
	return nil
}

// HandlerFunc processes one event. Returning nil acknowledges it; an error
// wrapped by Drop discards it to the dead-letter topic; any other error asks
// the broker to deliver it again.
type HandlerFunc func(ctx context.Context, e Event) error

type dropError struct{ err error }

func (d *dropError) Error() string { return d.err.Error() }
func (d *dropError) Unwrap() error { return d.err }

// Drop marks err as permanent: the message can never be processed and must not
// be retried.
func Drop(err error) error { return &dropError{err: err} }

// IsDrop reports whether err was marked by Drop.
func IsDrop(err error) bool {
	var d *dropError
	return errors.As(err, &d)
}

// Subscription status values of the Dapr pub/sub callback protocol.
const (
	StatusSuccess = "SUCCESS"
	StatusRetry   = "RETRY"
	StatusDrop    = "DROP"
)

// Subscription adapts h to the sidecar's delivery callback. It always answers
// 200 with an explicit status, so that what happens to a message is decided
// here and never by how the sidecar reads an HTTP error code.
func Subscription(log *slog.Logger, h HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		status := StatusSuccess
		var e Event
		body, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
		if err == nil {
			err = json.Unmarshal(body, &e)
			if err != nil {
				err = Drop(fmt.Errorf("decode cloudevent: %w", err))
			}
		}
		if err == nil {
			err = h(r.Context(), e)
		}
		switch {
		case err == nil:
		case IsDrop(err):
			status = StatusDrop
			log.WarnContext(r.Context(), "message dropped", "topic", e.Topic, "type", e.Type, "id", e.ID, "err", err)
		default:
			status = StatusRetry
			log.InfoContext(r.Context(), "message will be retried", "topic", e.Topic, "type", e.Type, "id", e.ID, "err", err)
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, "{\"status\":%q}\n", status)
	})
}
