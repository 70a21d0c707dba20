package main

import (
	"context"
	"fmt"

	dapr "github.com/dapr/go-sdk/client"
)

// cloudEvents publishes through the sidecar with the CloudEvent id set by
// the caller. sidecar.Publisher lets the sidecar pick a random id; a
// report's id is derived from the drone and its sequence number instead, so
// that a report published twice is one report to any consumer (JetStream
// even drops the copy, keyed on the id, within its duplicate window).
type cloudEvents struct {
	client dapr.Client
	pubsub string
}

// PublishEvent publishes data on topic as a CloudEvent of eventType with id,
// partitioned by key.
func (p cloudEvents) PublishEvent(ctx context.Context, topic, eventType, key, id string, data any) error {
	md := map[string]string{"cloudevent.type": eventType, "cloudevent.id": id}
	if key != "" {
		md["partitionKey"] = key
	}
	err := p.client.PublishEvent(ctx, p.pubsub, topic, data,
		dapr.PublishEventWithContentType("application/json"),
		dapr.PublishEventWithMetadata(md))
	if err != nil {
		return fmt.Errorf("publish %s %s to %s: %w", eventType, id, topic, err)
	}
	return nil
}
