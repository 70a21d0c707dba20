// Command ingestion is the public front door: it validates delivery requests,
// reschedules and cancellations, hands them to the broker and answers 202
// with a status resource the client can follow.
package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/kelseyhightower/envconfig"

	"github.com/fabrikam/dronedelivery/internal/faults"
	"github.com/fabrikam/dronedelivery/internal/geo"
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
	// RecordTTL bounds how long a request's status stays readable here.
	RecordTTL time.Duration `envconfig:"RECORD_TTL" default:"720h"`
	// IdempotencyTTL is how long an Idempotency-Key is remembered.
	IdempotencyTTL time.Duration `envconfig:"IDEMPOTENCY_TTL" default:"24h"`
	// SchedulerAppID is the app the status resource asks about progress.
	SchedulerAppID string `envconfig:"SCHEDULER_APP_ID" default:"scheduler"`
	Redrive        redriveConfig
	// FaultInjection=on enables internal/faults; production never sets it.
	FaultInjection string `envconfig:"FAULT_INJECTION" default:"off"`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "ingestion:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	var cfg config
	if err := envconfig.Process("", &cfg); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	log := logging.New(os.Stdout, "ingestion", cfg.Log.Level, cfg.Log.Format)
	tel, err := telemetry.Setup(ctx, "ingestion")
	if err != nil {
		return fmt.Errorf("telemetry: %w", err)
	}
	defer tel.Close(log)

	dc, err := sidecar.Dial(cfg.Sidecar.GRPCAddr(), tel.DialOption())
	if err != nil {
		return err
	}
	defer dc.Close()
	invoker := sidecar.NewInvoker(cfg.Sidecar.HTTPAddr(), tel.HTTPClient())

	pub := sidecar.NewPublisher(dc, messages.PubSub)
	requests := sidecar.NewStore[requestRecord](dc, messages.StateStore, cfg.RecordTTL)
	sched := &schedulerClient{invoker: invoker, appID: cfg.SchedulerAppID}
	a := &api{
		log:       log,
		pub:       pub,
		requests:  requests,
		keys:      sidecar.NewStore[idempotencyRecord](dc, messages.StateStore, cfg.IdempotencyTTL),
		scheduler: sched,
		places:    geo.DefaultGazetteer(),
		now:       time.Now,
		newID:     func() string { return uuid.NewString() },
		biz:       tel.Business(),
		redrive: newRedriver(redriver{
			log: log, cfg: cfg.Redrive,
			// Batches live until the sweep has resolved them; the TTL only
			// bounds what a bug could leave behind.
			batches:  sidecar.NewStore[pendingBatch](dc, messages.StateStore, cfg.RecordTTL),
			cursors:  sidecar.NewStore[cursor](dc, messages.StateStore, 0),
			requests: requests, pub: pub, scheduler: sched, now: time.Now, biz: tel.Business(),
		}),
	}
	// The flusher outlives the server's shutdown, so that requests still
	// draining get their entries written; it stops when run returns.
	flushCtx, stopFlush := context.WithCancel(context.WithoutCancel(ctx))
	defer stopFlush()
	go a.redrive.run(flushCtx)

	router := web.NewRouter(log, web.WithInstrumentation(tel))
	// Off unless FAULT_INJECTION=on, which only test stacks set.
	inj := faults.New(cfg.FaultInjection == "on")
	router.Use(inj.Middleware)
	inj.Routes(router)
	a.routes(router)

	log.Info("starting", "port", cfg.Port)
	return web.Serve(ctx, web.ServerConfig{Addr: fmt.Sprintf(":%d", cfg.Port)}, router, log)
}

// schedulerClient reads transaction records from the scheduler.
type schedulerClient struct {
	invoker *sidecar.Invoker
	appID   string
}

func (s *schedulerClient) Transaction(ctx context.Context, id string) (*transactionView, bool, error) {
	found, err := s.query(ctx, []string{id})
	if err != nil || len(found) == 0 {
		return nil, false, err
	}
	return &found[0], true, nil
}

// Transactions returns the transactions of ids that the scheduler has, by
// delivery id; ids must be at most the scheduler's maxQueryIDs.
func (s *schedulerClient) Transactions(ctx context.Context, ids []string) (map[string]transactionView, error) {
	found, err := s.query(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make(map[string]transactionView, len(found))
	for _, tx := range found {
		out[tx.DeliveryID] = tx
	}
	return out, nil
}

func (s *schedulerClient) query(ctx context.Context, ids []string) ([]transactionView, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	// A query with the ids, not /api/transactions/{id}: see the scheduler's
	// routes for why an unknown id must not be a 404 here.
	resp, err := s.invoker.Invoke(ctx, s.appID, http.MethodGet, "/api/transactions?"+url.Values{"id": ids}.Encode(), nil)
	if err != nil {
		return nil, err
	}
	if !resp.OK() {
		return nil, errors.New("scheduler answered " + resp.Detail())
	}
	var found struct {
		Transactions []transactionView `json:"transactions"`
	}
	if err := resp.Decode(&found); err != nil {
		return nil, err
	}
	return found.Transactions, nil
}
