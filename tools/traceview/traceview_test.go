package traceview_test

import (
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/fabrikam/dronedelivery/tools/traceview"
)

const traceID = "0af7651916cd43dd8448eb211c80319c"

func id(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func str(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
}

// export builds a request with the spans of one service and scope.
func export(t *testing.T, service, scope string, spans ...*tracepb.Span) *coltracepb.ExportTraceServiceRequest {
	t.Helper()
	return &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource:   &resourcepb.Resource{Attributes: []*commonpb.KeyValue{str("service.name", service)}},
		ScopeSpans: []*tracepb.ScopeSpans{{Scope: &commonpb.InstrumentationScope{Name: scope}, Spans: spans}},
	}}}
}

func span(t *testing.T, sid, parent, name string, kind tracepb.Span_SpanKind, startMs, durMs int64, attrs ...*commonpb.KeyValue) *tracepb.Span {
	t.Helper()
	base := time.Date(2030, 5, 14, 20, 0, 0, 0, time.UTC).UnixNano()
	s := &tracepb.Span{
		TraceId: id(t, traceID), SpanId: id(t, sid), Name: name, Kind: kind, Attributes: attrs,
		StartTimeUnixNano: uint64(base + startMs*int64(time.Millisecond)),
		EndTimeUnixNano:   uint64(base + (startMs+durMs)*int64(time.Millisecond)),
	}
	if parent != "" {
		s.ParentSpanId = id(t, parent)
	}
	return s
}

func post(t *testing.T, h http.Handler, req *coltracepb.ExportTraceServiceRequest, gz bool) int {
	t.Helper()
	b, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	var body io.Reader = bytes.NewReader(b)
	if gz {
		var buf bytes.Buffer
		w := gzip.NewWriter(&buf)
		_, _ = w.Write(b)
		_ = w.Close()
		body = &buf
	}
	r := httptest.NewRequest(http.MethodPost, "/v1/traces", body)
	r.Header.Set("Content-Type", "application/x-protobuf")
	if gz {
		r.Header.Set("Content-Encoding", "gzip")
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec.Code
}

func TestReceiveBuildAndRender(t *testing.T) {
	t.Parallel()
	st := traceview.NewStore(10)
	h := traceview.Handler(st)
	app := export(t, "scheduler", "github.com/fabrikam/dronedelivery/internal/telemetry",
		span(t, "1111111111111111", "", "POST /events/delivery-requested", tracepb.Span_SPAN_KIND_SERVER, 0, 50),
		span(t, "2222222222222222", "1111111111111111", "PUT drone", tracepb.Span_SPAN_KIND_CLIENT, 10, 20,
			str("url.path", "/v1.0/invoke/drone/method/api/dronedeliveries/d-42")),
	)
	sidecar := export(t, "scheduler", "dapr-diagnostics",
		span(t, "3333333333333333", "2222222222222222", "CallLocal/drone", tracepb.Span_SPAN_KIND_CLIENT, 11, 18),
		span(t, "4444444444444444", "9999999999999999", "late parent", tracepb.Span_SPAN_KIND_INTERNAL, 12, 1),
	)
	if code := post(t, h, app, false); code != http.StatusOK {
		t.Fatalf("export: %d", code)
	}
	if code := post(t, h, sidecar, true); code != http.StatusOK {
		t.Fatalf("gzip export: %d", code)
	}

	spans := st.Trace(traceID)
	if len(spans) != 4 {
		t.Fatalf("got %d spans, want 4", len(spans))
	}
	roots, orphans := traceview.Build(spans)
	if len(roots) != 1 || roots[0].SpanID != "1111111111111111" {
		t.Fatalf("roots = %v, want the server span", roots)
	}
	if got := roots[0].Children[0].Children[0]; got.Who() != "scheduler/dapr" {
		t.Errorf("grandchild recorded by %q, want scheduler/dapr", got.Who())
	}
	if len(orphans) != 1 || orphans[0].SpanID != "4444444444444444" {
		t.Errorf("orphans = %v, want the span whose parent never came", orphans)
	}

	var out bytes.Buffer
	traceview.Render(&out, spans)
	for _, want := range []string{
		"trace " + traceID + ": 4 spans, 50.0ms",
		"+0.0ms     50.0ms  scheduler: POST /events/delivery-requested",
		"   +10.0ms     20.0ms    scheduler: PUT drone [/v1.0/invoke/drone/method/api/dronedeliveries/d-42]",
		"      scheduler/dapr: CallLocal/drone",
		"(parent 9999999999999999 not received)",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("timeline lacks %q:\n%s", want, out.String())
		}
	}

	if got := st.Find("d-42"); len(got) != 1 || got[0] != traceID {
		t.Errorf("Find(d-42) = %v, want [%s]", got, traceID)
	}
	for path, want := range map[string]int{
		"/":                             http.StatusOK,
		"/trace/" + traceID:             http.StatusOK,
		"/trace/" + traceID + "?text":   http.StatusOK,
		"/trace/ffffffffffffffffffffff": http.StatusNotFound,
		"/find?q=d-42":                  http.StatusFound,
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != want {
			t.Errorf("GET %s: %d, want %d", path, rec.Code, want)
		}
	}
}

func TestReceiverRejectsWhatItCannotRead(t *testing.T) {
	t.Parallel()
	h := traceview.Receiver(traceview.NewStore(1))
	for name, r := range map[string]*http.Request{
		"json":    withType(httptest.NewRequest(http.MethodPost, "/v1/traces", strings.NewReader("{}")), "application/json"),
		"garbage": withType(httptest.NewRequest(http.MethodPost, "/v1/traces", strings.NewReader("\xff\xff\xff")), "application/x-protobuf"),
		"get":     httptest.NewRequest(http.MethodGet, "/v1/traces", nil),
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if rec.Code < 400 {
			t.Errorf("%s: %d, want a 4xx", name, rec.Code)
		}
	}
}

func withType(r *http.Request, ct string) *http.Request {
	r.Header.Set("Content-Type", ct)
	return r
}

func TestStoreForgetsOldestTraces(t *testing.T) {
	t.Parallel()
	st := traceview.NewStore(2)
	for _, tid := range []string{"a", "b", "c"} {
		st.Add(traceview.Span{TraceID: tid, SpanID: "s" + tid})
	}
	if len(st.Trace("a")) != 0 || len(st.Trace("c")) != 1 {
		t.Errorf("store kept %d spans of a and %d of c; want the oldest trace forgotten", len(st.Trace("a")), len(st.Trace("c")))
	}
}
