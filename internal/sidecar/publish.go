package sidecar

import (
	"context"
	"fmt"

	dapr "github.com/dapr/go-sdk/client"
)

// Publisher publishes messages to one pub/sub component.
type Publisher struct {
	client dapr.Client
	pubsub string
}

// NewPublisher returns a publisher on the named pub/sub component.
func NewPublisher(c dapr.Client, pubsub string) *Publisher {
	return &Publisher{client: c, pubsub: pubsub}
}

// Publish sends data as the CloudEvent data of type eventType on topic. key is
// the partition key: brokers that partition keep one key's messages in order.
// The sidecar gives the CloudEvent a fresh id, so a message published again
// (a redrive, a replay) is a new message to the broker, not a duplicate to
// drop. It returns only once the sidecar reports the broker accepted the
// message.
func (p *Publisher) Publish(ctx context.Context, topic, eventType, key string, data any) error {
	return p.publish(ctx, topic, eventType, key, "", data)
}

// PublishWithID is Publish with the CloudEvent id chosen by the caller. An id
// derived from what the event records (a delivery's stage change, a drone's
// report number) makes an event published twice one event to any consumer;
// JetStream even drops the copy, keyed on the id, within its duplicate
// window.
func (p *Publisher) PublishWithID(ctx context.Context, topic, eventType, key, id string, data any) error {
	return p.publish(ctx, topic, eventType, key, id, data)
}

func (p *Publisher) publish(ctx context.Context, topic, eventType, key, id string, data any) error {
	md := map[string]string{"cloudevent.type": eventType}
	if key != "" {
		md["partitionKey"] = key
	}
	if id != "" {
		md["cloudevent.id"] = id
	}
	err := p.client.PublishEvent(ctx, p.pubsub, topic, data,
		dapr.PublishEventWithContentType("application/json"),
		dapr.PublishEventWithMetadata(md))
	if err != nil {
		if id != "" {
			return fmt.Errorf("publish %s %s to %s: %w", eventType, id, topic, err)
		}
		return fmt.Errorf("publish %s to %s: %w", eventType, topic, err)
	}
	return nil
}
