package scheduling

import (
	"net/http"
	"testing"
	"time"

	"github.com/fabrikam/dronedelivery/internal/messages"
)

func TestRedeliveredRequestIsNotRepeated(t *testing.T) {
	id, s := schedule(t, body("northwind", "Seattle", "Redmond", 2))
	before, _ := env.Status(t, id)

	marker := env.Republish(t, messages.TopicDeliveryRequests, id, messages.TypeDeliveryRequested)
	env.WaitConsumed(t, messages.TopicDeliveryRequests, "scheduler", marker, 30*time.Second)

	after, _ := env.Status(t, id)
	if after.Status != "Scheduled" || after.Schedule.DroneID != s.Schedule.DroneID {
		t.Fatalf("after the duplicate: %s with drone %s, want Scheduled with %s", after.Status, after.Schedule.DroneID, s.Schedule.DroneID)
	}
	if !after.Schedule.PickupETA.Equal(*before.Schedule.PickupETA) {
		t.Errorf("the duplicate changed the schedule")
	}
	if n := dronesHeldBy(t, id); n != 1 {
		t.Errorf("%d drones held by the delivery after a duplicate, want 1", n)
	}
	var d struct{ CreatedAt, UpdatedAt time.Time }
	getJSON(t, "delivery", "/api/deliveries/"+id, &d)
	if !d.CreatedAt.Equal(d.UpdatedAt) {
		t.Errorf("the duplicate rewrote the delivery record (created %s, updated %s)", d.CreatedAt, d.UpdatedAt)
	}
}

func TestIdempotencyKey(t *testing.T) {
	b := body("contoso", "Seattle", "Kirkland", 1.5)
	key := "e2e-" + time.Now().Format("150405.000000000")
	before := env.MessageCount(t, messages.TopicDeliveryRequests)

	first := env.Accepted(t, b, map[string]string{"Idempotency-Key": key})
	t.Cleanup(func() { cancelDelivery(t, first) })
	second := env.Accepted(t, b, map[string]string{"Idempotency-Key": key})
	if first != second {
		t.Fatalf("same key and body gave deliveries %s and %s", first, second)
	}
	env.WaitStatus(t, first, 30*time.Second, "Scheduled")
	if got := env.MessageCount(t, messages.TopicDeliveryRequests) - before; got != 1 {
		t.Errorf("%d messages published for one idempotent request, want 1", got)
	}
	if n := dronesHeldBy(t, first); n != 1 {
		t.Errorf("%d drones held, want 1", n)
	}

	other := body("contoso", "Seattle", "Kirkland", 9)
	r := env.Do(t, "ingestion", http.MethodPost, "/api/deliveryrequests", other, map[string]string{"Idempotency-Key": key})
	if r.Status != http.StatusUnprocessableEntity {
		t.Fatalf("same key, other body: %d %s, want 422", r.Status, r.Body)
	}
	if got := env.MessageCount(t, messages.TopicDeliveryRequests) - before; got != 1 {
		t.Errorf("the refused request published a message")
	}
}
