package crash

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fabrikam/dronedelivery/internal/telemetry/telemetrytest"
	"github.com/fabrikam/dronedelivery/tests/harness"
)

var httpClient = &http.Client{Timeout: 30 * time.Second}

func TestKillSchedulerMidStream(t *testing.T) {
	crashMidStream(t, func(t *testing.T) {
		env.Stack.Kill("scheduler", false)
		time.Sleep(time.Second) // stay down while requests keep arriving
		restart(t, "scheduler", false)
	})
}

// TestKillSchedulerSidecarMidStream loses messages on the local profile:
// pubsub.jetstream in "parallel" mode acknowledges each message when it hands
// it to a goroutine, before the app has seen it, so the messages in flight in
// the killed sidecar are gone from the broker. Ingestion's redrive publishes
// them again; the test proves every request still ends.
func TestKillSchedulerSidecarMidStream(t *testing.T) {
	crashMidStream(t, func(t *testing.T) {
		env.Stack.Kill("scheduler", true)
		time.Sleep(time.Second)
		restart(t, "scheduler", true)
	})
}

func restart(t *testing.T, app string, sidecar bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := env.Stack.Restart(ctx, app, sidecar); err != nil {
		t.Fatalf("restart %s (sidecar %v): %v", app, sidecar, err)
	}
}

// crashMidStream sends 300 requests, runs crash after the first 100 are
// accepted, and checks every accepted request ends once: one drone, one
// package, none held by a delivery that did not end scheduled.
func crashMidStream(t *testing.T, crash func(*testing.T)) {
	const n = 300
	ids := make([]string, n)
	pkgs := make([]string, n)
	var accepted atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 16)
	began := time.Now()
	crashed := make(chan struct{})
	go func() {
		for accepted.Load() < 100 {
			time.Sleep(10 * time.Millisecond)
		}
		crash(t)
		close(crashed)
	}()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			pkgs[i] = fmt.Sprintf("pkg-%s-%d-%d", t.Name(), i, began.UnixNano())
			b := harness.DeliveryBody("contoso", "Seattle", "Bellevue", 2, pkgs[i])
			id, err := post(b)
			if err != nil {
				errs <- err
				return
			}
			ids[i] = id
			accepted.Add(1)
		}()
	}
	wg.Wait()
	<-crashed
	close(errs)
	for err := range errs {
		// Ingestion never went down, so every request must be accepted.
		t.Errorf("request not accepted: %v", err)
	}
	if t.Failed() {
		t.FailNow()
	}

	final := map[string]harness.RequestStatus{}
	harness.Eventually(t, 4*time.Minute, func() (bool, string) {
		pending := 0
		for _, id := range ids {
			if _, ok := final[id]; ok {
				continue
			}
			s, _ := env.Status(t, id)
			switch s.Status {
			case "Scheduled", "Rejected", "Failed", "Canceled":
				final[id] = s
			default:
				pending++
			}
		}
		return pending == 0, fmt.Sprintf("%d of %d not ended", pending, n)
	})
	outcomes := map[string]int{}
	for _, s := range final {
		outcomes[s.Status]++
	}
	t.Logf("%d requests with a crash after the 100th: all ended after %s: %v; %v redriven by ingestion so far in this stack",
		n, time.Since(began).Round(time.Millisecond), outcomes, redriven(t))

	var drones []struct {
		ID         string `json:"id"`
		AssignedTo string `json:"assignedTo"`
	}
	env.Do(t, "drone", http.MethodGet, "/api/drones", nil, nil).JSON(t, &drones)
	held := map[string]int{}
	for _, d := range drones {
		if d.AssignedTo != "" {
			held[d.AssignedTo]++
		}
	}
	for i, id := range ids {
		s := final[id]
		switch {
		case s.Status == "Scheduled" && held[id] != 1:
			t.Errorf("scheduled %s holds %d drones, want 1", id, held[id])
		case s.Status != "Scheduled" && held[id] != 0:
			t.Errorf("%s ended %s but holds %d drones", id, s.Status, held[id])
		}
		r := env.Do(t, "package", http.MethodGet, "/api/packages/"+pkgs[i], nil, nil)
		var p struct{ DeliveryID string }
		if r.Status == http.StatusOK {
			r.JSON(t, &p)
		}
		switch {
		case s.Status == "Scheduled" && p.DeliveryID != id:
			t.Errorf("scheduled %s has no package (GET %d)", id, r.Status)
		case s.Status != "Scheduled" && r.Status == http.StatusOK:
			t.Errorf("%s ended %s but its package remains", id, s.Status)
		}
	}
}

func post(body any) (string, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return "", err
	}
	resp, err := httpClient.Post(env.Stack.App("ingestion").URL()+"/api/deliveryrequests", "application/json", bytes.NewReader(b))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted {
		return "", fmt.Errorf("%d %s", resp.StatusCode, rb)
	}
	var got struct {
		DeliveryID string `json:"deliveryId"`
	}
	return got.DeliveryID, json.Unmarshal(rb, &got)
}

// redriven reads ingestion's count of messages it published again because
// the scheduler never saw them.
func redriven(t *testing.T) float64 {
	m, err := telemetrytest.Scrape(t.Context(), env.Stack.App("ingestion").URL()+"/metrics")
	if err != nil {
		t.Logf("scrape ingestion metrics: %v", err)
		return -1
	}
	v, _ := m.Value("deliveries_redriven_total", nil)
	return v
}
