package logging_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/fabrikam/dronedelivery/internal/logging"
)

func spanContext(t *testing.T) (context.Context, trace.SpanContext) {
	t.Helper()
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled})
	return trace.ContextWithSpanContext(context.Background(), sc), sc
}

func TestTraceIDsOnJSONLines(t *testing.T) {
	t.Parallel()
	ctx, sc := spanContext(t)
	var buf bytes.Buffer
	log := logging.New(&buf, "svc", "info", "json").With("k", "v")
	log.InfoContext(ctx, "inside")
	log.Info("outside")
	log.DebugContext(ctx, "filtered out by level")

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d lines, want 2:\n%s", len(lines), buf.String())
	}
	var inside, outside map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &inside); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(lines[1]), &outside); err != nil {
		t.Fatal(err)
	}
	if inside["trace_id"] != sc.TraceID().String() || inside["span_id"] != sc.SpanID().String() {
		t.Errorf("inside a span: trace_id %v span_id %v, want %s %s", inside["trace_id"], inside["span_id"], sc.TraceID(), sc.SpanID())
	}
	if inside["service"] != "svc" || inside["k"] != "v" {
		t.Errorf("attributes lost: %v", inside)
	}
	if _, ok := outside["trace_id"]; ok {
		t.Errorf("outside any span: got trace_id %v, want none", outside["trace_id"])
	}
}

func TestTraceIDsOnTextLines(t *testing.T) {
	t.Parallel()
	ctx, sc := spanContext(t)
	var buf bytes.Buffer
	logging.New(&buf, "svc", "info", "text").InfoContext(ctx, "inside")
	if got := buf.String(); !strings.Contains(got, "trace_id="+sc.TraceID().String()) || !strings.Contains(got, "span_id="+sc.SpanID().String()) {
		t.Errorf("text line %q lacks trace_id and span_id", got)
	}
}
