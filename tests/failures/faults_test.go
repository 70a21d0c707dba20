package failures

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestTransientPackageFaultIsRetried(t *testing.T) {
	b := body("contoso", "Seattle", "Kirkland", 2)
	pkg := packageID(b)
	inject(t, "package", map[string]any{"method": "PUT", "path": "/api/packages?id=" + pkg, "status": 503, "times": 2})
	before := calls(t, "package")["PUT /api/packages"]

	id := env.Accepted(t, b, nil)
	t.Cleanup(func() { cancelDelivery(t, id) })
	env.WaitStatus(t, id, 30*time.Second, "Scheduled")

	got := calls(t, "package")["PUT /api/packages"] - before
	t.Logf("package PUT reached the service %d times for one delivery (2 injected 503s)", got)
	if got != 3 {
		t.Errorf("package PUT received %d calls, want 3: two failures retried by the sidecar, then success", got)
	}
	var p struct{ DeliveryID string }
	r := env.Do(t, "package", http.MethodGet, "/api/packages/"+pkg, nil, nil)
	r.JSON(t, &p)
	if p.DeliveryID != id {
		t.Errorf("package belongs to %q, want %s", p.DeliveryID, id)
	}
}

func TestFailingDroneServiceIsCompensated(t *testing.T) {
	inject(t, "drone", map[string]any{"method": "PUT", "path": "/api/dronedeliveries", "status": 500, "times": -1})
	b := body("northwind", "Seattle", "Bellevue", 2)
	began := time.Now()
	id := env.Accepted(t, b, nil)

	s := env.WaitStatus(t, id, time.Minute, "Failed", "Scheduled", "Rejected", "Canceled")
	if s.Status != "Failed" || !strings.Contains(s.Reason, "drone") {
		t.Fatalf("status %s (%q), want Failed at the drone step", s.Status, s.Reason)
	}
	failedAfter := time.Since(began)
	var comp struct {
		Compensation string `json:"compensation"`
	}
	waitFor(t, time.Minute, func() (bool, string) {
		r := env.Do(t, "ingestion", http.MethodGet, "/api/deliveryrequests/"+id, nil, nil)
		r.JSON(t, &comp)
		return comp.Compensation == "compensated", "compensation " + comp.Compensation
	})
	t.Logf("drone failing: transaction failed %s after the request, compensated %s after that",
		failedAfter.Round(time.Millisecond), (time.Since(began) - failedAfter).Round(time.Millisecond))

	if c := env.Do(t, "package", http.MethodGet, "/api/packages/"+packageID(b), nil, nil).Status; c != http.StatusNotFound {
		t.Errorf("package not deleted: GET %d", c)
	}
	var tp struct{ Status string }
	env.Do(t, "thirdparty", http.MethodGet, "/api/thirdpartydeliveries/"+id, nil, nil).JSON(t, &tp)
	if tp.Status == "booked" {
		t.Errorf("carrier booking left booked")
	}
	if n := dronesHeldBy(t, id); n != 0 {
		t.Errorf("%d drones held by a failed delivery", n)
	}
	var rec struct {
		Status string
		Reason string
	}
	env.Do(t, "supervisor", http.MethodGet, "/api/compensations/"+id, nil, nil).JSON(t, &rec)
	if rec.Status != "compensated" || rec.Reason == "" {
		t.Errorf("supervisor record %+v", rec)
	}
	var list struct {
		Compensations []struct{ DeliveryID string } `json:"compensations"`
	}
	env.Do(t, "supervisor", http.MethodGet, "/api/compensations?status=compensated", nil, nil).JSON(t, &list)
	found := false
	for _, c := range list.Compensations {
		found = found || c.DeliveryID == id
	}
	if !found {
		t.Errorf("compensation of %s not listed", id)
	}
}

func TestSlowServiceTimesOut(t *testing.T) {
	// Registered first so it runs after the fault is cleared: the failures
	// open the account breaker, and the next test needs it closed again.
	t.Cleanup(func() { waitUntilScheduling(t) })
	// The backend timeout is 5s; the account answers after 20s.
	inject(t, "account", map[string]any{"method": "GET", "path": "/api/accounts", "latency": "20s", "times": -1})
	began := time.Now()
	id := env.Accepted(t, body("tailspin", "Seattle", "Renton", 2), nil)
	s := env.WaitStatus(t, id, 90*time.Second, "Failed", "Scheduled", "Rejected")
	took := time.Since(began)
	t.Logf("slow account: transaction ended %s after %s", s.Status, took.Round(time.Millisecond))
	if s.Status != "Failed" || !strings.Contains(s.Reason, "account") {
		t.Fatalf("status %s (%q), want Failed at the account step", s.Status, s.Reason)
	}
}

func TestBreakerCutsOffFailingDelivery(t *testing.T) {
	inject(t, "delivery", map[string]any{"method": "PUT", "path": "/api/deliveries", "status": 500, "times": -1})
	before := calls(t, "delivery")["PUT /api/deliveries"]

	// Four waves of requests: the first trips the breaker, the later ones
	// arrive while it is open.
	const waves, perWave = 4, 10
	const n = waves * perWave
	ids := make([]string, 0, n)
	began := time.Now()
	for w := range waves {
		if w > 0 {
			time.Sleep(1500 * time.Millisecond)
		}
		for range perWave {
			// Too heavy for drones: a carrier takes them, so the fleet's
			// size does not matter and every request reaches the delivery step.
			ids = append(ids, env.Accepted(t, body("fabrikam", "Seattle", "Bellevue", 30), nil))
		}
	}
	// Every request reaches the delivery step and fails there; with the
	// breaker open most of those calls never reach the service.
	waitFor(t, 2*time.Minute, func() (bool, string) {
		for _, line := range sidecarMetric(t, "scheduler", "dapr_resiliency_cb_state") {
			if strings.Contains(line, "delivery") && strings.Contains(line, `status="open"`) && strings.HasSuffix(line, " 1") {
				return true, ""
			}
		}
		return false, "delivery breaker not open yet"
	})
	openedAt := time.Now()
	t.Logf("delivery breaker open %s after the first failing request", openedAt.Sub(began).Round(time.Millisecond))
	for _, id := range ids {
		env.WaitStatus(t, id, 2*time.Minute, "Failed", "Scheduled")
	}
	reached := calls(t, "delivery")["PUT /api/deliveries"] - before
	// Without a breaker each transaction would make MAX_ATTEMPTS x 4 calls
	// (three sidecar retries each).
	attempted := n * 3 * 4
	t.Logf("delivery failing: %d calls reached it for %d transactions (%d without a breaker)", reached, n, attempted)
	if reached*3 > attempted {
		t.Errorf("%d of %d possible calls reached the failing service; the breaker should have cut most off", reached, attempted)
	}

	clearFaults(t, "delivery")
	// The breaker lets a probe through after its open timeout (10s); the
	// probe succeeds and it closes.
	waitUntilScheduling(t)
	waitFor(t, 30*time.Second, func() (bool, string) {
		var lines []string
		for _, line := range sidecarMetric(t, "scheduler", "dapr_resiliency_cb_state") {
			if strings.Contains(line, "app_delivery") {
				lines = append(lines, line)
				if strings.Contains(line, `status="closed"`) && strings.HasSuffix(line, " 1") {
					return true, ""
				}
			}
		}
		return false, fmt.Sprintf("delivery breaker not closed: %v", lines)
	})
	t.Logf("faults cleared; breaker closed and a new delivery scheduled %s after the breaker opened", time.Since(openedAt).Round(time.Millisecond))
	for _, id := range ids {
		var st struct{ Compensation string }
		waitFor(t, time.Minute, func() (bool, string) {
			env.Do(t, "ingestion", http.MethodGet, "/api/deliveryrequests/"+id, nil, nil).JSON(t, &st)
			return st.Compensation == "compensated", id + " compensation " + st.Compensation
		})
	}
}

func waitFor(t *testing.T, d time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", d, why)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitUntilScheduling submits deliveries until one is scheduled: after a
// fault, breakers need a successful probe (after their open timeout) before
// they let traffic through again.
func waitUntilScheduling(t *testing.T) {
	t.Helper()
	began := time.Now()
	waitFor(t, 90*time.Second, func() (bool, string) {
		id := env.Accepted(t, body("contoso", "Seattle", "Bellevue", 30), nil)
		s := env.WaitStatus(t, id, time.Minute, "Scheduled", "Failed", "Rejected", "Canceled")
		if s.Status == "Scheduled" {
			cancelDelivery(t, id)
			return true, ""
		}
		return false, "still failing: " + s.Reason
	})
	t.Logf("system scheduling again %s after the fault was cleared", time.Since(began).Round(time.Millisecond))
}
