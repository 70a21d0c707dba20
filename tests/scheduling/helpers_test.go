package scheduling

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/fabrikam/dronedelivery/tests/harness"
)

type droneInfo struct {
	ID         string `json:"id"`
	AssignedTo string `json:"assignedTo"`
}

func drones(t *testing.T) []droneInfo {
	t.Helper()
	r := env.Do(t, "drone", http.MethodGet, "/api/drones", nil, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("GET /api/drones: %d %s", r.Status, r.Body)
	}
	var ds []droneInfo
	r.JSON(t, &ds)
	return ds
}

// dronesHeldBy counts the drones whose assignedTo is id.
func dronesHeldBy(t *testing.T, id string) int {
	n := 0
	for _, d := range drones(t) {
		if d.AssignedTo == id {
			n++
		}
	}
	return n
}

func getStatus(t *testing.T, app, path string) int {
	t.Helper()
	return env.Do(t, app, http.MethodGet, path, nil, nil).Status
}

func getJSON(t *testing.T, app, path string, v any) {
	t.Helper()
	r := env.Do(t, app, http.MethodGet, path, nil, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("GET %s%s: %d %s", app, path, r.Status, r.Body)
	}
	r.JSON(t, v)
}

// schedule submits a request and waits until it is scheduled; the delivery
// is canceled when the test ends so its drone is free for the next test.
func schedule(t *testing.T, body map[string]any) (string, harness.RequestStatus) {
	t.Helper()
	id := env.Accepted(t, body, nil)
	t.Cleanup(func() { cancelDelivery(t, id) })
	return id, env.WaitStatus(t, id, 30*time.Second, "Scheduled")
}

func cancelDelivery(t *testing.T, id string) {
	r := env.Do(t, "ingestion", http.MethodDelete, "/api/deliveryrequests/"+id, nil, nil)
	if r.Status != http.StatusAccepted {
		t.Errorf("cancel %s: %d %s", id, r.Status, r.Body)
		return
	}
	env.WaitStatus(t, id, 30*time.Second, "Canceled", "Rejected", "Failed")
}

func body(owner, pickup, dropoff string, weight float64) map[string]any {
	return harness.DeliveryBody(owner, pickup, dropoff, weight, fmt.Sprintf("pkg-%d", time.Now().UnixNano()))
}

func packageID(b map[string]any) string {
	return b["packageInfo"].(map[string]any)["packageId"].(string)
}
