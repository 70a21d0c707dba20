// Command delivery owns delivery records and their public status. It derives
// each delivery's stage, location and ETAs from its drone's reports on
// drone-status, and publishes every stage change on delivery-events.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/fabrikam/dronedelivery/internal/faults"
	"github.com/fabrikam/dronedelivery/internal/logging"
	"github.com/fabrikam/dronedelivery/internal/messages"
	"github.com/fabrikam/dronedelivery/internal/sidecar"
	"github.com/fabrikam/dronedelivery/internal/telemetry"
	"github.com/fabrikam/dronedelivery/internal/web"
)

type config struct {
	Port    int `envconfig:"APP_PORT" default:"8080"`
	Sidecar sidecar.Config
	Log     logging.Config
	// FaultInjection=on enables internal/faults; production never sets it.
	FaultInjection string `envconfig:"FAULT_INJECTION" default:"off"`
	// TrackingMinInterval is the least time between two drone reports that
	// update a delivery's position and ETAs without changing its stage;
	// reports in between are skipped. Every applied report is a state
	// write, and a fast simulated tick (200ms in tests) otherwise floods the
	// store; real drones report every 5s, well above it.
	TrackingMinInterval time.Duration `envconfig:"TRACKING_MIN_INTERVAL" default:"1s"`
	// LivePoll is how often a /live stream looks for changes.
	LivePoll time.Duration `envconfig:"LIVE_POLL_INTERVAL" default:"500ms"`
	// LiveKeepAlive is the longest a /live stream stays silent.
	LiveKeepAlive time.Duration `envconfig:"LIVE_KEEPALIVE" default:"15s"`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "delivery:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	var cfg config
	if err := envconfig.Process("", &cfg); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	log := logging.New(os.Stdout, "delivery", cfg.Log.Level, cfg.Log.Format)
	tel, err := telemetry.Setup(ctx, "delivery")
	if err != nil {
		return fmt.Errorf("telemetry: %w", err)
	}
	defer tel.Close(log)
	dc, err := sidecar.Dial(cfg.Sidecar.GRPCAddr(), tel.DialOption())
	if err != nil {
		return err
	}
	defer dc.Close()

	a := &api{
		log: log, store: sidecar.NewStore[Delivery](dc, messages.StateStore, 0),
		pub: sidecar.NewPublisher(dc, messages.PubSub), now: time.Now, trackEvery: cfg.TrackingMinInterval,
		live: liveConfig{Poll: cfg.LivePoll, KeepAlive: cfg.LiveKeepAlive}, stop: ctx.Done(),
	}
	router := web.NewRouter(log, web.WithInstrumentation(tel))
	// Off unless FAULT_INJECTION=on, which only test stacks set.
	inj := faults.New(cfg.FaultInjection == "on")
	router.Use(inj.Middleware)
	inj.Routes(router)
	a.routes(router)
	return web.Serve(ctx, web.ServerConfig{Addr: fmt.Sprintf(":%d", cfg.Port)}, router, log)
}
