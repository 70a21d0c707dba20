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
	if s := reschedule(t, id, now); s.LastReschedule.Refused != "" || s.Schedule == nil || !s.Schedule.PickupTime.Equal(now) {
		t.Errorf("after a reschedule before take-off: %+v, schedule %+v; want it applied", s.LastReschedule, s.Schedule)
	}
	waitStage(t, id, messages.StageHeadedToDropoff, flightTimeout)

	// In the air: the reschedule is refused, the status says why, and the
	// schedule stays.
	s := reschedule(t, id, now.Add(time.Hour))
	if s.LastReschedule.Refused == "" {
		t.Errorf("a reschedule in flight shows no refusal: %+v", s.LastReschedule)
	}
	if s.Status != "Scheduled" || s.Schedule == nil || !s.Schedule.PickupTime.Equal(now) || s.Schedule.DroneID != drone {
		t.Errorf("after a reschedule in flight: %s %+v, want still scheduled at %s with %s", s.Status, s.Schedule, now, drone)
	}
	t.Logf("reschedule in flight refused: %s", s.LastReschedule.Refused)

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
// handled the request, whatever it decided: the status's last reschedule is
// this one.
func reschedule(t *testing.T, id string, pickup time.Time) harness.RequestStatus {
	t.Helper()
	r := env.Do(t, "ingestion", http.MethodPatch, "/api/deliveryrequests/"+id,
		map[string]any{"pickupTime": pickup.Format(time.RFC3339)}, nil)
	if r.Status != http.StatusAccepted {
		t.Fatalf("reschedule %s: %d %s", id, r.Status, r.Body)
	}
	var asked messages.DeliveryRescheduled
	r.JSON(t, &asked)
	var s harness.RequestStatus
	harness.Eventually(t, 30*time.Second, func() (bool, string) {
		s, _ = env.Status(t, id)
		lr := s.LastReschedule
		return lr != nil && !lr.RequestedAt.Before(asked.RequestedAt), fmt.Sprintf("last reschedule %+v", lr)
	})
	return s
}
