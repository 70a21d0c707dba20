package harness

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"
)

// Republish finds the newest message on topic whose raw bytes contain every
// needle (a delivery id and an event type, say) and puts an identical copy
// of it on the broker, as a broker redelivering it would. It returns a
// position marker for WaitConsumed.
//
// On JetStream the copy is sent without the Nats-Msg-Id header: Dapr sets it
// to the CloudEvent id, and JetStream's own duplicate window would otherwise
// swallow the copy before the app could prove its idempotency.
func (e *Env) Republish(t testing.TB, topic string, needles ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	match := func(b []byte) bool {
		for _, n := range needles {
			if !bytes.Contains(b, []byte(n)) {
				return false
			}
		}
		return true
	}
	switch e.Profile {
	case "local":
		nc, js := e.jetstream(t)
		defer nc.Close()
		info, err := js.StreamInfo(topic, nats.Context(ctx))
		if err != nil {
			t.Fatalf("stream %s: %v", topic, err)
		}
		for seq := info.State.LastSeq; seq >= info.State.FirstSeq && seq > 0; seq-- {
			m, err := js.GetMsg(topic, seq, nats.Context(ctx))
			if err != nil || !match(m.Data) {
				continue
			}
			ack, err := js.PublishMsg(&nats.Msg{Subject: m.Subject, Data: m.Data}, nats.Context(ctx))
			if err != nil {
				t.Fatalf("republish: %v", err)
			}
			return strconv.FormatUint(ack.Sequence, 10)
		}
	case "redis":
		c := e.redis()
		defer c.Close()
		msgs, err := c.XRevRangeN(ctx, topic, "+", "-", 5000).Result()
		if err != nil {
			t.Fatalf("xrevrange %s: %v", topic, err)
		}
		for _, m := range msgs {
			data, _ := m.Values["data"].(string)
			if !match([]byte(data)) {
				continue
			}
			id, err := c.XAdd(ctx, &redis.XAddArgs{Stream: topic, Values: m.Values}).Result()
			if err != nil {
				t.Fatalf("republish: %v", err)
			}
			return id
		}
	default:
		t.Fatalf("no republish for profile %s", e.Profile)
	}
	t.Fatalf("no message on %s contains %v", topic, needles)
	return ""
}

// WaitConsumed waits until app has acknowledged everything on topic up to
// marker (from Republish): the copy has been handled, whatever it did.
func (e *Env) WaitConsumed(t testing.TB, topic, app, marker string, timeout time.Duration) {
	t.Helper()
	Eventually(t, timeout, func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		switch e.Profile {
		case "local":
			nc, js := e.jetstream(t)
			defer nc.Close()
			ci, err := js.ConsumerInfo(topic, app, nats.Context(ctx))
			if err != nil {
				return false, err.Error()
			}
			want, _ := strconv.ParseUint(marker, 10, 64)
			return ci.AckFloor.Stream >= want && ci.NumAckPending == 0,
				fmt.Sprintf("consumer %s acked up to %d with %d pending, want %d", app, ci.AckFloor.Stream, ci.NumAckPending, want)
		case "redis":
			c := e.redis()
			defer c.Close()
			groups, err := c.XInfoGroups(ctx, topic).Result()
			if err != nil {
				return false, err.Error()
			}
			for _, g := range groups {
				if g.Name != app {
					continue
				}
				return streamIDAtLeast(g.LastDeliveredID, marker) && g.Pending == 0,
					fmt.Sprintf("group %s delivered up to %s with %d pending, want %s", app, g.LastDeliveredID, g.Pending, marker)
			}
			return false, "no consumer group " + app
		}
		return false, "unsupported profile"
	})
}

func streamIDAtLeast(have, want string) bool {
	parse := func(s string) (uint64, uint64) {
		ms, seq, _ := strings.Cut(s, "-")
		a, _ := strconv.ParseUint(ms, 10, 64)
		b, _ := strconv.ParseUint(seq, 10, 64)
		return a, b
	}
	h1, h2 := parse(have)
	w1, w2 := parse(want)
	return h1 > w1 || (h1 == w1 && h2 >= w2)
}

func (e *Env) jetstream(t testing.TB) (*nats.Conn, nats.JetStreamContext) {
	t.Helper()
	nc, err := nats.Connect(e.Stack.NATSURL())
	if err != nil {
		t.Fatalf("connect to nats: %v", err)
	}
	js, err := nc.JetStream()
	if err != nil {
		nc.Close()
		t.Fatalf("jetstream: %v", err)
	}
	return nc, js
}

func (e *Env) redis() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", DB: e.Stack.RedisDB()})
}
