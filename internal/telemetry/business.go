package telemetry

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
)

// Business counts what the business cares about, one method per event. A
// nil *Business counts nothing, so structs that hold one work unchanged in
// tests that do not set it.
//
// The counters carry no labels (reasons and ids would make the series
// unbounded) and start at zero, so that a dashboard or a test sees 0 rather
// than an absent series before the first event.
type Business struct {
	meter       metric.Meter
	accepted    metric.Int64Counter
	scheduled   metric.Int64Counter
	rejected    metric.Int64Counter
	canceled    metric.Int64Counter
	failed      metric.Int64Counter
	compensated metric.Int64Counter
	redriven    metric.Int64Counter
}

func newBusiness(m metric.Meter) *Business {
	counter := func(name, desc string) metric.Int64Counter {
		c, err := m.Int64Counter(name, metric.WithDescription(desc), metric.WithUnit("{delivery}"))
		if err != nil {
			// Only an invalid name fails, and the names are constants here.
			c = noop.Int64Counter{}
		}
		c.Add(context.Background(), 0)
		return c
	}
	return &Business{
		meter:       m,
		accepted:    counter("deliveries.accepted", "Delivery requests accepted by the public API (202)."),
		scheduled:   counter("deliveries.scheduled", "Deliveries whose scheduling transaction ended Scheduled."),
		rejected:    counter("deliveries.rejected", "Deliveries whose scheduling transaction ended Rejected."),
		canceled:    counter("deliveries.canceled", "Deliveries canceled by the client."),
		failed:      counter("deliveries.failed", "Deliveries whose scheduling transaction ended Failed."),
		compensated: counter("deliveries.compensated", "Failed deliveries whose completed steps were compensated."),
		redriven:    counter("deliveries.redriven", "Accepted messages published again because the scheduler never saw them."),
	}
}

// Accepted counts a delivery request the public API accepted.
func (b *Business) Accepted(ctx context.Context) {
	if b != nil {
		b.accepted.Add(ctx, 1)
	}
}

// Scheduled counts a delivery whose scheduling ended Scheduled.
func (b *Business) Scheduled(ctx context.Context) {
	if b != nil {
		b.scheduled.Add(ctx, 1)
	}
}

// Rejected counts a delivery whose scheduling ended Rejected.
func (b *Business) Rejected(ctx context.Context) {
	if b != nil {
		b.rejected.Add(ctx, 1)
	}
}

// Canceled counts a delivery canceled by its client.
func (b *Business) Canceled(ctx context.Context) {
	if b != nil {
		b.canceled.Add(ctx, 1)
	}
}

// Failed counts a delivery whose scheduling ended Failed.
func (b *Business) Failed(ctx context.Context) {
	if b != nil {
		b.failed.Add(ctx, 1)
	}
}

// Compensated counts a failed delivery whose completed steps were undone.
func (b *Business) Compensated(ctx context.Context) {
	if b != nil {
		b.compensated.Add(ctx, 1)
	}
}

// ObserveDronesInFlight registers f as the source of the drones.in_flight
// gauge; it is called at each metrics scrape, with a deadline of two
// seconds. A gauge read from the source of truth stays right across
// restarts and replicas, which an in-process up-down counter would not.
// Register it once per process.
func (b *Business) ObserveDronesInFlight(f func(ctx context.Context) (int64, error)) error {
	if b == nil {
		return nil
	}
	_, err := b.meter.Int64ObservableGauge("drones.in_flight",
		metric.WithDescription("Drones currently assigned to a delivery."),
		metric.WithUnit("{drone}"),
		metric.WithInt64Callback(func(ctx context.Context, o metric.Int64Observer) error {
			ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			n, err := f(ctx)
			if err != nil {
				// No observation: the series disappears from this scrape
				// rather than showing a wrong number.
				return fmt.Errorf("observe drones in flight: %w", err)
			}
			o.Observe(n)
			return nil
		}))
	if err != nil {
		return fmt.Errorf("register drones.in_flight: %w", err)
	}
	return nil
}

// Redriven counts an accepted message published again because the scheduler
// never saw it: each one is a message the broker lost or has not delivered.
func (b *Business) Redriven(ctx context.Context) {
	if b != nil {
		b.redriven.Add(ctx, 1)
	}
}
