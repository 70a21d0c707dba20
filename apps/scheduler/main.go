// Command scheduler consumes delivery requests and runs each as a
// checkpointed transaction across the account, thirdparty, package, drone and
// delivery services.
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
	"github.com/fabrikam/dronedelivery/internal/workflow"
)

type config struct {
	Port    int `envconfig:"APP_PORT" default:"8080"`
	Sidecar sidecar.Config
	Log     logging.Config
	Apps    workflow.AppIDs
	// MaxAttempts is how many times a step may fail transiently; the last
	// failure ends the transaction, which goes to the supervisor.
	MaxAttempts int `envconfig:"MAX_ATTEMPTS" default:"8"`
	// DroneWait is how long a request waits for a free drone before it is
	// rejected. It must stay well inside the inbound retry budget of the
	// pub/sub component (resiliency/resiliency.yaml).
	DroneWait time.Duration `envconfig:"DRONE_WAIT" default:"60s"`
	// FaultInjection=on enables internal/faults; production never sets it.
	FaultInjection string `envconfig:"FAULT_INJECTION" default:"off"`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "scheduler:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	var cfg config
	if err := envconfig.Process("", &cfg); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	log := logging.New(os.Stdout, "scheduler", cfg.Log.Level, cfg.Log.Format)
	tel, err := telemetry.Setup(ctx, "scheduler")
	if err != nil {
		return fmt.Errorf("telemetry: %w", err)
	}
	defer tel.Close(log)
	dc, err := sidecar.Dial(cfg.Sidecar.GRPCAddr(), tel.DialOption())
	if err != nil {
		return err
	}
	defer dc.Close()

	proc := &processor{
		log:   log,
		store: sidecar.NewStore[Transaction](dc, messages.StateStore, 0),
		index: &index{
			log: log, store: sidecar.NewStore[bucket](dc, messages.StateStore, 0),
			buckets: 16, maxFinal: 500,
		},
		pub:    sidecar.NewPublisher(dc, messages.PubSub),
		steps:  workflow.NewClient(sidecar.NewInvoker(cfg.Sidecar.HTTPAddr(), tel.HTTPClient()), cfg.Apps),
		limits: limits{MaxAttempts: cfg.MaxAttempts, DroneWait: cfg.DroneWait},
		now:    time.Now,
		biz:    tel.Business(),
	}
	a := &api{log: log, proc: proc}
	router := web.NewRouter(log, web.WithInstrumentation(tel))
	// Off unless FAULT_INJECTION=on, which only test stacks set.
	inj := faults.New(cfg.FaultInjection == "on")
	router.Use(inj.Middleware)
	inj.Routes(router)
	a.routes(router)
	return web.Serve(ctx, web.ServerConfig{Addr: fmt.Sprintf(":%d", cfg.Port)}, router, log)
}
