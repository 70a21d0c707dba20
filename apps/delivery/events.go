package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/fabrikam/dronedelivery/internal/messages"
	"github.com/fabrikam/dronedelivery/internal/sidecar"
)

// Subscription routes; components/shared/subscriptions-tracking.yaml routes
// drone-status events to them.
const (
	routeDroneStatus  = "/events/drone-status"
	routeDroneUnknown = "/events/drone-unknown"
)

// outboxGrace is how long a queued delivery event is left to the handler
// that queued it. Past that, whoever touches the delivery publishes it: its
// handler crashed or gave up. Shorter would have two handlers publish the
// same event as a matter of course.
const outboxGrace = 10 * time.Second

// onDroneStatus applies a drone report to its delivery and publishes the
// stage changes it caused. Stale and repeated reports change nothing and
// are acknowledged; reports ahead of their booking are retried.
func (a *api) onDroneStatus(ctx context.Context, e sidecar.Event) error {
	var r messages.DroneStatusReport
	if err := e.Decode(&r); err != nil {
		return err
	}
	if r.DeliveryID == "" || r.DroneID == "" || r.Sequence == 0 || r.Timestamp.IsZero() {
		return sidecar.Drop(errors.New("drone report without deliveryId, droneId, sequence or timestamp"))
	}
	cause := e.ID
	if cause == "" {
		cause = fmt.Sprintf("%s/%d", r.DroneID, r.Sequence)
	}
	now := a.now().UTC()
	var missing bool
	d, err := a.store.Update(ctx, key(r.DeliveryID), func(d *Delivery, found bool) (bool, error) {
		missing = !found
		if !found {
			return false, nil
		}
		return d.track(r, cause, now, a.trackEvery)
	})
	if err != nil {
		// errAhead too: the booking this report belongs to is on its way.
		return fmt.Errorf("apply drone report: %w", err)
	}
	if missing {
		// A delivery that is never created (its scheduling failed at the
		// last step) must not have its drone's reports retried forever.
		if now.Sub(r.Timestamp) < catchUpWindow {
			return fmt.Errorf("delivery %s not created yet", r.DeliveryID)
		}
		a.log.InfoContext(ctx, "drone report for an unknown delivery ignored",
			"deliveryId", r.DeliveryID, "droneId", r.DroneID, "seq", r.Sequence)
		return nil
	}
	return a.flush(ctx, d, cause)
}

// flush publishes the delivery events waiting in d's outbox, oldest first,
// then removes them from the stored record. With cause "" (the API, whose
// calls for one delivery come one at a time) it publishes them all; with a
// report's id, those that report caused, and any left over by a handler that
// did not finish. Every event keeps the id it was queued with, so if one is
// published twice, say after a crash before its removal, consumers see the
// same event twice and keep it once.
func (a *api) flush(ctx context.Context, d Delivery, cause string) error {
	now := a.now().UTC()
	var sent []string
	for _, o := range d.Outbox {
		if cause != "" && o.CausedBy != cause && now.Sub(o.AddedAt) < outboxGrace {
			continue
		}
		if err := a.pub.PublishWithID(ctx, messages.TopicDeliveryEvents, o.Type, d.ID, o.ID, o.Event); err != nil {
			return err
		}
		sent = append(sent, o.ID)
		a.log.InfoContext(ctx, "delivery "+o.Event.Stage, "deliveryId", d.ID, "seq", o.Event.Sequence)
	}
	if len(sent) == 0 {
		return nil
	}
	_, err := a.store.Update(ctx, key(d.ID), func(d *Delivery, found bool) (bool, error) {
		n := len(d.Outbox)
		d.Outbox = slices.DeleteFunc(d.Outbox, func(o OutboxEvent) bool { return slices.Contains(sent, o.ID) })
		return found && len(d.Outbox) != n, nil
	})
	if err != nil {
		// The events are out; failing the caller would only have them
		// published again now rather than after the grace, by whoever
		// touches the delivery next. Either way consumers see their ids
		// twice and keep them once.
		a.log.WarnContext(ctx, "published delivery events stay in the outbox", "deliveryId", d.ID, "err", err)
	}
	return nil
}
