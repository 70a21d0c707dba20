// Command drone owns the drone fleet: it assigns the nearest free drone that
// can carry a package to a delivery, and frees it when the delivery ends.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/fabrikam/dronedelivery/internal/logging"
	"github.com/fabrikam/dronedelivery/internal/messages"
	"github.com/fabrikam/dronedelivery/internal/sidecar"
	"github.com/fabrikam/dronedelivery/internal/web"
)

type config struct {
	Port    int `envconfig:"APP_PORT" default:"8080"`
	Sidecar sidecar.Config
	Log     logging.Config
	// FleetFile replaces the embedded fleet (data/fleet.json) when set.
	FleetFile string `envconfig:"FLEET_FILE"`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "drone:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	var cfg config
	if err := envconfig.Process("", &cfg); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	log := logging.New(os.Stdout, "drone", cfg.Log.Level, cfg.Log.Format)
	fleet, err := loadFleet(cfg.FleetFile)
	if err != nil {
		return err
	}
	dc, err := sidecar.Dial(cfg.Sidecar.GRPCAddr())
	if err != nil {
		return err
	}
	defer dc.Close()

	a := newAPI(log, fleet,
		sidecar.NewStore[Drone](dc, messages.StateStore, 0),
		sidecar.NewStore[Assignment](dc, messages.StateStore, 0),
		time.Now)
	router := web.NewRouter(log)
	a.routes(router)

	// The sidecar starts only once the app port is open, so the fleet is
	// seeded in the background while the server already answers (/healthz
	// with 503 until the seeding is done). Seeding stops with the server,
	// also when the server fails to start.
	seedCtx, stopSeeding := context.WithCancel(ctx)
	var seeding sync.WaitGroup
	seeding.Go(func() { _ = a.seed(seedCtx) })
	defer seeding.Wait()
	defer stopSeeding()

	log.Info("starting", "port", cfg.Port, "drones", len(fleet))
	return web.Serve(ctx, web.ServerConfig{Addr: fmt.Sprintf(":%d", cfg.Port)}, router, log)
}
