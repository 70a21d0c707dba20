package tracking

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/fabrikam/dronedelivery/internal/messages"
	"github.com/fabrikam/dronedelivery/tests/harness"
)

// TestFiftyDronesInFlight measures the drone-status event rate with 50
// drones in the air at the stack's tick, and how far each delivery's status
// trails its drone: the time from a report's timestamp to the delivery
// service applying it. It takes a minute; -short skips it.
func TestFiftyDronesInFlight(t *testing.T) {
	if testing.Short() {
		t.Skip("50 simultaneous flights take a minute")
	}
	const n = 50
	tickDur, _ := time.ParseDuration(tick)

	// Long flights from spread-out pickups, so all fifty are in the air
	// together for a good while. They all take off together, 20s from now
	// (a minute before the pickup time): the measurement is of fifty drones
	// flying, not of scheduling while drones already fly.
	takeOff := time.Now().Add(20 * time.Second)
	pickupTime := takeOff.Add(time.Minute).UTC().Format(time.RFC3339)
	ids := make([]string, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed []string
	sem := make(chan struct{}, 8)
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			lat, lon := 47.52+float64(i%10)*0.02, -122.38+float64(i/10)*0.05
			b := request(fmt.Sprintf("%.3f,%.3f", lat, lon), fmt.Sprintf("%.3f,%.3f", lat+0.12, lon+0.08), "None")
			b["pickupTime"] = pickupTime
			id, err := post(b)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed = append(failed, err.Error())
				return
			}
			ids[i] = id
		})
	}
	wg.Wait()
	if len(failed) > 0 {
		t.Fatalf("%d requests refused, e.g. %s", len(failed), failed[0])
	}
	flying := func() int {
		r := env.Do(t, "drone", http.MethodGet, "/api/drones", nil, nil)
		var ds []droneInfo
		r.JSON(t, &ds)
		k := 0
		for _, d := range ds {
			if d.Flight != nil && d.Flight.Phase != "planned" {
				k++
			}
		}
		return k
	}
	for _, id := range ids {
		env.WaitStatus(t, id, 60*time.Second, "Scheduled")
	}
	if d := time.Until(takeOff); d > 0 {
		t.Logf("all %d scheduled; take-off in %s", n, d.Round(time.Millisecond))
	} else {
		t.Logf("all %d scheduled %s after the take-off time", n, (-d).Round(time.Millisecond))
	}
	harness.Eventually(t, 60*time.Second, func() (bool, string) {
		k := flying()
		return k >= n, fmt.Sprintf("%d drones in the air, want %d", k, n)
	})

	// The measurement window: every drone in the air all along.
	const window = 8 * time.Second
	startCount := env.MessageCount(t, messages.TopicDroneStatus)
	start := time.Now()
	var lags, ages []time.Duration
	seen := map[string]time.Time{}
	for time.Since(start) < window {
		for _, id := range ids {
			s := getStatus(t, id)
			if s.LastReportAt == nil {
				continue
			}
			// How old the position the client sees is: the lag plus up to
			// TRACKING_MIN_INTERVAL (1s) of reports skipped on purpose.
			ages = append(ages, time.Since(*s.LastReportAt))
			if seen[id].Equal(*s.LastReportAt) {
				continue
			}
			seen[id] = *s.LastReportAt
			lags = append(lags, s.UpdatedAt.Sub(*s.LastReportAt))
		}
	}
	elapsed := time.Since(start)
	events := env.MessageCount(t, messages.TopicDroneStatus) - startCount
	stillFlying := flying()
	rate := float64(events) / elapsed.Seconds()
	nominal := float64(n) / tickDur.Seconds()
	slices.Sort(lags)
	slices.Sort(ages)
	pctOf := func(ds []time.Duration, p float64) time.Duration {
		if len(ds) == 0 {
			return 0
		}
		return ds[min(len(ds)-1, int(float64(len(ds))*p))].Round(time.Millisecond)
	}
	pct := func(p float64) time.Duration { return pctOf(lags, p) }
	t.Logf("%s profile, %d drones in flight, tick %s: %d drone-status events in %s = %.0f events/s (nominal %.0f/s); %d still flying at the end",
		env.Profile, n, tick, events, elapsed.Round(time.Millisecond), rate, nominal, stillFlying)
	t.Logf("lag from drone report to delivery status over %d sampled reports: p50 %s, p90 %s, p99 %s, max %s",
		len(lags), pct(0.5), pct(0.9), pct(0.99), pct(1))
	t.Logf("age of the position a status shows over %d reads: p50 %s, p90 %s, p99 %s, max %s",
		len(ages), pctOf(ages, 0.5), pctOf(ages, 0.9), pctOf(ages, 0.99), pctOf(ages, 1))
	if stillFlying < n {
		t.Logf("some flights ended inside the window; the rate is a lower bound")
	}
	if rate < nominal/2 {
		t.Errorf("%.0f events/s, less than half the nominal %.0f: the drone service cannot keep its tick", rate, nominal)
	}
	if len(lags) == 0 || pct(0.5) > 5*time.Second {
		t.Errorf("median lag %s: the delivery service does not keep up", pct(0.5))
	}

	// Let the fleet come home so the stack is left as found.
	for _, id := range ids {
		waitStage(t, id, messages.StageCompleted, 3*time.Minute)
	}
	harness.Eventually(t, 3*time.Minute, func() (bool, string) {
		k := flying()
		return k == 0, fmt.Sprintf("%d drones still in the air", k)
	})
}

var httpClient = &http.Client{Timeout: 30 * time.Second}

// post submits a delivery request from any goroutine and returns its id.
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
	if err := json.Unmarshal(rb, &got); err != nil {
		return "", err
	}
	return got.DeliveryID, nil
}
