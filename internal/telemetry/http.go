package telemetry

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// durationBuckets are the latency histogram bounds, in seconds: from a
// sub-millisecond local answer to the multi-second tail of a call that the
// sidecar retried.
var durationBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// unmatchedRoute labels requests no route matched (404, 405), so that
// arbitrary paths never become label values.
const unmatchedRoute = "unmatched"

type serverInstruments struct {
	requests metric.Int64Counter
	errors   metric.Int64Counter
	duration metric.Float64Histogram
}

func newServerInstruments(m metric.Meter) (serverInstruments, error) {
	var (
		s   serverInstruments
		err error
	)
	if s.requests, err = m.Int64Counter("http.server.requests",
		metric.WithDescription("HTTP requests served, by route, method and status class."),
		metric.WithUnit("{request}")); err != nil {
		return s, fmt.Errorf("http.server.requests: %w", err)
	}
	if s.errors, err = m.Int64Counter("http.server.errors",
		metric.WithDescription("HTTP requests answered with a 5xx status, by route and method."),
		metric.WithUnit("{request}")); err != nil {
		return s, fmt.Errorf("http.server.errors: %w", err)
	}
	if s.duration, err = m.Float64Histogram("http.server.request.duration",
		metric.WithDescription("Time to serve an HTTP request, by route, method and status class."),
		metric.WithUnit("s"), metric.WithExplicitBucketBoundaries(durationBuckets...)); err != nil {
		return s, fmt.Errorf("http.server.request.duration: %w", err)
	}
	return s, nil
}

type clientInstruments struct {
	requests metric.Int64Counter
	errors   metric.Int64Counter
	duration metric.Float64Histogram
}

func newClientInstruments(m metric.Meter) (clientInstruments, error) {
	var (
		c   clientInstruments
		err error
	)
	if c.requests, err = m.Int64Counter("http.client.requests",
		metric.WithDescription("Calls to other apps through the sidecar, by target app-id, method and status class."),
		metric.WithUnit("{request}")); err != nil {
		return c, fmt.Errorf("http.client.requests: %w", err)
	}
	if c.errors, err = m.Int64Counter("http.client.errors",
		metric.WithDescription("Calls to other apps that failed in transport or got a 5xx, by target app-id and method."),
		metric.WithUnit("{request}")); err != nil {
		return c, fmt.Errorf("http.client.errors: %w", err)
	}
	if c.duration, err = m.Float64Histogram("http.client.request.duration",
		metric.WithDescription("Duration of calls to other apps through the sidecar, by target app-id, method and status class."),
		metric.WithUnit("s"), metric.WithExplicitBucketBoundaries(durationBuckets...)); err != nil {
		return c, fmt.Errorf("http.client.request.duration: %w", err)
	}
	return c, nil
}

// Middleware traces and measures every request of a mux router: a server
// span named "METHOD /route/{template}" that continues the caller's trace
// (the sidecar forwards traceparent), and request count, 5xx count and
// latency per route, method and status class. Install it with the router's
// Use, outermost, so that it also sees the 500 a panic recovery writes and
// every log line below it carries the trace id.
//
// /healthz and /metrics are neither traced nor counted: launchers, sidecars
// and scrapers poll them, and they would drown the real traffic.
func (t *Telemetry) Middleware() func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			route := routeTemplate(r)
			if route == "/healthz" || route == "/metrics" {
				next.ServeHTTP(w, r)
				return
			}
			start := time.Now()
			ctx := t.prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
			ctx, span := t.tracer.Start(ctx, r.Method+" "+route,
				trace.WithSpanKind(trace.SpanKindServer),
				trace.WithAttributes(
					attribute.String("http.request.method", r.Method),
					attribute.String("http.route", route),
					attribute.String("url.path", r.URL.Path),
				))
			sw := &statusWriter{ResponseWriter: w}
			panicked := true
			defer func() {
				status := sw.code()
				if panicked {
					// A panic that got past the recovery middleware (an
					// http.ErrAbortHandler): the client sees a broken
					// response, which counts as a server error.
					status = http.StatusInternalServerError
				}
				t.endServer(ctx, span, r.Method, route, status, time.Since(start))
			}()
			next.ServeHTTP(sw, r.WithContext(ctx))
			panicked = false
		})
	}
}

func (t *Telemetry) endServer(ctx context.Context, span trace.Span, method, route string, status int, d time.Duration) {
	span.SetAttributes(attribute.Int("http.response.status_code", status))
	if status >= 500 {
		// Server spans mark only 5xx as errors: a 4xx is the client's
		// mistake, answered correctly.
		span.SetStatus(codes.Error, http.StatusText(status))
	}
	span.End()
	attrs := metric.WithAttributeSet(attribute.NewSet(
		attribute.String("route", route),
		attribute.String("method", method),
		attribute.String("status_class", statusClass(status)),
	))
	t.server.requests.Add(ctx, 1, attrs)
	t.server.duration.Record(ctx, d.Seconds(), attrs)
	errAttrs := metric.WithAttributeSet(attribute.NewSet(
		attribute.String("route", route),
		attribute.String("method", method),
	))
	var n int64
	if status >= 500 {
		n = 1
	}
	// Adding zero keeps an error series for every route that has served
	// traffic, so an error ratio reads 0 instead of being absent.
	t.server.errors.Add(ctx, n, errAttrs)
}

// routeTemplate is the mux route template of r, or unmatchedRoute.
func routeTemplate(r *http.Request) string {
	if route := mux.CurrentRoute(r); route != nil {
		if tpl, err := route.GetPathTemplate(); err == nil {
			return tpl
		}
	}
	return unmatchedRoute
}

func statusClass(status int) string {
	if status < 100 || status > 599 {
		return "other"
	}
	return strconv.Itoa(status/100) + "xx"
}

// statusWriter remembers the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach Flush and deadlines on the real
// writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) code() int {
	if w.status == 0 {
		return http.StatusOK // nothing written: net/http sends 200
	}
	return w.status
}

// HTTPClient returns a client for the sidecar's service-invocation API
// (sidecar.NewInvoker takes it): every call gets a client span whose
// traceparent goes to the sidecar, which passes it to the callee, and is
// counted per target app-id, method and status class.
func (t *Telemetry) HTTPClient() *http.Client {
	base := http.DefaultTransport.(*http.Transport).Clone()
	traced := otelhttp.NewTransport(base,
		otelhttp.WithTracerProvider(t.tp),
		otelhttp.WithPropagators(t.prop),
		// otelhttp's own metrics would be labelled with the sidecar's
		// address, the same for every call; the per-target ones below
		// replace them.
		otelhttp.WithMeterProvider(noop.NewMeterProvider()),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
			return r.Method + " " + InvokeTarget(r)
		}),
	)
	return &http.Client{Transport: &measuredTransport{next: traced, m: t.client}}
}

// measuredTransport counts calls per target app-id.
type measuredTransport struct {
	next http.RoundTripper
	m    clientInstruments
}

func (mt *measuredTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := mt.next.RoundTrip(r)
	target := InvokeTarget(r)
	class := "error"
	failed := err != nil
	if err == nil {
		class = statusClass(resp.StatusCode)
		failed = resp.StatusCode >= 500
	}
	ctx := r.Context()
	attrs := metric.WithAttributeSet(attribute.NewSet(
		attribute.String("target", target),
		attribute.String("method", r.Method),
		attribute.String("status_class", class),
	))
	mt.m.requests.Add(ctx, 1, attrs)
	mt.m.duration.Record(ctx, time.Since(start).Seconds(), attrs)
	var n int64
	if failed {
		n = 1
	}
	mt.m.errors.Add(ctx, n, metric.WithAttributeSet(attribute.NewSet(
		attribute.String("target", target),
		attribute.String("method", r.Method),
	)))
	return resp, err
}

// InvokeTarget is the app-id a request to the sidecar's invocation API
// addresses: the dapr-app-id header, or the {app} of
// /v1.0/invoke/{app}/method/..., or else the request's host.
func InvokeTarget(r *http.Request) string {
	if id := r.Header.Get("dapr-app-id"); id != "" {
		return id
	}
	if rest, ok := strings.CutPrefix(r.URL.Path, "/v1.0/invoke/"); ok {
		if app, _, _ := strings.Cut(rest, "/"); app != "" {
			return app
		}
	}
	return r.URL.Host
}
