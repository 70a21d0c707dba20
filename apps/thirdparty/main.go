// Command thirdparty decides whether a delivery is beyond what a drone can do
// and, if so, books a third-party carrier for it.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"
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
	// MaxRangeKm is the farthest drop-off, from the pickup, a drone serves.
	MaxRangeKm float64 `envconfig:"MAX_DRONE_RANGE_KM" default:"40"`
	// MaxPayloadKg is the heaviest package a drone carries.
	MaxPayloadKg float64 `envconfig:"MAX_DRONE_PAYLOAD_KG" default:"20"`
	// Carrier is the company deliveries beyond those limits go to.
	Carrier string `envconfig:"CARRIER_NAME" default:"Contoso Freight"`
	// FaultInjection=on enables internal/faults; production never sets it.
	FaultInjection string `envconfig:"FAULT_INJECTION" default:"off"`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "thirdparty:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	var cfg config
	if err := envconfig.Process("", &cfg); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	// A zero or negative limit would send every delivery to the carrier
	// without anyone noticing.
	if cfg.MaxRangeKm <= 0 || cfg.MaxPayloadKg <= 0 {
		return errors.New("config: MAX_DRONE_RANGE_KM and MAX_DRONE_PAYLOAD_KG must be more than 0")
	}
	if strings.TrimSpace(cfg.Carrier) == "" {
		return errors.New("config: CARRIER_NAME must not be empty")
	}
	log := logging.New(os.Stdout, "thirdparty", cfg.Log.Level, cfg.Log.Format)
	tel, err := telemetry.Setup(ctx, "thirdparty")
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
		log:     log,
		store:   sidecar.NewStore[Record](dc, messages.StateStore, 0),
		limits:  limits{RangeKm: cfg.MaxRangeKm, PayloadKg: cfg.MaxPayloadKg},
		carrier: cfg.Carrier,
		now:     time.Now,
		newID:   uuid.NewString,
	}
	router := web.NewRouter(log, web.WithInstrumentation(tel))
	// Off unless FAULT_INJECTION=on, which only test stacks set.
	inj := faults.New(cfg.FaultInjection == "on")
	router.Use(inj.Middleware)
	inj.Routes(router)
	a.routes(router)

	log.Info("starting", "port", cfg.Port, "max_range_km", cfg.MaxRangeKm, "max_payload_kg", cfg.MaxPayloadKg, "carrier", cfg.Carrier)
	return web.Serve(ctx, web.ServerConfig{Addr: fmt.Sprintf(":%d", cfg.Port)}, router, log)
}
