package observability

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/fabrikam/dronedelivery/internal/messages"
	"github.com/fabrikam/dronedelivery/internal/sidecar"
	"github.com/fabrikam/dronedelivery/internal/telemetry"
	"github.com/fabrikam/dronedelivery/internal/telemetry/telemetrytest"
	"github.com/fabrikam/dronedelivery/tests/harness"
	"github.com/fabrikam/dronedelivery/tools/traceview"
)

// TestPublishCarriesTraceContextIntoTheCloudEvent publishes through the
// ingestion sidecar with the client the apps use (sidecar.Dial with
// telemetry's dial option) inside a span, and checks that daprd continued
// that trace: the CloudEvent on the broker carries it, and the subscriber's
// sidecar delivers the message in it. It needs no app to be traced.
func TestPublishCarriesTraceContextIntoTheCloudEvent(t *testing.T) {
	ctx := t.Context()
	rec := tracetest.NewSpanRecorder()
	tel, err := telemetry.New(ctx, "e2e-test", telemetry.WithSpanProcessor(rec))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tel.Shutdown(context.Background()) }()
	dc, err := sidecar.Dial(fmt.Sprintf("127.0.0.1:%d", env.Stack.App("ingestion").DaprGRPCPort), tel.DialOption())
	if err != nil {
		t.Fatal(err)
	}
	defer dc.Close()

	probe := "trace-probe-" + randomHex(t, 6)
	ctx, root := tel.TracerProvider().Tracer("e2e").Start(ctx, "publish probe")
	// A cancel of a delivery nobody requested: the scheduler records it and
	// acknowledges; nothing else happens.
	err = sidecar.NewPublisher(dc, messages.PubSub).Publish(ctx, messages.TopicDeliveryRequests,
		messages.TypeDeliveryCanceled, probe, messages.DeliveryCanceled{DeliveryID: probe, RequestedAt: time.Now().UTC()})
	root.End()
	if err != nil {
		t.Fatal(err)
	}
	var client trace.SpanContext
	for _, s := range rec.Ended() {
		if s.SpanKind() == trace.SpanKindClient && strings.HasSuffix(s.Name(), "/PublishEvent") {
			client = s.SpanContext()
		}
	}
	if !client.IsValid() {
		t.Fatal("the gRPC client made no span for PublishEvent")
	}
	traceID := root.SpanContext().TraceID().String()

	var envelope struct {
		TraceParent string `json:"traceparent"`
	}
	if err := json.Unmarshal(rawMessage(t, messages.TopicDeliveryRequests, probe), &envelope); err != nil {
		t.Fatal(err)
	}
	published := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(),
		propagation.MapCarrier{"traceparent": envelope.TraceParent}))
	if got := published.TraceID().String(); got != traceID {
		t.Fatalf("CloudEvent traceparent %q is in trace %s, want the publisher's %s", envelope.TraceParent, got, traceID)
	}

	// The test's own two spans are not exported; add them so the tree is
	// complete from the root.
	local := []traceview.Span{
		{TraceID: traceID, SpanID: root.SpanContext().SpanID().String(), Service: "e2e-test", Name: "publish probe"},
		{TraceID: traceID, SpanID: client.SpanID().String(), ParentID: root.SpanContext().SpanID().String(), Service: "e2e-test", Name: "PublishEvent"},
	}
	harness.Eventually(t, 20*time.Second, func() (bool, string) {
		spans := append(received.Trace(traceID), local...)
		byID := map[string]traceview.Span{}
		for _, s := range spans {
			byID[s.SpanID] = s
		}
		ce, ok := byID[published.SpanID().String()]
		if !ok || ce.Who() != "ingestion/dapr" {
			return false, fmt.Sprintf("the CloudEvent's parent span %s is not an ingestion sidecar span yet\n%s", published.SpanID(), timeline(spans))
		}
		delivered := false
		for _, s := range spans {
			if s.Who() == "scheduler/dapr" && s.ParentID == ce.SpanID {
				delivered = true
			}
		}
		if !delivered {
			return false, "no scheduler sidecar span delivers the message in the publisher's trace yet\n" + timeline(spans)
		}
		if p := treeProblems(spans, ""); len(p) > 0 {
			return false, strings.Join(p, "\n") + "\n" + timeline(spans)
		}
		return true, ""
	})
}

// TestOneTraceCoversADelivery follows one delivery from the public POST
// through the broker, the scheduler and every service it calls: one trace,
// with the apps' and the sidecars' spans, forming one tree.
func TestOneTraceCoversADelivery(t *testing.T) {
	requireTracedApps(t)
	deliveryID, traceID, caller := scheduleTraced(t)

	harness.Eventually(t, 30*time.Second, func() (bool, string) {
		spans := received.Trace(traceID)
		who := whoIn(spans)
		var missing []string
		for _, app := range apps {
			for _, w := range []string{app, app + "/dapr"} {
				if !slices.Contains(who, w) {
					missing = append(missing, w)
				}
			}
		}
		if len(missing) > 0 {
			return false, fmt.Sprintf("trace %s has no spans from %v\n%s", traceID, missing, timeline(spans))
		}
		if p := treeProblems(spans, caller); len(p) > 0 {
			return false, strings.Join(p, "\n") + "\n" + timeline(spans)
		}
		return true, ""
	})
	t.Logf("delivery %s:\n%s", deliveryID, timeline(received.Trace(traceID)))

	if ids := received.Find(deliveryID); !slices.Contains(ids, traceID) {
		t.Errorf("traceview finds traces %v for delivery %s, want %s among them", ids, deliveryID, traceID)
	}
}

// TestLogLinesCarryTheDeliveryTraceID checks that the scheduler's log line
// about a delivery it scheduled carries that delivery's trace id.
func TestLogLinesCarryTheDeliveryTraceID(t *testing.T) {
	requireTracedApps(t)
	deliveryID, traceID, _ := scheduleTraced(t)
	harness.Eventually(t, 10*time.Second, func() (bool, string) {
		var lines []string
		for _, l := range stackLogLines(t, "scheduler") {
			if l["deliveryId"] != deliveryID {
				continue
			}
			if l["trace_id"] == traceID {
				return true, ""
			}
			b, _ := json.Marshal(l)
			lines = append(lines, string(b))
		}
		return false, fmt.Sprintf("no scheduler log line about %s carries trace_id %s; lines about it:\n%s",
			deliveryID, traceID, strings.Join(lines, "\n"))
	})
}

// sidecarSeries are series every sidecar exports, whatever its app does.
var sidecarSeries = []string{"dapr_runtime_component_loaded"}

// sidecarSeriesOf are the series a sidecar exports once it has played its
// part in a delivery.
var sidecarSeriesOf = map[string][]string{
	"ingestion":  {"dapr_component_pubsub_egress_count", "dapr_grpc_io_server_completed_rpcs"},
	"scheduler":  {"dapr_component_pubsub_ingress_count", "dapr_runtime_service_invocation_req_sent_total", "dapr_http_server_request_count"},
	"account":    {"dapr_runtime_service_invocation_req_recv_total", "dapr_grpc_io_server_completed_rpcs"},
	"thirdparty": {"dapr_runtime_service_invocation_req_recv_total", "dapr_grpc_io_server_completed_rpcs"},
	"package":    {"dapr_runtime_service_invocation_req_recv_total", "dapr_grpc_io_server_completed_rpcs"},
	"drone":      {"dapr_runtime_service_invocation_req_recv_total", "dapr_grpc_io_server_completed_rpcs"},
	"delivery":   {"dapr_runtime_service_invocation_req_recv_total", "dapr_grpc_io_server_completed_rpcs"},
}

// TestSidecarMetrics scrapes every sidecar after a delivery has gone through.
func TestSidecarMetrics(t *testing.T) {
	id := env.Accepted(t, harness.DeliveryBody("contoso", "Seattle", "Redmond", 1, "pkg-obs-"+randomHex(t, 4)), nil)
	env.WaitStatus(t, id, 30*time.Second, "Scheduled")
	t.Cleanup(func() { env.Do(t, "ingestion", http.MethodDelete, "/api/deliveryrequests/"+id, nil, nil) })

	for _, a := range env.Stack.Apps() {
		m, err := telemetrytest.Scrape(t.Context(), a.MetricsURL())
		if err != nil {
			t.Errorf("%s sidecar: %v", a.ID, err)
			continue
		}
		for _, name := range append(slices.Clone(sidecarSeries), sidecarSeriesOf[a.ID]...) {
			if !m.Has(name) {
				t.Errorf("%s sidecar (%s) has no %s", a.ID, a.MetricsURL(), name)
			}
		}
	}
}

// appSeries are series every app exports from the start.
var appSeries = []string{"go_goroutines", "process_cpu_seconds_total", "target_info"}

// servedSeries are series every app a delivery passes through exports once
// it has served requests.
var servedSeries = []string{
	"http_server_requests_total",
	"http_server_errors_total",
	"http_server_request_duration_seconds",
	"rpc_client_call_duration_seconds",
}

// appSeriesOf are the series particular to an app.
var appSeriesOf = map[string][]string{
	"ingestion": {"deliveries_accepted_total", "deliveries_redriven_total"},
	"scheduler": {
		"messages_handled_total", "messages_handle_duration_seconds",
		"http_client_requests_total", "http_client_errors_total", "http_client_request_duration_seconds",
		"deliveries_scheduled_total", "deliveries_rejected_total", "deliveries_canceled_total", "deliveries_failed_total",
	},
	"drone": {"drones_in_flight"},
}

// TestAppMetrics scrapes every app's /metrics after a delivery.
func TestAppMetrics(t *testing.T) {
	requireTracedApps(t)
	scheduleTraced(t)
	for _, a := range env.Stack.Apps() {
		m, err := telemetrytest.Scrape(t.Context(), a.URL()+"/metrics")
		if err != nil {
			t.Errorf("%s: %v", a.ID, err)
			continue
		}
		want := slices.Clone(appSeries)
		if slices.Contains(apps, a.ID) {
			want = append(want, servedSeries...)
		}
		for _, name := range append(want, appSeriesOf[a.ID]...) {
			if !m.Has(name) {
				t.Errorf("%s (%s/metrics) has no %s", a.ID, a.URL(), name)
			}
		}
		if a.ID == "scheduler" {
			if v, _ := m.Value("messages_handled_total", map[string]string{"topic": messages.TopicDeliveryRequests, "outcome": sidecar.StatusSuccess}); v < 1 {
				t.Errorf("scheduler handled %v delivery-requests messages successfully, want at least 1", v)
			}
			for _, target := range apps[2:] {
				if v, _ := m.Value("http_client_requests_total", map[string]string{"target": target}); v < 1 {
					t.Errorf("scheduler counts %v calls to %s, want at least 1", v, target)
				}
			}
		}
		if v, _ := m.Value("http_server_requests_total", nil); slices.Contains(apps, a.ID) && v < 1 {
			t.Errorf("%s counts %v requests served, want at least 1", a.ID, v)
		}
	}
}

// TestScheduledCounterCountsEachDelivery schedules N deliveries and reads
// the scheduler's deliveries_scheduled_total before and after.
func TestScheduledCounterCountsEachDelivery(t *testing.T) {
	requireTracedApps(t)
	const n = 3
	url := env.Stack.App("scheduler").URL() + "/metrics"
	scheduled := func() float64 {
		m, err := telemetrytest.Scrape(t.Context(), url)
		if err != nil {
			t.Fatal(err)
		}
		v, found := m.Value("deliveries_scheduled_total", nil)
		if !found {
			t.Fatalf("%s has no deliveries_scheduled_total", url)
		}
		return v
	}
	before := scheduled()
	for range n {
		scheduleTraced(t)
	}
	harness.Eventually(t, 5*time.Second, func() (bool, string) {
		got := scheduled() - before
		return got == n, fmt.Sprintf("deliveries_scheduled_total rose by %v, want %d", got, n)
	})
}
