package launcher

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"
)

// DefaultNATSPort is where the embedded broker listens for `make run`: clear
// of NATS's standard 4222, which a system NATS may hold.
const DefaultNATSPort = 14222

// natsBroker is NATS JetStream embedded in the launcher process.
type natsBroker struct {
	srv *server.Server
	url string
}

// startNATS runs JetStream with its store under dir and creates one stream
// per topic (the Dapr component does not create streams). Streams keep
// messages for a day so a consumer that was down can catch up.
func startNATS(port int, dir string, topics []string) (*natsBroker, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("nats store dir: %w", err)
	}
	srv, err := server.NewServer(&server.Options{
		ServerName: "fabrikam-local",
		Host:       "127.0.0.1",
		Port:       port,
		JetStream:  true,
		StoreDir:   dir,
		NoSigs:     true,
		NoLog:      true,
	})
	if err != nil {
		return nil, fmt.Errorf("configure nats: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(15 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("nats did not start listening on 127.0.0.1:%d (port in use?)", port)
	}
	b := &natsBroker{srv: srv, url: srv.ClientURL()}
	if err := b.ensureStreams(topics); err != nil {
		b.stop()
		return nil, err
	}
	return b, nil
}

func (b *natsBroker) ensureStreams(topics []string) error {
	nc, err := nats.Connect(b.url, nats.Timeout(5*time.Second))
	if err != nil {
		return fmt.Errorf("connect to nats: %w", err)
	}
	defer nc.Close()
	js, err := nc.JetStream()
	if err != nil {
		return fmt.Errorf("jetstream context: %w", err)
	}
	for _, t := range topics {
		cfg := &nats.StreamConfig{
			Name:      t,
			Subjects:  []string{t},
			Storage:   nats.FileStorage,
			Retention: nats.LimitsPolicy,
			MaxAge:    24 * time.Hour,
			MaxBytes:  1 << 30,
		}
		if _, err := js.AddStream(cfg); err != nil {
			if !errors.Is(err, nats.ErrStreamNameAlreadyInUse) {
				return fmt.Errorf("create stream %s: %w", t, err)
			}
			if _, err := js.UpdateStream(cfg); err != nil {
				return fmt.Errorf("update stream %s: %w", t, err)
			}
		}
	}
	return nil
}

func (b *natsBroker) stop() {
	b.srv.Shutdown()
	b.srv.WaitForShutdown()
}

// redisLease is a Redis database held for one stack, so a test stack never
// shares streams and keys with a developer's stack or another test run.
type redisLease struct {
	client *redis.Client
	db     int
	key    string
}

const redisAddr = "127.0.0.1:6379"

func checkRedis(ctx context.Context) error {
	c := redis.NewClient(&redis.Options{Addr: redisAddr})
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("the redis profile needs Redis on %s: %w", redisAddr, err)
	}
	return nil
}

// leaseRedisDB claims a free database among 1..15 with a lock key in
// database 0 and empties it: a fresh stack must not replay an older stack's
// streams. The lock expires on its own if the holder dies.
func leaseRedisDB(ctx context.Context) (*redisLease, error) {
	if err := checkRedis(ctx); err != nil {
		return nil, err
	}
	lock := redis.NewClient(&redis.Options{Addr: redisAddr})
	owner := strconv.Itoa(os.Getpid())
	for db := 1; db <= 15; db++ {
		key := "fabrikam:launcher:db:" + strconv.Itoa(db)
		ok, err := lock.SetNX(ctx, key, owner, 6*time.Hour).Result()
		if err != nil {
			lock.Close()
			return nil, fmt.Errorf("lease redis db: %w", err)
		}
		if !ok {
			continue
		}
		c := redis.NewClient(&redis.Options{Addr: redisAddr, DB: db})
		err = c.FlushDB(ctx).Err()
		c.Close()
		if err != nil {
			lock.Del(ctx, key)
			lock.Close()
			return nil, fmt.Errorf("flush redis db %d: %w", db, err)
		}
		return &redisLease{client: lock, db: db, key: key}, nil
	}
	lock.Close()
	return nil, errors.New("no free redis database among 1..15 for a test stack")
}

func (l *redisLease) release() {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	l.client.Del(ctx, l.key)
	l.client.Close()
}

// portPicker hands out free loopback ports. It holds each port's listener
// until close, so the kernel cannot hand the same port out twice while a
// stack's ports are being chosen.
type portPicker struct {
	held []net.Listener
}

func (pp *portPicker) pick() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick a free port: %w", err)
	}
	pp.held = append(pp.held, ln)
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func (pp *portPicker) close() {
	for _, ln := range pp.held {
		_ = ln.Close()
	}
	pp.held = nil
}
