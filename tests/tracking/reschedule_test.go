package tracking

import (
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/fabrikam/dronedelivery/internal/messages"
	"github.com/fabrikam/dronedelivery/tests/harness"
)

// TestRescheduleBeforeTakeOffNotAfter moves a delivery's pickup time from
// later to now, which sends its drone off, and then tries to move it again
// while the drone flies, which is refused.
func TestRescheduleBeforeTakeOffNotAfter(t *testing.T) {
	b := request("47.600,-122.300", "47.650,-122.220", "None")
	b["pickupTime"] = time.Now().Add(30 * time.Minute).UTC().Format(time.RFC3339)
	id, drone := schedule(t, b)
	if d := getDrone(t, drone); d.Flight == nil || d.Flight.Phase != "planned" {
		t.Fatalf("drone %s: %+v, want a planned flight", drone, d.Flight)
	}

	now := time.Now().UTC().Truncate(time.Second)
	reschedule(t, id, now)
	waitStage(t, id, messages.StageHeadedToDropoff, flightTimeout)

	// In the air: the reschedule is refused and the schedule stays.
	reschedule(t, id, now.Add(time.Hour))
	s, _ := env.Status(t, id)
	if s.Status != "Scheduled" || s.Schedule == nil || !s.Schedule.PickupTime.Equal(now) || s.Schedule.DroneID != drone {
		t.Errorf("after a reschedule in flight: %s %+v, want still scheduled at %s with %s", s.Status, s.Schedule, now, drone)
	}

	waitStage(t, id, messages.StageCompleted, flightTimeout)
	want := []string{messages.StageCreated, messages.StageRescheduled, messages.StageHeadedToPickup,
		messages.StageHeadedToDropoff, messages.StageCompleted}
	waitHistory(t, id, 30*time.Second, want...)
	if got := publishedStages(t, id); !slices.Equal(got, want) {
		t.Errorf("delivery events published: %s, want %s", join(got), join(want))
	}
	waitDroneFree(t, drone, flightTimeout)
}

// reschedule asks for a new pickup time and waits until the scheduler has
// handled the request, whatever it decided.
func reschedule(t *testing.T, id string, pickup time.Time) {
	t.Helper()
	r := env.Do(t, "ingestion", http.MethodPatch, "/api/deliveryrequests/"+id,
		map[string]any{"pickupTime": pickup.Format(time.RFC3339)}, nil)
	if r.Status != http.StatusAccepted {
		t.Fatalf("reschedule %s: %d %s", id, r.Status, r.Body)
	}
	marker := env.StreamEnd(t, messages.TopicDeliveryRequests)
	env.WaitConsumed(t, messages.TopicDeliveryRequests, "scheduler", marker, 30*time.Second)
	harness.Eventually(t, 5*time.Second, func() (bool, string) {
		s, _ := env.Status(t, id)
		return s.Status != "InProgress", fmt.Sprintf("status %s", s.Status)
	})
}
