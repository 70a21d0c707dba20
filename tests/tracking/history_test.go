package tracking

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/fabrikam/dronedelivery/internal/messages"
)

// TestHistoryCatchesUpAfterOutage stops the history service while deliveries
// are scheduled, flown and completed: nothing else notices, and once it is
// back it catches up on every event it missed.
func TestHistoryCatchesUpAfterOutage(t *testing.T) {
	env.Stack.StopProcess("deliveryhistory", false)
	stoppedAt := time.Now()
	restarted := false
	restart := func() {
		if restarted {
			return
		}
		restarted = true
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := env.Stack.Restart(ctx, "deliveryhistory", false); err != nil {
			t.Fatalf("restart deliveryhistory: %v", err)
		}
	}
	// Whatever happens, later tests get their history service back.
	t.Cleanup(restart)

	const n = 3
	ids := make([]string, n)
	for i := range ids {
		dropoff := fmt.Sprintf("47.%03d,-122.200", 620+20*i)
		ids[i], _ = schedule(t, request("47.600,-122.300", dropoff, "Voice"))
	}
	for _, id := range ids {
		s := waitStage(t, id, messages.StageCompleted, flightTimeout)
		if s.Confirmation == nil || s.Confirmation.Type != "Voice" {
			t.Errorf("delivery %s completed with confirmation %+v, want Voice", id, s.Confirmation)
		}
		if got := publishedStages(t, id); len(got) != len(flightStages) {
			t.Errorf("delivery %s published %s while the history was down, want %s", id, join(got), join(flightStages))
		}
	}

	restart()
	t.Logf("history service down for %s", time.Since(stoppedAt).Round(time.Millisecond))
	for _, id := range ids {
		waitHistory(t, id, 60*time.Second, flightStages...)
	}
}
