// Command supervisor compensates scheduling transactions that failed, finds
// and finishes transactions left stuck, and records dead letters for
// operators.
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
	// SchedulerAppID is the app whose transactions are supervised.
	SchedulerAppID string `envconfig:"SCHEDULER_APP_ID" default:"scheduler"`
	// StuckAfter is how long a transaction may go untouched before the sweep
	// takes it for abandoned. Well above the longest normal transaction
	// (a drone wait plus redeliveries, about a minute).
	StuckAfter     time.Duration `envconfig:"STUCK_AFTER" default:"3m"`
	FaultInjection string        `envconfig:"FAULT_INJECTION" default:"off"`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "supervisor:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	var cfg config
	if err := envconfig.Process("", &cfg); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	log := logging.New(os.Stdout, "supervisor", cfg.Log.Level, cfg.Log.Format)
	tel, err := telemetry.Setup(ctx, "supervisor")
	if err != nil {
		return fmt.Errorf("telemetry: %w", err)
	}
	defer tel.Close(log)
	dc, err := sidecar.Dial(cfg.Sidecar.GRPCAddr(), tel.DialOption())
	if err != nil {
		return err
	}
	defer dc.Close()
	inv := sidecar.NewInvoker(cfg.Sidecar.HTTPAddr(), tel.HTTPClient())

	sup := &supervisor{
		log:         log,
		comps:       sidecar.NewStore[compensation](dc, messages.StateStore, 0),
		index:       sidecar.NewStore[listIndex](dc, messages.StateStore, 0),
		undo:        workflow.NewClient(inv, cfg.Apps),
		inv:         inv,
		schedulerID: cfg.SchedulerAppID,
		now:         time.Now,
		biz:         tel.Business(),
	}
	a := &api{
		sup: sup, dead: sidecar.NewStore[deadLetter](dc, messages.StateStore, 0),
		pub: sidecar.NewPublisher(dc, messages.PubSub), stuckAfter: cfg.StuckAfter,
	}
	router := web.NewRouter(log, web.WithInstrumentation(tel))
	inj := faults.New(cfg.FaultInjection == "on")
	router.Use(inj.Middleware)
	inj.Routes(router)
	a.routes(router)
	return web.Serve(ctx, web.ServerConfig{Addr: fmt.Sprintf(":%d", cfg.Port)}, router, log)
}
