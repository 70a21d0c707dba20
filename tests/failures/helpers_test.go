package failures

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fabrikam/dronedelivery/tests/harness"
)

// inject adds a fault rule to app and removes every rule of app when the
// test ends.
func inject(t *testing.T, app string, rule map[string]any) {
	t.Helper()
	r := env.Do(t, app, http.MethodPut, "/admin/faults", rule, nil)
	if r.Status != http.StatusCreated {
		t.Fatalf("inject fault into %s: %d %s", app, r.Status, r.Body)
	}
	t.Cleanup(func() { clearFaults(t, app) })
}

func clearFaults(t *testing.T, app string) {
	if r := env.Do(t, app, http.MethodDelete, "/admin/faults", nil, nil); r.Status != http.StatusNoContent {
		t.Errorf("clear faults of %s: %d", app, r.Status)
	}
}

// calls returns how many requests app received per "METHOD route".
func calls(t *testing.T, app string) map[string]int {
	t.Helper()
	var body struct {
		Calls map[string]int `json:"calls"`
	}
	r := env.Do(t, app, http.MethodGet, "/admin/faults", nil, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("read calls of %s: %d", app, r.Status)
	}
	r.JSON(t, &body)
	return body.Calls
}

func body(owner, pickup, dropoff string, weight float64) map[string]any {
	return harness.DeliveryBody(owner, pickup, dropoff, weight, fmt.Sprintf("pkg-%d", time.Now().UnixNano()))
}

func packageID(b map[string]any) string {
	return b["packageInfo"].(map[string]any)["packageId"].(string)
}

type droneInfo struct {
	ID         string `json:"id"`
	AssignedTo string `json:"assignedTo"`
}

func dronesHeldBy(t *testing.T, id string) int {
	t.Helper()
	var ds []droneInfo
	r := env.Do(t, "drone", http.MethodGet, "/api/drones", nil, nil)
	r.JSON(t, &ds)
	n := 0
	for _, d := range ds {
		if d.AssignedTo == id {
			n++
		}
	}
	return n
}

func cancelDelivery(t *testing.T, id string) {
	env.Do(t, "ingestion", http.MethodDelete, "/api/deliveryrequests/"+id, nil, nil)
}

// sidecarMetric returns the lines of app's sidecar metrics that start with
// name.
func sidecarMetric(t *testing.T, app, name string) []string {
	t.Helper()
	resp, err := http.Get(env.Stack.App(app).MetricsURL())
	if err != nil {
		t.Fatalf("metrics of %s: %v", app, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, name) {
			out = append(out, l)
		}
	}
	return out
}

func jsonString(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}
