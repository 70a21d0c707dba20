// Command delivery owns delivery records and their public status.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
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
	dc, err := sidecar.Dial(cfg.Sidecar.GRPCAddr())
	if err != nil {
		return err
	}
	defer dc.Close()

	a := &api{log: log, store: sidecar.NewStore[Delivery](dc, messages.StateStore, 0), now: time.Now}
	router := web.NewRouter(log)
	a.routes(router)
	return web.Serve(ctx, web.ServerConfig{Addr: fmt.Sprintf(":%d", cfg.Port)}, router, log)
}
