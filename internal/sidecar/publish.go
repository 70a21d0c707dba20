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
// It returns only once the sidecar reports the broker accepted the message.
func (p *Publisher) Publish(ctx context.Context, topic, eventType, key string, data any) error {
	md := map[string]string{"cloudevent.type": eventType}
	if key != "" {
		md["partitionKey"] = key
	}
	err := p.client.PublishEvent(ctx, p.pubsub, topic, data,
		dapr.PublishEventWithContentType("application/json"),
		dapr.PublishEventWithMetadata(md))
	if err != nil {
		return fmt.Errorf("publish %s to %s: %w", eventType, topic, err)
	}
	return nil
}
