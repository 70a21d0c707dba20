package main

import (
	"slices"
	"time"

	"github.com/fabrikam/dronedelivery/internal/messages"
)

// Timeline is one delivery's history: its delivery events in the order of
// their sequence numbers, each once.
type Timeline struct {
	DeliveryID string  `json:"deliveryId"`
	Events     []Entry `json:"events"`
}

// Entry is one delivery event as the history keeps it.
type Entry struct {
	// EventID is the CloudEvent id, the same for every copy of an event.
	EventID string `json:"eventId"`
	Type    string `json:"type"`
	messages.DeliveryEvent
	ReceivedAt time.Time `json:"receivedAt"`
}

// add puts e into the timeline at its place by sequence number, and
// reports whether it was new. Events arrive in any order and any number of
// times: an event already there, by id or by sequence number, changes
// nothing.
func (t *Timeline) add(e Entry) bool {
	for _, have := range t.Events {
		if have.EventID == e.EventID || have.Sequence == e.Sequence {
			return false
		}
	}
	i, _ := slices.BinarySearchFunc(t.Events, e.Sequence, func(x Entry, seq int) int { return x.Sequence - seq })
	t.Events = slices.Insert(t.Events, i, e)
	return true
}

// complete reports whether the timeline has every event from the first to
// its last one: a gap means an event is still on its way.
func (t *Timeline) complete() bool {
	for i, e := range t.Events {
		if e.Sequence != i+1 {
			return false
		}
	}
	return true
}
