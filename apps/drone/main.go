// Command drone owns the drone fleet: it assigns the nearest free drone that
// can carry a package to a delivery, flies it (simulated) from its base to
// the pickup, the drop-off and home, reporting every tick on drone-status,
// and frees it when it lands or its delivery is canceled.
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
	// FleetFile replaces the embedded fleet (data/fleet.json) when set.
	FleetFile string `envconfig:"FLEET_FILE"`
	// FlightTick is how often a drone in flight reports its position. Real
	// drones report every 5s; a second makes the local stack livelier.
	FlightTick time.Duration `envconfig:"FLIGHT_TICK" default:"1s"`
	// FlightTimeScale speeds simulated flights up (60: a minute of flight
	// per second), so that tests see whole flights in seconds.
	FlightTimeScale float64 `envconfig:"FLIGHT_TIME_SCALE" default:"1"`
	// FlightLead is how long before its pickup time a drone takes off; a
	// pickup time closer than that, or past, means at once.
	FlightLead time.Duration `envconfig:"FLIGHT_DEPARTURE_LEAD" default:"1m"`
	// FaultInjection=on enables internal/faults; production never sets it.
	FaultInjection string `envconfig:"FAULT_INJECTION" default:"off"`
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
	if cfg.FlightTick <= 0 || cfg.FlightTimeScale <= 0 || cfg.FlightLead < 0 {
		return fmt.Errorf("config: FLIGHT_TICK and FLIGHT_TIME_SCALE must be positive, FLIGHT_DEPARTURE_LEAD not negative")
	}
	log := logging.New(os.Stdout, "drone", cfg.Log.Level, cfg.Log.Format)
	tel, err := telemetry.Setup(ctx, "drone")
	if err != nil {
		return fmt.Errorf("telemetry: %w", err)
	}
	defer tel.Close(log)
	fleet, err := loadFleet(cfg.FleetFile)
	if err != nil {
		return err
	}
	dc, err := sidecar.Dial(cfg.Sidecar.GRPCAddr(), tel.DialOption())
	if err != nil {
		return err
	}
	defer dc.Close()

	drones := sidecar.NewStore[Drone](dc, messages.StateStore, 0)
	assignments := sidecar.NewStore[Assignment](dc, messages.StateStore, 0)
	fl := newFlights(log, fleet, drones, assignments, sidecar.NewPublisher(dc, messages.PubSub), realClock{},
		flightConfig{Tick: cfg.FlightTick, TimeScale: cfg.FlightTimeScale, Lead: cfg.FlightLead})
	a := newAPI(log, fleet, drones, assignments, time.Now)
	a.timeScale, a.flights = cfg.FlightTimeScale, fl
	// Read from the drone records at each scrape, so the gauge is right
	// across restarts and replicas.
	if err := tel.Business().ObserveDronesInFlight(func(ctx context.Context) (int64, error) {
		items, err := a.readFleet(ctx)
		if err != nil {
			return 0, err
		}
		var n int64
		for _, it := range items {
			// In flight means airborne: assigned drones still waiting at
			// their base for the pickup time do not count.
			if f := it.Value.Flight; f != nil && f.DepartedAt != nil {
				n++
			}
		}
		return n, nil
	}); err != nil {
		return err
	}
	router := web.NewRouter(log, web.WithInstrumentation(tel))
	// Off unless FAULT_INJECTION=on, which only test stacks set.
	inj := faults.New(cfg.FaultInjection == "on")
	router.Use(inj.Middleware)
	inj.Routes(router)
	a.routes(router)

	// The sidecar starts only once the app port is open, so the fleet is
	// seeded in the background while the server already answers (/healthz
	// with 503 until the seeding is done). Seeding stops with the server,
	// also when the server fails to start.
	seedCtx, stopSeeding := context.WithCancel(ctx)
	var seeding sync.WaitGroup
	seeding.Go(func() { _ = a.seed(seedCtx) })
	// Flights in the store when the process starts are resumed where they
	// were; they stop with the server and resume at the next start.
	seeding.Go(func() { _ = fl.Run(seedCtx) })
	defer seeding.Wait()
	defer stopSeeding()

	log.Info("starting", "port", cfg.Port, "drones", len(fleet),
		"flightTick", cfg.FlightTick.String(), "flightTimeScale", cfg.FlightTimeScale, "flightLead", cfg.FlightLead.String())
	return web.Serve(ctx, web.ServerConfig{Addr: fmt.Sprintf(":%d", cfg.Port)}, router, log)
}
