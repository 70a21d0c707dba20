// Package sidecar adapts the Dapr sidecar's APIs to what the services need:
// a non-blocking gRPC client, publishing with a partition key and event type,
// typed state with ETag concurrency, service invocation over the sidecar's
// HTTP API, and the subscription callback protocol.
package sidecar

import (
	"fmt"
	"time"

	dapr "github.com/dapr/go-sdk/client"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
)

// Dial returns a Dapr client for the sidecar's gRPC API at addr
// ("127.0.0.1:50001"). Unlike dapr.NewClient it does not block until the
// sidecar answers: the app and its sidecar start in any order, and calls made
// before the sidecar is up fail like any other transient error. Reconnection
// backoff is capped low so a restarted sidecar is found again within seconds.
// opts are added to the connection's own, for instance the tracing stats
// handler of telemetry.DialOption, which carries each call's trace context
// to the sidecar.
func Dial(addr string, opts ...grpc.DialOption) (dapr.Client, error) {
	all := append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
			MinConnectTimeout: 2 * time.Second,
		}),
	}, opts...)
	conn, err := grpc.NewClient(addr, all...)
	if err != nil {
		return nil, fmt.Errorf("dial dapr sidecar at %s: %w", addr, err)
	}
	return dapr.NewClientWithConnection(conn), nil
}

// Config locates the sidecar. The variable names are the ones the Dapr CLI
// and the launcher set for every app.
type Config struct {
	HTTPPort int    `envconfig:"DAPR_HTTP_PORT" default:"3500"`
	GRPCPort int    `envconfig:"DAPR_GRPC_PORT" default:"50001"`
	Host     string `envconfig:"DAPR_HOST" default:"127.0.0.1"`
}

// GRPCAddr is the sidecar's gRPC API address.
func (c Config) GRPCAddr() string { return fmt.Sprintf("%s:%d", c.Host, c.GRPCPort) }

// HTTPAddr is the sidecar's HTTP API address.
func (c Config) HTTPAddr() string { return fmt.Sprintf("%s:%d", c.Host, c.HTTPPort) }
