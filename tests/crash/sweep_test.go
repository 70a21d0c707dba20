package crash

import (
	"net/http"
	"testing"
	"time"

	"github.com/fabrikam/dronedelivery/tests/harness"
)

// TestSweepFinishesAbandonedTransaction leaves a transaction in progress by
// killing the scheduler and its sidecar while the drone step hangs, so the
// broker will not redeliver the message for another ackWait (90s). The
// supervisor's sweep must find it and have it finished well before that.
func TestSweepFinishesAbandonedTransaction(t *testing.T) {
	r := env.Do(t, "drone", http.MethodPut, "/admin/faults",
		map[string]any{"method": "PUT", "path": "/api/dronedeliveries", "latency": "30s", "times": -1}, nil)
	if r.Status != http.StatusCreated {
		t.Fatalf("inject: %d %s", r.Status, r.Body)
	}
	b := harness.DeliveryBody("fabrikam", "Seattle", "Redmond", 2, "pkg-sweep-"+time.Now().Format("150405.000"))
	id := env.Accepted(t, b, nil)
	harness.Eventually(t, 30*time.Second, func() (bool, string) {
		var tx struct{ Status, Step string }
		r := env.Do(t, "scheduler", http.MethodGet, "/api/transactions/"+id, nil, nil)
		if r.Status == http.StatusOK {
			r.JSON(t, &tx)
		}
		return tx.Step == "drone", "transaction not at the drone step yet: " + tx.Step
	})
	env.Stack.Kill("scheduler", false)
	env.Stack.Kill("scheduler", true)
	env.Do(t, "drone", http.MethodDelete, "/admin/faults", nil, nil)
	abandoned := time.Now()
	// The app first: a sidecar started before its app waits for the app port.
	restart(t, "scheduler", false)
	restart(t, "scheduler", true)

	s := env.WaitStatus(t, id, 60*time.Second, "Scheduled", "Failed", "Rejected")
	took := time.Since(abandoned)
	t.Logf("abandoned transaction ended %s %s after the crash", s.Status, took.Round(time.Millisecond))
	if took > 60*time.Second {
		t.Errorf("finished only after %s: that is the broker's redelivery, not the sweep", took)
	}
	if s.Status != "Scheduled" {
		var st struct{ Compensation string }
		harness.Eventually(t, time.Minute, func() (bool, string) {
			env.Do(t, "ingestion", http.MethodGet, "/api/deliveryrequests/"+id, nil, nil).JSON(t, &st)
			return st.Compensation == "compensated", "not compensated: " + st.Compensation
		})
	}
}
