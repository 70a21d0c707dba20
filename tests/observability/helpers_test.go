package observability

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"

	"github.com/fabrikam/dronedelivery/tests/harness"
	"github.com/fabrikam/dronedelivery/tools/traceview"
)

// apps are the services one delivery passes through.
var apps = []string{"ingestion", "scheduler", "account", "thirdparty", "package", "drone", "delivery"}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

var wired struct {
	once sync.Once
	ok   bool
}

// requireTracedApps skips the test unless the apps export spans. The probe
// is one traced request to ingestion (a status read of an unknown delivery);
// if no span of the ingestion app, as opposed to its sidecar, arrives within
// a few seconds, the apps are not wired to internal/telemetry yet.
func requireTracedApps(t *testing.T) {
	t.Helper()
	wired.once.Do(func() {
		env.Do(t, "ingestion", http.MethodGet, "/api/deliveryrequests/observability-probe", nil, nil)
		deadline := time.Now().Add(8 * time.Second)
		for time.Now().Before(deadline) {
			for _, s := range received.Spans() {
				if s.Service == "ingestion" && !s.Sidecar() {
					wired.ok = true
					return
				}
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
	if !wired.ok {
		t.Fatal("the apps export no spans: no span from the ingestion app within 8s")
	}
}

// scheduleTraced submits a delivery as part of a trace the test starts, by
// sending a traceparent of its own, and waits until it is scheduled. The
// delivery is canceled when the test ends, to free its drone.
func scheduleTraced(t *testing.T) (deliveryID, traceID, callerSpanID string) {
	t.Helper()
	traceID, callerSpanID = randomHex(t, 16), randomHex(t, 8)
	body := harness.DeliveryBody("contoso", "Seattle", "Bellevue", 2, "pkg-obs-"+randomHex(t, 4))
	deliveryID = env.Accepted(t, body, map[string]string{"traceparent": "00-" + traceID + "-" + callerSpanID + "-01"})
	t.Cleanup(func() {
		r := env.Do(t, "ingestion", http.MethodDelete, "/api/deliveryrequests/"+deliveryID, nil, nil)
		if r.Status != http.StatusAccepted {
			t.Errorf("cancel %s: %d %s", deliveryID, r.Status, r.Body)
		}
	})
	env.WaitStatus(t, deliveryID, 30*time.Second, "Scheduled")
	return deliveryID, traceID, callerSpanID
}

// treeProblems says what keeps spans from forming one tree whose top span's
// parent is top (a span of the test's own that is not exported): spans whose
// parent never arrived, and extra roots.
func treeProblems(spans []traceview.Span, top string) []string {
	ids := make(map[string]bool, len(spans))
	for _, s := range spans {
		if ids[s.SpanID] {
			return []string{"span id " + s.SpanID + " appears twice"}
		}
		ids[s.SpanID] = true
	}
	var problems []string
	tops := 0
	for _, s := range spans {
		switch {
		case s.ParentID == top:
			tops++
		case s.ParentID == "":
			problems = append(problems, fmt.Sprintf("%s %q is a second root", s.Who(), s.Name))
		case !ids[s.ParentID]:
			problems = append(problems, fmt.Sprintf("%s %q is an orphan: parent %s not received", s.Who(), s.Name, s.ParentID))
		}
	}
	if tops != 1 {
		problems = append(problems, fmt.Sprintf("%d spans hang off the caller's span %s, want 1", tops, top))
	}
	return problems
}

// timeline renders a trace for failure messages.
func timeline(spans []traceview.Span) string {
	var b bytes.Buffer
	traceview.Render(&b, spans)
	return b.String()
}

// stackLogLines returns the stack log's lines of app (not its sidecar) as
// parsed JSON, skipping lines that are not JSON.
func stackLogLines(t *testing.T, app string) []map[string]any {
	t.Helper()
	f, err := os.Open(env.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		name, line, ok := strings.Cut(sc.Text(), " | ")
		if !ok || strings.TrimSpace(name) != app {
			continue
		}
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil {
			out = append(out, m)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// rawMessage returns the newest message on topic whose bytes contain needle,
// as the broker holds it: the CloudEvent envelope the sidecar wrote.
func rawMessage(t *testing.T, topic, needle string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	switch env.Profile {
	case "local":
		nc, err := nats.Connect(env.Stack.NATSURL())
		if err != nil {
			t.Fatalf("connect to nats: %v", err)
		}
		defer nc.Close()
		js, err := nc.JetStream()
		if err != nil {
			t.Fatal(err)
		}
		info, err := js.StreamInfo(topic, nats.Context(ctx))
		if err != nil {
			t.Fatalf("stream %s: %v", topic, err)
		}
		for seq := info.State.LastSeq; seq >= info.State.FirstSeq && seq > 0; seq-- {
			m, err := js.GetMsg(topic, seq, nats.Context(ctx))
			if err == nil && bytes.Contains(m.Data, []byte(needle)) {
				return m.Data
			}
		}
	case "redis":
		c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", DB: env.Stack.RedisDB()})
		defer c.Close()
		msgs, err := c.XRevRangeN(ctx, topic, "+", "-", 1000).Result()
		if err != nil {
			t.Fatalf("xrevrange %s: %v", topic, err)
		}
		for _, m := range msgs {
			if data, _ := m.Values["data"].(string); strings.Contains(data, needle) {
				return []byte(data)
			}
		}
	default:
		t.Fatalf("no raw message access for profile %s", env.Profile)
	}
	t.Fatalf("no message on %s contains %q", topic, needle)
	return nil
}

// whoIn lists who recorded the spans, sorted and without repeats.
func whoIn(spans []traceview.Span) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Who())
	}
	slices.Sort(out)
	return slices.Compact(out)
}
