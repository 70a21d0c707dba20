// Package telemetry sets up OpenTelemetry for one service: traces exported
// over OTLP when the standard OTEL_* variables ask for it, W3C trace context
// and baggage propagation, and metrics served in the Prometheus format. It
// hands out the pieces the shared plumbing takes: an HTTP server middleware,
// an instrumented HTTP client for the sidecar's invocation API, a gRPC dial
// option for the Dapr client, and typed business counters.
//
// Package state: this package keeps none of its own. Setup installs the
// tracer provider, meter provider and propagator as OpenTelemetry's globals
// (otel.SetTracerProvider, otel.SetMeterProvider,
// otel.SetTextMapPropagator), because instrumentation that is not handed a
// provider explicitly — sidecar.Subscription by default, and libraries —
// reads them from there. New builds the same Telemetry without touching the
// globals, for tests.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/otlptranslator"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// scope names the instrumentation of this package in spans and metrics.
const scope = "github.com/fabrikam/dronedelivery/internal/telemetry"

// Telemetry is one service's tracing and metrics. Its zero value is not
// usable; build it with Setup or New and call Shutdown before exiting.
type Telemetry struct {
	service   string
	tp        *sdktrace.TracerProvider
	mp        *sdkmetric.MeterProvider
	prop      propagation.TextMapPropagator
	registry  *prometheus.Registry
	tracer    trace.Tracer
	exporting bool

	server serverInstruments
	client clientInstruments

	businessOnce sync.Once
	business     *Business
}

// Option adjusts New and Setup.
type Option func(*options)

type options struct {
	processors []sdktrace.SpanProcessor
}

// WithSpanProcessor adds a span processor beside the exporter the
// environment configures, so tests can record spans in memory.
func WithSpanProcessor(sp sdktrace.SpanProcessor) Option {
	return func(o *options) { o.processors = append(o.processors, sp) }
}

// Setup builds the telemetry of service (New) and installs its providers
// and the W3C tracecontext+baggage propagator as OpenTelemetry's globals.
// Call it once, first thing in run, and defer Shutdown.
func Setup(ctx context.Context, service string, opts ...Option) (*Telemetry, error) {
	t, err := New(ctx, service, opts...)
	if err != nil {
		return nil, err
	}
	otel.SetTracerProvider(t.tp)
	otel.SetMeterProvider(t.mp)
	otel.SetTextMapPropagator(t.prop)
	return t, nil
}

// New builds the telemetry of service without installing anything globally.
//
// Traces: an OTLP exporter is added only when OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set (OTEL_EXPORTER_OTLP_PROTOCOL
// picks http/protobuf, the default, or grpc; OTEL_TRACES_EXPORTER=none
// turns it off). Without one, spans are still created so that trace ids
// reach the logs and the next hop, but they go nowhere: no batching, no
// network. The sampler comes from OTEL_TRACES_SAMPLER/_ARG (default
// parentbased_always_on), and the resource from OTEL_SERVICE_NAME and
// OTEL_RESOURCE_ATTRIBUTES on top of service.
//
// Metrics: a meter provider whose only reader is the Prometheus exporter, on
// a registry of its own that Handler serves.
func New(ctx context.Context, service string, opts ...Option) (*Telemetry, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", service)),
		resource.WithFromEnv(),
	)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("telemetry resource: %w", err)
	}

	exp, err := spanExporter(ctx)
	if err != nil {
		return nil, err
	}
	tpOpts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	if exp != nil {
		tpOpts = append(tpOpts, sdktrace.WithBatcher(exp))
	}
	for _, sp := range o.processors {
		tpOpts = append(tpOpts, sdktrace.WithSpanProcessor(sp))
	}
	tp := sdktrace.NewTracerProvider(tpOpts...)

	reg := prometheus.NewRegistry()
	// Runtime and process metrics cost nothing to add and answer the first
	// questions about a misbehaving service (goroutines, memory, fds).
	if err := reg.Register(collectors.NewGoCollector()); err != nil {
		return nil, fmt.Errorf("register go collector: %w", err)
	}
	if err := reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, fmt.Errorf("register process collector: %w", err)
	}
	promExp, err := otelprom.New(
		otelprom.WithRegisterer(reg),
		// Named explicitly: the exporter's default is documented to change,
		// and dashboards depend on the _total and _seconds suffixes.
		otelprom.WithTranslationStrategy(otlptranslator.UnderscoreEscapingWithSuffixes),
	)
	if err != nil {
		_ = tp.Shutdown(ctx)
		return nil, fmt.Errorf("prometheus exporter: %w", err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithResource(res), sdkmetric.WithReader(promExp))

	t := &Telemetry{
		service:   service,
		tp:        tp,
		mp:        mp,
		prop:      propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
		registry:  reg,
		tracer:    tp.Tracer(scope),
		exporting: exp != nil,
	}
	meter := mp.Meter(scope)
	if t.server, err = newServerInstruments(meter); err != nil {
		return nil, errors.Join(err, t.Shutdown(ctx))
	}
	if t.client, err = newClientInstruments(meter); err != nil {
		return nil, errors.Join(err, t.Shutdown(ctx))
	}
	return t, nil
}

// spanExporter returns the OTLP exporter the environment asks for, or nil.
// The exporters read the rest of their settings (headers, timeout, TLS,
// per-signal endpoint) from the same variables themselves.
func spanExporter(ctx context.Context) (sdktrace.SpanExporter, error) {
	if os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
		return nil, nil
	}
	if strings.EqualFold(os.Getenv("OTEL_TRACES_EXPORTER"), "none") {
		return nil, nil
	}
	protocol := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if protocol == "" {
		protocol = os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	var (
		exp sdktrace.SpanExporter
		err error
	)
	switch protocol {
	case "", "http/protobuf":
		exp, err = otlptracehttp.New(ctx)
	case "grpc":
		exp, err = otlptracegrpc.New(ctx)
	default:
		return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL %q is not supported: use http/protobuf or grpc", protocol)
	}
	if err != nil {
		return nil, fmt.Errorf("otlp trace exporter: %w", err)
	}
	return exp, nil
}

// Shutdown flushes the spans still buffered and stops the providers. Call it
// after the server and the Dapr client are closed, so their last spans are
// included.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	return errors.Join(t.tp.Shutdown(ctx), t.mp.Shutdown(ctx))
}

// Close is Shutdown for a defer in run: by the time it runs, run's context is
// done and cannot bound the flush, so it gets five seconds of its own, and a
// failure (an unreachable collector, say) is logged rather than turned into
// the process's exit status.
func (t *Telemetry) Close(log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := t.Shutdown(ctx); err != nil {
		log.Warn("telemetry shutdown", "err", err)
	}
}

// Exporting reports whether spans leave the process (an OTLP endpoint is
// configured).
func (t *Telemetry) Exporting() bool { return t.exporting }

// TracerProvider is the service's tracer provider.
func (t *Telemetry) TracerProvider() trace.TracerProvider { return t.tp }

// MeterProvider is the service's meter provider.
func (t *Telemetry) MeterProvider() metric.MeterProvider { return t.mp }

// Propagator is the W3C tracecontext+baggage propagator.
func (t *Telemetry) Propagator() propagation.TextMapPropagator { return t.prop }

// Handler serves every metric of the service in the Prometheus text format;
// mount it at /metrics.
func (t *Telemetry) Handler() http.Handler {
	return promhttp.HandlerFor(t.registry, promhttp.HandlerOpts{})
}

// Business returns the service's business counters, registering them on
// first use so that only the services that count something export them.
func (t *Telemetry) Business() *Business {
	t.businessOnce.Do(func() { t.business = newBusiness(t.mp.Meter(scope + "/business")) })
	return t.business
}
