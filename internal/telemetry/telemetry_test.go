package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/mux"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	"github.com/fabrikam/dronedelivery/internal/logging"
	"github.com/fabrikam/dronedelivery/internal/sidecar"
	"github.com/fabrikam/dronedelivery/internal/telemetry"
	"github.com/fabrikam/dronedelivery/internal/telemetry/telemetrytest"
	"github.com/fabrikam/dronedelivery/internal/web"
)

// newTelemetry returns telemetry that records spans in memory and installs
// nothing globally, so tests can run in parallel.
func newTelemetry(t *testing.T) (*telemetry.Telemetry, *tracetest.SpanRecorder) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tel, err := telemetry.New(t.Context(), "test", telemetry.WithSpanProcessor(rec))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	return tel, rec
}

// lockedBuffer collects log output written from handler goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.buf.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

func spanNamed(t *testing.T, rec *tracetest.SpanRecorder, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	var names []string
	for _, s := range rec.Ended() {
		if s.Name() == name {
			return s
		}
		names = append(names, s.Name())
	}
	t.Fatalf("no span %q among %q", name, names)
	return nil
}

func scrape(t *testing.T, h http.Handler) telemetrytest.Metrics {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: %d", rec.Code)
	}
	m, err := telemetrytest.Parse(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func wantValue(t *testing.T, m telemetrytest.Metrics, name string, labels map[string]string, want float64) {
	t.Helper()
	got, found := m.Value(name, labels)
	if !found {
		t.Errorf("no series %s%v", name, labels)
		return
	}
	if got != want {
		t.Errorf("%s%v = %v, want %v", name, labels, got, want)
	}
}

func serve(h http.Handler, method, path string, header http.Header) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestLogLinesCarryTraceAndSpanID(t *testing.T) {
	t.Parallel()
	tel, spans := newTelemetry(t)
	var out lockedBuffer
	log := logging.New(&out, "test", "debug", "json")
	r := web.NewRouter(log, web.WithInstrumentation(tel))
	r.HandleFunc("/api/things/{id}", func(w http.ResponseWriter, r *http.Request) {
		log.InfoContext(r.Context(), "handling thing")
		w.WriteHeader(http.StatusNoContent)
	}).Methods(http.MethodGet)

	serve(r, http.MethodGet, "/api/things/42", nil)
	log.Info("outside any request")

	server := spanNamed(t, spans, "GET /api/things/{id}")
	var sawHandler, sawAccess, sawOutside bool
	for _, l := range out.lines(t) {
		switch l["msg"] {
		case "handling thing", "http request":
			if got, want := l["trace_id"], server.SpanContext().TraceID().String(); got != want {
				t.Errorf("%q: trace_id = %v, want %v", l["msg"], got, want)
			}
			if got, want := l["span_id"], server.SpanContext().SpanID().String(); got != want {
				t.Errorf("%q: span_id = %v, want %v", l["msg"], got, want)
			}
			sawHandler = sawHandler || l["msg"] == "handling thing"
			sawAccess = sawAccess || l["msg"] == "http request"
		case "outside any request":
			sawOutside = true
			if _, ok := l["trace_id"]; ok {
				t.Errorf("a line logged without a span has trace_id %v", l["trace_id"])
			}
		}
		if l["service"] != "test" {
			t.Errorf("line %v lost its service attribute", l)
		}
	}
	if !sawHandler || !sawAccess || !sawOutside {
		t.Errorf("missing log lines (handler %v, access %v, outside %v)", sawHandler, sawAccess, sawOutside)
	}
}

func TestServerSpanContinuesCallerTrace(t *testing.T) {
	t.Parallel()
	tel, spans := newTelemetry(t)
	r := web.NewRouter(discardLog(), web.WithInstrumentation(tel))
	r.HandleFunc("/api/things/{id}", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusOK)
	}).Methods(http.MethodPut)

	const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	serve(r, http.MethodPut, "/api/things/7", http.Header{"Traceparent": {traceparent}})

	s := spanNamed(t, spans, "PUT /api/things/{id}")
	if got, want := s.SpanContext().TraceID().String(), "4bf92f3577b34da6a3ce929d0e0e4736"; got != want {
		t.Errorf("trace id = %s, want the caller's %s", got, want)
	}
	if got, want := s.Parent().SpanID().String(), "00f067aa0ba902b7"; got != want {
		t.Errorf("parent span id = %s, want the caller's %s", got, want)
	}
	if s.SpanKind() != trace.SpanKindServer {
		t.Errorf("kind = %v, want server", s.SpanKind())
	}
}

func TestServerMetrics(t *testing.T) {
	t.Parallel()
	tel, spans := newTelemetry(t)
	r := web.NewRouter(discardLog(), web.WithInstrumentation(tel))
	r.HandleFunc("/api/things/{id}", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusOK)
	}).Methods(http.MethodGet)
	r.HandleFunc("/api/boom", func(http.ResponseWriter, *http.Request) {
		panic("boom")
	}).Methods(http.MethodPost)

	for _, id := range []string{"1", "2", "3"} {
		serve(r, http.MethodGet, "/api/things/"+id, nil)
	}
	if got := serve(r, http.MethodPost, "/api/boom", nil).Code; got != http.StatusInternalServerError {
		t.Fatalf("panicking handler answered %d, want 500", got)
	}
	serve(r, http.MethodGet, "/nowhere/at/all", nil)
	serve(r, http.MethodDelete, "/api/things/1", nil)
	serve(r, http.MethodGet, "/healthz", nil)

	m := scrape(t, r)
	wantValue(t, m, "http_server_requests_total", map[string]string{"route": "/api/things/{id}", "method": "GET", "status_class": "2xx"}, 3)
	wantValue(t, m, "http_server_request_duration_seconds", map[string]string{"route": "/api/things/{id}", "method": "GET", "status_class": "2xx"}, 3)
	wantValue(t, m, "http_server_errors_total", map[string]string{"route": "/api/things/{id}", "method": "GET"}, 0)
	wantValue(t, m, "http_server_requests_total", map[string]string{"route": "/api/boom", "method": "POST", "status_class": "5xx"}, 1)
	wantValue(t, m, "http_server_errors_total", map[string]string{"route": "/api/boom", "method": "POST"}, 1)
	wantValue(t, m, "http_server_requests_total", map[string]string{"route": "unmatched", "method": "GET", "status_class": "4xx"}, 1)
	wantValue(t, m, "http_server_requests_total", map[string]string{"route": "unmatched", "method": "DELETE", "status_class": "4xx"}, 1)
	if _, found := m.Value("http_server_requests_total", map[string]string{"route": "/healthz"}); found {
		t.Error("/healthz is counted; it must not be")
	}
	if !m.Has("go_goroutines") || !m.Has("process_cpu_seconds_total") {
		t.Error("runtime and process metrics are missing")
	}

	boom := spanNamed(t, spans, "POST /api/boom")
	if boom.Status().Code.String() != "Error" {
		t.Errorf("span of a 500 has status %v, want Error", boom.Status())
	}
	for _, s := range spans.Ended() {
		if strings.Contains(s.Name(), "healthz") || strings.Contains(s.Name(), "metrics") {
			t.Errorf("span %q recorded; health and metrics must not be traced", s.Name())
		}
	}
}

func TestBusinessCounters(t *testing.T) {
	t.Parallel()
	tel, _ := newTelemetry(t)
	h := tel.Handler()
	if m := scrape(t, h); m.Has("deliveries_scheduled_total") {
		t.Error("business counters are exported before the service asked for them")
	}
	b := tel.Business()
	ctx := t.Context()
	b.Accepted(ctx)
	b.Accepted(ctx)
	b.Scheduled(ctx)
	b.Failed(ctx)
	b.Redriven(ctx)
	inFlight := int64(3)
	if err := b.ObserveDronesInFlight(func(context.Context) (int64, error) { return inFlight, nil }); err != nil {
		t.Fatal(err)
	}

	m := scrape(t, h)
	for name, want := range map[string]float64{
		"deliveries_accepted_total":    2,
		"deliveries_scheduled_total":   1,
		"deliveries_rejected_total":    0,
		"deliveries_canceled_total":    0,
		"deliveries_failed_total":      1,
		"deliveries_compensated_total": 0,
		"deliveries_redriven_total":    1,
		"drones_in_flight":             3,
	} {
		wantValue(t, m, name, nil, want)
	}

	var none *telemetry.Business
	none.Scheduled(ctx) // a nil Business counts nothing and does not panic
	if err := none.ObserveDronesInFlight(nil); err != nil {
		t.Error(err)
	}
}

func TestInvokerClientSpanAndTargetMetrics(t *testing.T) {
	t.Parallel()
	tel, spans := newTelemetry(t)
	var (
		mu     sync.Mutex
		header http.Header
	)
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		header = r.Header.Clone()
		mu.Unlock()
		if strings.Contains(r.URL.Path, "/invoke/drone/") {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(fake.Close)
	inv := sidecar.NewInvoker(strings.TrimPrefix(fake.URL, "http://"), tel.HTTPClient())

	ctx, parent := tel.TracerProvider().Tracer("test").Start(t.Context(), "parent")
	if _, err := inv.Invoke(ctx, "account", http.MethodGet, "/api/accounts/contoso", nil); err != nil {
		t.Fatal(err)
	}
	parent.End()

	client := spanNamed(t, spans, "GET account")
	if client.Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Errorf("client span's parent = %s, want the caller's span %s", client.Parent().SpanID(), parent.SpanContext().SpanID())
	}
	if client.SpanKind() != trace.SpanKindClient {
		t.Errorf("kind = %v, want client", client.SpanKind())
	}
	mu.Lock()
	sent := header.Get("Traceparent")
	mu.Unlock()
	sc := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{"traceparent": sent}))
	if sc.TraceID() != parent.SpanContext().TraceID() || sc.SpanID() != client.SpanContext().SpanID() {
		t.Errorf("sidecar got traceparent %q, want trace %s and span %s", sent, parent.SpanContext().TraceID(), client.SpanContext().SpanID())
	}

	if _, err := inv.Invoke(t.Context(), "drone", http.MethodPut, "/api/dronedeliveries/d1", map[string]string{"a": "b"}); err != nil {
		t.Fatal(err)
	}
	m := scrape(t, tel.Handler())
	wantValue(t, m, "http_client_requests_total", map[string]string{"target": "account", "method": "GET", "status_class": "2xx"}, 1)
	wantValue(t, m, "http_client_errors_total", map[string]string{"target": "account", "method": "GET"}, 0)
	wantValue(t, m, "http_client_requests_total", map[string]string{"target": "drone", "method": "PUT", "status_class": "5xx"}, 1)
	wantValue(t, m, "http_client_errors_total", map[string]string{"target": "drone", "method": "PUT"}, 1)
	wantValue(t, m, "http_client_request_duration_seconds", map[string]string{"target": "drone"}, 1)
}

const traceparentCE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

func cloudEvent(topic, traceparent string) string {
	return `{"id":"e1","source":"ingestion","type":"com.fabrikam.test.v1","topic":"` + topic + `","pubsubname":"pubsub",` +
		`"specversion":"1.0","datacontenttype":"application/json","traceparent":"` + traceparent + `","data":{"n":1}}`
}

func TestSubscriptionContinuesPublisherTrace(t *testing.T) {
	t.Parallel()
	tel, spans := newTelemetry(t)
	var out lockedBuffer
	log := logging.New(&out, "test", "info", "json")
	var handled trace.SpanContext
	r := web.NewRouter(log, web.WithInstrumentation(tel))
	results := map[string]error{
		"ok":    nil,
		"retry": errors.New("store down"),
		"drop":  sidecar.Drop(errors.New("poison")),
	}
	r.Handle("/events/{kind}", sidecar.Subscription(log, func(ctx context.Context, e sidecar.Event) error {
		handled = trace.SpanContextFromContext(ctx)
		log.InfoContext(ctx, "handling event", "id", e.ID)
		return results[strings.TrimPrefix(e.Topic, "topic-")]
	}, sidecar.WithTelemetry(tel.TracerProvider(), tel.MeterProvider()))).Methods(http.MethodPost)

	post := func(kind string, header http.Header) {
		t.Helper()
		req := httptest.NewRequest(http.MethodPost, "/events/"+kind, strings.NewReader(cloudEvent("topic-"+kind, traceparentCE)))
		req.Header.Set("Content-Type", "application/cloudevents+json")
		for k, v := range header {
			req.Header[k] = v
		}
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Fatalf("POST /events/%s: %d", kind, rec.Code)
		}
	}

	// A sidecar that does not trace: the request starts a trace of its own,
	// and the consumer span goes back to the publisher's.
	post("ok", nil)
	consumer := spanNamed(t, spans, "process topic-ok")
	server := spanNamed(t, spans, "POST /events/{kind}")
	if got, want := consumer.SpanContext().TraceID().String(), "0af7651916cd43dd8448eb211c80319c"; got != want {
		t.Errorf("consumer trace = %s, want the CloudEvent's %s", got, want)
	}
	if got, want := consumer.Parent().SpanID().String(), "b7ad6b7169203331"; got != want {
		t.Errorf("consumer parent = %s, want the CloudEvent's span %s", got, want)
	}
	if len(consumer.Links()) != 1 || consumer.Links()[0].SpanContext.SpanID() != server.SpanContext().SpanID() {
		t.Errorf("consumer links = %v, want one to the server span", consumer.Links())
	}
	if consumer.SpanKind() != trace.SpanKindConsumer {
		t.Errorf("kind = %v, want consumer", consumer.SpanKind())
	}
	if handled.SpanID() != consumer.SpanContext().SpanID() {
		t.Errorf("handler ran in span %s, want the consumer span %s", handled.SpanID(), consumer.SpanContext().SpanID())
	}
	for _, l := range out.lines(t) {
		if l["msg"] == "handling event" && l["trace_id"] != "0af7651916cd43dd8448eb211c80319c" {
			t.Errorf("handler's log line has trace_id %v, want the publisher's", l["trace_id"])
		}
	}

	// A tracing sidecar: it passes its delivery span (in the publisher's
	// trace) in the header, and the consumer span nests under the server span.
	spans2 := spans.Ended()
	post("retry", http.Header{"Traceparent": {"00-0af7651916cd43dd8448eb211c80319c-1111111111111111-01"}})
	var server2, consumer2 sdktrace.ReadOnlySpan
	for _, s := range spans.Ended()[len(spans2):] {
		switch s.Name() {
		case "POST /events/{kind}":
			server2 = s
		case "process topic-retry":
			consumer2 = s
		}
	}
	if server2 == nil || consumer2 == nil {
		t.Fatal("server or consumer span of the second delivery missing")
	}
	if server2.Parent().SpanID().String() != "1111111111111111" {
		t.Errorf("server span parent = %s, want the sidecar's span", server2.Parent().SpanID())
	}
	if consumer2.Parent().SpanID() != server2.SpanContext().SpanID() {
		t.Errorf("consumer parent = %s, want the server span %s", consumer2.Parent().SpanID(), server2.SpanContext().SpanID())
	}
	if consumer2.Status().Code.String() != "Error" {
		t.Errorf("a retried message's span has status %v, want Error", consumer2.Status())
	}

	post("drop", nil)
	m := scrape(t, tel.Handler())
	for outcome, topic := range map[string]string{"SUCCESS": "topic-ok", "RETRY": "topic-retry", "DROP": "topic-drop"} {
		wantValue(t, m, "messages_handled_total", map[string]string{"topic": topic, "outcome": outcome}, 1)
	}
	wantValue(t, m, "messages_handle_duration_seconds", map[string]string{"topic": "topic-ok"}, 1)
}

// healthRecorder is a gRPC health server that remembers the metadata of
// the last call.
type healthRecorder struct {
	*health.Server
	mu sync.Mutex
	md metadata.MD
}

func (h *healthRecorder) Check(ctx context.Context, in *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	h.mu.Lock()
	h.md = md
	h.mu.Unlock()
	return h.Server.Check(ctx, in)
}

func TestDialOptionCarriesTraceContext(t *testing.T) {
	t.Parallel()
	tel, spans := newTelemetry(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	rec := &healthRecorder{Server: health.NewServer()}
	healthpb.RegisterHealthServer(srv, rec)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)

	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()), tel.DialOption())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ctx, parent := tel.TracerProvider().Tracer("test").Start(t.Context(), "parent")
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	parent.End()

	client := spanNamed(t, spans, "grpc.health.v1.Health/Check")
	if client.Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Errorf("gRPC client span's parent = %s, want %s", client.Parent().SpanID(), parent.SpanContext().SpanID())
	}
	rec.mu.Lock()
	got := rec.md.Get("traceparent")
	rec.mu.Unlock()
	if len(got) != 1 || !strings.Contains(got[0], client.SpanContext().TraceID().String()+"-"+client.SpanContext().SpanID().String()) {
		t.Errorf("server got traceparent %q, want the client span's context", got)
	}
}

// TestSetupExportsOverOTLP sets process environment, so it cannot run in
// parallel with the others.
func TestSetupExportsOverOTLP(t *testing.T) {
	var (
		mu       sync.Mutex
		received int
	)
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/v1/traces" && len(b) > 0 {
			mu.Lock()
			received++
			mu.Unlock()
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(collector.Close)

	t.Run("no endpoint, no exporter", func(t *testing.T) {
		t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
		t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
		tel, err := telemetry.New(t.Context(), "svc")
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = tel.Shutdown(context.Background()) }()
		if tel.Exporting() {
			t.Error("exporting with no endpoint configured")
		}
	})
	t.Run("unsupported protocol", func(t *testing.T) {
		t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL)
		t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
		if _, err := telemetry.New(t.Context(), "svc"); err == nil {
			t.Error("http/json accepted; the exporters only speak protobuf")
		}
	})
	t.Run("endpoint set", func(t *testing.T) {
		t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL)
		t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "")
		tel, err := telemetry.Setup(t.Context(), "svc")
		if err != nil {
			t.Fatal(err)
		}
		if !tel.Exporting() {
			t.Fatal("not exporting with OTEL_EXPORTER_OTLP_ENDPOINT set")
		}
		_, span := tel.TracerProvider().Tracer("test").Start(t.Context(), "exported")
		span.End()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := tel.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if received == 0 {
			t.Error("no spans reached the OTLP endpoint by Shutdown")
		}
	})
}

func discardLog() *slog.Logger { return logging.New(io.Discard, "test", "error", "json") }

// BenchmarkMiddleware measures what tracing and metrics add to a request
// when no exporter is configured, the default outside a traced stack.
func BenchmarkMiddleware(b *testing.B) {
	handler := func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }
	bench := func(b *testing.B, r *mux.Router) {
		r.HandleFunc("/api/things/{id}", handler).Methods(http.MethodGet)
		req := httptest.NewRequest(http.MethodGet, "/api/things/1", nil)
		b.ReportAllocs()
		for b.Loop() {
			r.ServeHTTP(httptest.NewRecorder(), req)
		}
	}
	b.Run("plain", func(b *testing.B) { bench(b, web.NewRouter(discardLog())) })
	b.Run("instrumented", func(b *testing.B) {
		tel, err := telemetry.New(b.Context(), "bench")
		if err != nil {
			b.Fatal(err)
		}
		defer func() { _ = tel.Shutdown(context.Background()) }()
		bench(b, web.NewRouter(discardLog(), web.WithInstrumentation(tel)))
	})
}
