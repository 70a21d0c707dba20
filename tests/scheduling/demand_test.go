package scheduling

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fabrikam/dronedelivery/tests/harness"
)

// TestDemandBeyondTheFleet sends more concurrent requests than there are
// drones: every request must end, none may share a drone, none may be lost.
func TestDemandBeyondTheFleet(t *testing.T) {
	const n = 300
	free := 0
	for _, d := range drones(t) {
		if d.AssignedTo == "" {
			free++
		}
	}
	if free >= n {
		t.Fatalf("fleet has %d free drones; the test needs fewer than %d", free, n)
	}

	ids := make([]string, n)
	var mu sync.Mutex
	var failures []string
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	began := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			b := harness.DeliveryBody("fabrikam", "Seattle", "Bellevue", 2, fmt.Sprintf("pkg-demand-%d-%d", i, began.UnixNano()))
			id, err := post(b)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failures = append(failures, err.Error())
				return
			}
			ids[i] = id
		}()
	}
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d requests not accepted, e.g. %s", len(failures), failures[0])
	}

	final := map[string]harness.RequestStatus{}
	harness.Eventually(t, 3*time.Minute, func() (bool, string) {
		pending := 0
		for _, id := range ids {
			if _, done := final[id]; done {
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
		return pending == 0, fmt.Sprintf("%d of %d requests not ended yet", pending, n)
	})
	elapsed := time.Since(began)

	var scheduled []string
	outcomes := map[string]int{}
	byDrone := map[string][]string{}
	for id, s := range final {
		outcomes[s.Status]++
		switch s.Status {
		case "Scheduled":
			scheduled = append(scheduled, id)
			byDrone[s.Schedule.DroneID] = append(byDrone[s.Schedule.DroneID], id)
		case "Rejected":
			if !strings.Contains(s.Reason, "no drone") {
				t.Errorf("%s rejected for %q, want no drone available", id, s.Reason)
			}
		default:
			t.Errorf("%s ended %s: %s", id, s.Status, s.Reason)
		}
	}
	t.Logf("%d requests against %d free drones ended in %s: %v", n, free, elapsed.Round(time.Millisecond), outcomes)
	if len(scheduled) != free {
		t.Errorf("%d scheduled, want every one of the %d free drones used", len(scheduled), free)
	}
	for d, held := range byDrone {
		if len(held) > 1 {
			t.Errorf("drone %s given to %d deliveries: %v", d, len(held), held)
		}
	}
	holders := map[string]int{}
	for _, d := range drones(t) {
		if d.AssignedTo != "" {
			holders[d.AssignedTo]++
		}
	}
	for id, k := range holders {
		if k > 1 {
			t.Errorf("delivery %s holds %d drones", id, k)
		}
		if s, ours := final[id]; ours && s.Status != "Scheduled" {
			t.Errorf("%s ended %s but holds a drone", id, s.Status)
		}
	}

	// Free the fleet for whatever runs next.
	sort.Strings(scheduled)
	for _, id := range scheduled {
		if r := env.Do(t, "ingestion", http.MethodDelete, "/api/deliveryrequests/"+id, nil, nil); r.Status != http.StatusAccepted {
			t.Errorf("cancel %s: %d", id, r.Status)
		}
	}
	for _, id := range scheduled {
		env.WaitStatus(t, id, time.Minute, "Canceled")
	}
}
