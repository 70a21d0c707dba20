package harness

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"
)

// Messages returns the raw CloudEvents on topic, oldest first, whose bytes
// contain every needle (a delivery id, say). Tests read what services really
// published, duplicates included, with it.
func (e *Env) Messages(t testing.TB, topic string, needles ...string) [][]byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	match := func(b []byte) bool {
		for _, n := range needles {
			if !bytes.Contains(b, []byte(n)) {
				return false
			}
		}
		return true
	}
	var out [][]byte
	switch e.Profile {
	case "local":
		nc, js := e.jetstream(t)
		defer nc.Close()
		info, err := js.StreamInfo(topic, nats.Context(ctx))
		if err != nil {
			t.Fatalf("stream %s: %v", topic, err)
		}
		if info.State.Msgs == 0 {
			return nil
		}
		// An ordered, ephemeral consumer reads the whole stream without
		// touching the apps' durable consumers.
		sub, err := js.SubscribeSync(topic, nats.OrderedConsumer(), nats.DeliverAll())
		if err != nil {
			t.Fatalf("read stream %s: %v", topic, err)
		}
		defer func() { _ = sub.Unsubscribe() }()
		for {
			m, err := sub.NextMsgWithContext(ctx)
			if err != nil {
				t.Fatalf("read stream %s: %v", topic, err)
			}
			if match(m.Data) {
				out = append(out, m.Data)
			}
			md, err := m.Metadata()
			if err != nil {
				t.Fatalf("message metadata: %v", err)
			}
			if md.Sequence.Stream >= info.State.LastSeq {
				return out
			}
		}
	case "redis":
		c := e.redis()
		defer c.Close()
		start := "-"
		for {
			msgs, err := c.XRangeN(ctx, topic, start, "+", 1000).Result()
			if err != nil && !errors.Is(err, redis.Nil) {
				t.Fatalf("xrange %s: %v", topic, err)
			}
			for _, m := range msgs {
				data, _ := m.Values["data"].(string)
				if match([]byte(data)) {
					out = append(out, []byte(data))
				}
			}
			if len(msgs) < 1000 {
				return out
			}
			start = "(" + msgs[len(msgs)-1].ID
		}
	default:
		t.Fatalf("no message listing for profile %s", e.Profile)
	}
	return out
}

// StreamEnd returns a marker for the newest message on topic, for
// WaitConsumed: wait until an app has handled everything published so far
// (messages published through a sidecar's API, say).
func (e *Env) StreamEnd(t testing.TB, topic string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	switch e.Profile {
	case "local":
		nc, js := e.jetstream(t)
		defer nc.Close()
		info, err := js.StreamInfo(topic, nats.Context(ctx))
		if err != nil {
			t.Fatalf("stream %s: %v", topic, err)
		}
		return strconv.FormatUint(info.State.LastSeq, 10)
	case "redis":
		c := e.redis()
		defer c.Close()
		msgs, err := c.XRevRangeN(ctx, topic, "+", "-", 1).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			t.Fatalf("xrevrange %s: %v", topic, err)
		}
		if len(msgs) == 0 {
			return "0-0"
		}
		return msgs[0].ID
	}
	t.Fatalf("no stream end for profile %s", e.Profile)
	return ""
}
