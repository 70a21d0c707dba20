package harness

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"
)

// MessageCount is how many messages the broker holds on topic: the JetStream
// stream's count on the local profile, the stream length on redis. Tests
// compare it before and after to see what was published.
func (e *Env) MessageCount(t testing.TB, topic string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	switch e.Profile {
	case "local":
		nc, err := nats.Connect(e.Stack.NATSURL())
		if err != nil {
			t.Fatalf("connect to nats: %v", err)
		}
		defer nc.Close()
		js, err := nc.JetStream()
		if err != nil {
			t.Fatalf("jetstream: %v", err)
		}
		info, err := js.StreamInfo(topic, nats.Context(ctx))
		if err != nil {
			t.Fatalf("stream %s: %v", topic, err)
		}
		return int(info.State.Msgs)
	case "redis":
		c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", DB: e.Stack.RedisDB()})
		defer c.Close()
		n, err := c.XLen(ctx, topic).Result()
		if err != nil && err != redis.Nil {
			t.Fatalf("xlen %s: %v", topic, err)
		}
		return int(n)
	default:
		t.Fatalf("no message count for profile %s", e.Profile)
		return 0
	}
}
