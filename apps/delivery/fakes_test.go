package main

import (
	"context"
	"sync"
)

// publishedEvent is one event a fakePublisher was asked to publish.
type publishedEvent struct {
	Topic, Type, Key, ID string
	Data                 any
}

// fakePublisher records what it publishes, with the CloudEvent id that
// sidecartest.Publisher does not carry; Err makes every publish fail.
type fakePublisher struct {
	mu   sync.Mutex
	msgs []publishedEvent
	Err  error
}

func (p *fakePublisher) PublishWithID(_ context.Context, topic, eventType, key, id string, data any) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.Err != nil {
		return p.Err
	}
	p.msgs = append(p.msgs, publishedEvent{Topic: topic, Type: eventType, Key: key, ID: id, Data: data})
	return nil
}

func (p *fakePublisher) setErr(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.Err = err
}

// events returns what was published so far.
func (p *fakePublisher) events() []publishedEvent {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]publishedEvent(nil), p.msgs...)
}
