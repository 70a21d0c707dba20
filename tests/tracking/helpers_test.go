package tracking

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fabrikam/dronedelivery/internal/geo"
	"github.com/fabrikam/dronedelivery/internal/messages"
	"github.com/fabrikam/dronedelivery/tests/harness"
)

// A delivery's whole life at the stack's time scale takes well under this.
const flightTimeout = 90 * time.Second

// request returns a delivery request from pickup to dropoff ("lat,lon") to
// be picked up at once.
func request(pickup, dropoff, confirmation string) map[string]any {
	return map[string]any{
		"ownerId":              "contoso",
		"pickupLocation":       pickup,
		"dropoffLocation":      dropoff,
		"pickupTime":           time.Now().UTC().Format(time.RFC3339),
		"expedited":            false,
		"confirmationRequired": confirmation,
		"packageInfo": map[string]any{
			"packageId": fmt.Sprintf("pkg-track-%d", time.Now().UnixNano()), "size": "Small", "weight": 2, "tag": "tracking",
		},
	}
}

// schedule submits a request and waits until it is scheduled with a drone.
func schedule(t testing.TB, body map[string]any) (id, drone string) {
	t.Helper()
	id = env.Accepted(t, body, nil)
	s := env.WaitStatus(t, id, 30*time.Second, "Scheduled")
	if s.Schedule == nil || s.Schedule.DroneID == "" {
		t.Fatalf("delivery %s scheduled without a drone: %+v", id, s.Schedule)
	}
	return id, s.Schedule.DroneID
}

// status is the public status of a delivery.
type status struct {
	ID                string                 `json:"id"`
	Stage             string                 `json:"stage"`
	Reason            string                 `json:"reason"`
	DroneID           string                 `json:"droneId"`
	LastKnownLocation *geo.Location          `json:"lastKnownLocation"`
	PickupETA         *time.Time             `json:"pickupEta"`
	DeliveryETA       *time.Time             `json:"deliveryEta"`
	Confirmation      *messages.Confirmation `json:"confirmation"`
	LastReportAt      *time.Time             `json:"lastReportAt"`
	UpdatedAt         time.Time              `json:"updatedAt"`
}

func getStatus(t testing.TB, id string) status {
	t.Helper()
	r := env.Do(t, "delivery", http.MethodGet, "/api/deliveries/"+id+"/status", nil, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("GET status of %s: %d %s", id, r.Status, r.Body)
	}
	var s status
	r.JSON(t, &s)
	return s
}

// waitStage polls the status until the delivery reaches stage.
func waitStage(t testing.TB, id, stage string, timeout time.Duration) status {
	t.Helper()
	var s status
	harness.Eventually(t, timeout, func() (bool, string) {
		s = getStatus(t, id)
		return s.Stage == stage, fmt.Sprintf("delivery %s is %s, want %s", id, s.Stage, stage)
	})
	return s
}

// historyEvent is one entry of a delivery's history.
type historyEvent struct {
	EventID      string                 `json:"eventId"`
	Type         string                 `json:"type"`
	Sequence     int                    `json:"sequence"`
	Stage        string                 `json:"stage"`
	At           time.Time              `json:"at"`
	Confirmation *messages.Confirmation `json:"confirmation"`
}

type history struct {
	DeliveryID string         `json:"deliveryId"`
	Complete   bool           `json:"complete"`
	Events     []historyEvent `json:"events"`
}

func getHistory(t testing.TB, id string) (history, int) {
	t.Helper()
	r := env.Do(t, "deliveryhistory", http.MethodGet, "/api/deliveries/"+id+"/history", nil, nil)
	var h history
	if r.Status == http.StatusOK {
		r.JSON(t, &h)
	}
	return h, r.Status
}

// waitHistory waits until the history of id holds exactly stages, complete.
func waitHistory(t testing.TB, id string, timeout time.Duration, stages ...string) history {
	t.Helper()
	var h history
	harness.Eventually(t, timeout, func() (bool, string) {
		var code int
		h, code = getHistory(t, id)
		got := historyStages(h)
		return code == http.StatusOK && h.Complete && slices.Equal(got, stages),
			fmt.Sprintf("history of %s: %d %v (complete %v), want %v", id, code, got, h.Complete, stages)
	})
	return h
}

func historyStages(h history) []string {
	out := make([]string, len(h.Events))
	for i, e := range h.Events {
		out[i] = e.Stage
	}
	return out
}

// publishedStages lists the stages of the delivery events published for id
// as the broker holds them, copies included.
func publishedStages(t testing.TB, id string) []string {
	t.Helper()
	var out []string
	for _, raw := range env.Messages(t, messages.TopicDeliveryEvents, `"deliveryId":"`+id+`"`) {
		var ce struct {
			ID   string                 `json:"id"`
			Type string                 `json:"type"`
			Data messages.DeliveryEvent `json:"data"`
		}
		if err := json.Unmarshal(raw, &ce); err != nil {
			t.Fatalf("decode delivery event %s: %v", raw, err)
		}
		if want := messages.DeliveryEventID(id, ce.Data.Sequence, ce.Data.Stage); ce.ID != want {
			t.Errorf("delivery event id %q, want %q", ce.ID, want)
		}
		out = append(out, ce.Data.Stage)
	}
	return out
}

// droneInfo is a drone as the drone service lists it.
type droneInfo struct {
	ID         string       `json:"id"`
	Base       geo.Location `json:"base"`
	AssignedTo string       `json:"assignedTo"`
	Seq        uint64       `json:"seq"`
	Flight     *struct {
		DeliveryID string       `json:"deliveryId"`
		Phase      string       `json:"phase"`
		Aborted    bool         `json:"aborted"`
		Position   geo.Location `json:"position"`
	} `json:"flight"`
}

func getDrone(t testing.TB, id string) droneInfo {
	t.Helper()
	r := env.Do(t, "drone", http.MethodGet, "/api/drones", nil, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("GET /api/drones: %d %s", r.Status, r.Body)
	}
	var ds []droneInfo
	r.JSON(t, &ds)
	for _, d := range ds {
		if d.ID == id {
			return d
		}
	}
	t.Fatalf("no drone %s", id)
	return droneInfo{}
}

// waitDroneFree waits until drone is back on the ground and free.
func waitDroneFree(t testing.TB, drone string, timeout time.Duration) droneInfo {
	t.Helper()
	var d droneInfo
	harness.Eventually(t, timeout, func() (bool, string) {
		d = getDrone(t, drone)
		return d.AssignedTo == "" && d.Flight == nil, fmt.Sprintf("drone %s assigned to %q, flight %+v", drone, d.AssignedTo, d.Flight)
	})
	return d
}

// flightStages are the stages of a delivery flown to completion.
var flightStages = []string{
	messages.StageCreated, messages.StageHeadedToPickup, messages.StageHeadedToDropoff, messages.StageCompleted,
}

func countOf(ss []string, s string) int {
	n := 0
	for _, x := range ss {
		if x == s {
			n++
		}
	}
	return n
}

func join(ss []string) string { return strings.Join(ss, " → ") }
