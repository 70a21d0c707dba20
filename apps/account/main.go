// Command account owns the owner accounts that deliveries are booked for.
package main

import (
	"context"
	_ "embed"
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

// defaultAccounts is the built-in seed, so the service works with no files
// beside its binary.
//
//go:embed data/accounts.json
var defaultAccounts []byte

type config struct {
	Port    int `envconfig:"APP_PORT" default:"8080"`
	Sidecar sidecar.Config
	Log     logging.Config
	// AccountsFile replaces the built-in seed accounts when set.
	AccountsFile string `envconfig:"ACCOUNTS_FILE"`
	// FaultInjection=on enables internal/faults; production never sets it.
	FaultInjection string `envconfig:"FAULT_INJECTION" default:"off"`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "account:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	var cfg config
	if err := envconfig.Process("", &cfg); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	log := logging.New(os.Stdout, "account", cfg.Log.Level, cfg.Log.Format)
	tel, err := telemetry.Setup(ctx, "account")
	if err != nil {
		return fmt.Errorf("telemetry: %w", err)
	}
	defer tel.Close(log)

	data := defaultAccounts
	if cfg.AccountsFile != "" {
		b, err := os.ReadFile(cfg.AccountsFile)
		if err != nil {
			return fmt.Errorf("read seed accounts: %w", err)
		}
		data = b
	}
	seedAccounts, err := parseSeed(data)
	if err != nil {
		return err
	}

	dc, err := sidecar.Dial(cfg.Sidecar.GRPCAddr(), tel.DialOption())
	if err != nil {
		return err
	}
	defer dc.Close()

	a := &api{
		log:      log,
		accounts: sidecar.NewStore[Account](dc, messages.StateStore, 0),
		index:    sidecar.NewStore[accountIndex](dc, messages.StateStore, 0),
	}
	router := web.NewRouter(log, web.WithInstrumentation(tel))
	// Off unless FAULT_INJECTION=on, which only test stacks set.
	inj := faults.New(cfg.FaultInjection == "on")
	router.Use(inj.Middleware)
	inj.Routes(router)
	a.routes(router)

	// Seeding runs beside the server, not before it: the sidecar waits for
	// the app port before it serves the state API. /healthz says 503 until
	// it is done.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	seeded := make(chan struct{})
	go func() {
		defer close(seeded)
		a.seed(ctx, seedAccounts, 200*time.Millisecond, 2*time.Second)
	}()

	log.Info("starting", "port", cfg.Port, "seed_accounts", len(seedAccounts))
	err = web.Serve(ctx, web.ServerConfig{Addr: fmt.Sprintf(":%d", cfg.Port)}, router, log)
	cancel()
	<-seeded
	return err
}
