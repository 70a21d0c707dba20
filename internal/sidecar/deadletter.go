package sidecar

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/fabrikam/dronedelivery/internal/messages"
)

// publisher is what parking a message needs; Publisher is one.
type publisher interface {
	Publish(ctx context.Context, topic, eventType, key string, data any) error
}

// ParkOnDrop wraps h so that a message h drops is published to the
// dead-letter topic together with the reason, then acknowledged. Operators
// then see why, not only what. If parking fails, the drop is left to the
// sidecar, whose dead-letter policy moves the bare message there instead.
func ParkOnDrop(log *slog.Logger, pub publisher, app string, h HandlerFunc) HandlerFunc {
	return func(ctx context.Context, e Event) error {
		err := h(ctx, e)
		if err == nil || !IsDrop(err) {
			return err
		}
		dl := messages.DeadLetter{
			Reason: err.Error(), Topic: e.Topic, Type: e.Type, EventID: e.ID,
			ParkedBy: app, ParkedAt: time.Now().UTC(),
		}
		if json.Valid(e.Data) {
			dl.Data = e.Data
		}
		if perr := pub.Publish(ctx, messages.TopicDeadLetters, messages.TypeDeadLetter, e.ID, dl); perr != nil {
			log.WarnContext(ctx, "park dead letter", "err", perr)
			return err
		}
		log.WarnContext(ctx, "message parked on the dead-letter topic", "topic", e.Topic, "type", e.Type, "id", e.ID, "reason", err.Error())
		return nil
	}
}
