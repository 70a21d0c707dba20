package sidecartest

import (
	"context"
	"sync"
)

// Published is one message a Publisher was asked to send.
type Published struct {
	Topic, Type, Key string
	Data             any
}

// Publisher records what it publishes; Err makes every publish fail.
type Publisher struct {
	mu   sync.Mutex
	msgs []Published
	Err  error
}

// Publish records the message, or returns Err.
func (p *Publisher) Publish(_ context.Context, topic, eventType, key string, data any) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.Err != nil {
		return p.Err
	}
	p.msgs = append(p.msgs, Published{Topic: topic, Type: eventType, Key: key, Data: data})
	return nil
}

// Messages returns what was published so far.
func (p *Publisher) Messages() []Published {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Published(nil), p.msgs...)
}
