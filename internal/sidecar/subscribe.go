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
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
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

// SubscriptionOption configures Subscription.
type SubscriptionOption func(*subscriptionConfig)

type subscriptionConfig struct {
	tp trace.TracerProvider
	mp metric.MeterProvider
}

// WithTelemetry makes Subscription trace and count with tp and mp. Without
// it Subscription uses OpenTelemetry's global providers, which
// telemetry.Setup installs: the convention of instrumentation libraries,
// and what lets apps register subscription routes without threading
// providers through.
func WithTelemetry(tp trace.TracerProvider, mp metric.MeterProvider) SubscriptionOption {
	return func(c *subscriptionConfig) { c.tp, c.mp = tp, mp }
}

// instrumentationScope names this package's spans and metrics.
const instrumentationScope = "github.com/fabrikam/dronedelivery/internal/sidecar"

// Subscription adapts h to the sidecar's delivery callback. It always answers
// 200 with an explicit status, so that what happens to a message is decided
// here and never by how the sidecar reads an HTTP error code.
//
// Each message is handled in a consumer span that continues the trace in the
// CloudEvent's traceparent/tracestate (the publisher's), and is counted in
// messages.handled per topic and outcome (SUCCESS, RETRY, DROP).
func Subscription(log *slog.Logger, h HandlerFunc, opts ...SubscriptionOption) http.Handler {
	cfg := subscriptionConfig{tp: otel.GetTracerProvider(), mp: otel.GetMeterProvider()}
	for _, o := range opts {
		o(&cfg)
	}
	tracer := cfg.tp.Tracer(instrumentationScope)
	meter := cfg.mp.Meter(instrumentationScope)
	handled, err := meter.Int64Counter("messages.handled",
		metric.WithDescription("Messages delivered by the sidecar, by topic and outcome (SUCCESS, RETRY, DROP)."),
		metric.WithUnit("{message}"))
	if err != nil {
		handled = noop.Int64Counter{} // only invalid names fail; this one is constant
	}
	duration, err := meter.Float64Histogram("messages.handle.duration",
		metric.WithDescription("Time to handle a delivered message, by topic and outcome."),
		metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
	if err != nil {
		duration = noop.Float64Histogram{}
	}

	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		status := StatusSuccess
		var e Event
		body, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
		if err == nil {
			err = json.Unmarshal(body, &e)
			if err != nil {
				err = Drop(fmt.Errorf("decode cloudevent: %w", err))
			}
		}
		topic := e.Topic
		if topic == "" {
			topic = "unknown"
		}
		ctx, span := startConsumerSpan(r.Context(), tracer, topic, e)
		if err == nil {
			err = h(ctx, e)
		}
		switch {
		case err == nil:
		case IsDrop(err):
			status = StatusDrop
			log.WarnContext(ctx, "message dropped", "topic", e.Topic, "type", e.Type, "id", e.ID, "err", err)
		default:
			status = StatusRetry
			log.InfoContext(ctx, "message will be retried", "topic", e.Topic, "type", e.Type, "id", e.ID, "err", err)
		}
		span.SetAttributes(attribute.String("messaging.dapr.outcome", status))
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, status)
		}
		span.End()
		attrs := metric.WithAttributeSet(attribute.NewSet(
			attribute.String("topic", topic), attribute.String("outcome", status)))
		handled.Add(ctx, 1, attrs)
		duration.Record(ctx, time.Since(start).Seconds(), attrs)

		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, "{\"status\":%q}\n", status)
	})
}

// startConsumerSpan starts the span that handles e. Its parent is the
// publisher's context from the CloudEvent, unless the request already
// continues that trace: daprd passes its own delivery span on in the
// traceparent header, itself a child of the CloudEvent's context, and the
// server middleware continues it, so nesting under it keeps the sidecar's
// span in the chain. When the request's trace is another one (a sidecar that
// does not trace), that context is kept as a link.
func startConsumerSpan(ctx context.Context, tracer trace.Tracer, topic string, e Event) (context.Context, trace.Span) {
	parent := ctx
	var links []trace.Link
	if e.TraceParent != "" {
		carrier := propagation.MapCarrier{"traceparent": e.TraceParent}
		if e.TraceState != "" {
			carrier["tracestate"] = e.TraceState
		}
		published := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), carrier))
		current := trace.SpanContextFromContext(ctx)
		if published.IsValid() && (!current.IsValid() || current.TraceID() != published.TraceID()) {
			if current.IsValid() {
				links = append(links, trace.Link{SpanContext: current})
			}
			parent = trace.ContextWithRemoteSpanContext(ctx, published)
		}
	}
	return tracer.Start(parent, "process "+topic,
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithLinks(links...),
		trace.WithAttributes(
			attribute.String("messaging.system", "dapr"),
			attribute.String("messaging.operation.type", "process"),
			attribute.String("messaging.destination.name", topic),
			attribute.String("messaging.message.id", e.ID),
			attribute.String("messaging.dapr.pubsub", e.PubSubName),
			attribute.String("cloudevents.event_type", e.Type),
		))
}
