package tracking

import (
	"context"
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

func TestDeliveryFliesToCompletion(t *testing.T) {
	body := request("47.600,-122.300", "47.660,-122.190", "FingerPrint")
	id, drone := schedule(t, body)

	// While the drone carries the package, the time left to the drop-off
	// shrinks as it approaches (measured from each report's own time).
	var left []time.Duration
	deadline := time.Now().Add(flightTimeout)
	for time.Now().Before(deadline) {
		s := getStatus(t, id)
		if s.Stage == messages.StageCompleted {
			break
		}
		if s.Stage == messages.StageHeadedToDropoff && s.DeliveryETA != nil && s.LastReportAt != nil {
			d := s.DeliveryETA.Sub(*s.LastReportAt)
			if len(left) == 0 || d != left[len(left)-1] {
				left = append(left, d)
			}
		}
		time.Sleep(150 * time.Millisecond)
	}
	t.Logf("time left to the drop-off, report by report: %v", left)
	if len(left) < 3 {
		t.Fatalf("saw %d distinct ETAs on the way to the drop-off, want at least 3: %v", len(left), left)
	}
	for i := 1; i < len(left); i++ {
		if left[i] >= left[i-1] {
			t.Errorf("time to drop-off grew from %s to %s: %v", left[i-1], left[i], left)
		}
	}

	s := waitStage(t, id, messages.StageCompleted, flightTimeout)
	if s.Confirmation == nil || s.Confirmation.Type != "FingerPrint" || s.Confirmation.Reference == "" {
		t.Errorf("completed status confirmation %+v, want a recorded FingerPrint", s.Confirmation)
	}
	if s.LastKnownLocation == nil {
		t.Errorf("completed status has no last known location")
	}
	h := waitHistory(t, id, 30*time.Second, flightStages...)
	last := h.Events[len(h.Events)-1]
	if last.Confirmation == nil || last.Confirmation.Type != "FingerPrint" {
		t.Errorf("history's Completed event confirmation %+v, want FingerPrint", last.Confirmation)
	}
	for i, e := range h.Events {
		if e.Sequence != i+1 || e.Type != messages.DeliveryEventType(e.Stage) {
			t.Errorf("history event %d: sequence %d type %s stage %s", i, e.Sequence, e.Type, e.Stage)
		}
		if i > 0 && e.At.Before(h.Events[i-1].At) {
			t.Errorf("history event %s at %s is before %s at %s", e.Stage, e.At, h.Events[i-1].Stage, h.Events[i-1].At)
		}
	}
	if got := publishedStages(t, id); !slices.Equal(got, flightStages) {
		t.Errorf("delivery events published: %s, want %s", join(got), join(flightStages))
	}

	// The drone flies home and is free again once it has landed there.
	d := waitDroneFree(t, drone, flightTimeout)
	var asg struct {
		Status       string                 `json:"status"`
		Confirmation *messages.Confirmation `json:"confirmation"`
	}
	r := env.Do(t, "drone", http.MethodGet, "/api/dronedeliveries/"+id, nil, nil)
	r.JSON(t, &asg)
	if asg.Status != "completed" || asg.Confirmation == nil {
		t.Errorf("assignment after landing: %+v, want completed with the confirmation", asg)
	}
	if d.Seq == 0 {
		t.Errorf("drone %s reported nothing (seq 0)", drone)
	}
	reports := droneReports(t, id)
	checkSmoothFlight(t, reports)
	if end := reports[len(reports)-1]; end.Status != messages.DroneLanded || geo.DistanceKm(end.Position, d.Base) > 0.01 {
		t.Errorf("last report %s at %+v, want landed at base %+v", end.Status, end.Position, d.Base)
	}

	// A cancel after the drop-off is too late: accepted (the API is
	// asynchronous), then refused with the reason, and nothing is undone.
	if r := env.Do(t, "ingestion", http.MethodDelete, "/api/deliveryrequests/"+id, nil, nil); r.Status != http.StatusAccepted {
		t.Fatalf("cancel answered %d %s", r.Status, r.Body)
	}
	var refused harness.RequestStatus
	harness.Eventually(t, 30*time.Second, func() (bool, string) {
		refused, _ = env.Status(t, id)
		return refused.CancelRefused != "", "status " + refused.Status + ", cancel not refused yet"
	})
	if refused.Status != "Scheduled" || !strings.Contains(refused.CancelRefused, messages.StageCompleted) {
		t.Errorf("after a cancel of the completed delivery: %s, %q; want Scheduled and the refusal", refused.Status, refused.CancelRefused)
	}
	if s := getStatus(t, id); s.Stage != messages.StageCompleted {
		t.Errorf("delivery stage %s after the refused cancel, want Completed", s.Stage)
	}
	pkg := body["packageInfo"].(map[string]any)["packageId"].(string)
	if r := env.Do(t, "package", http.MethodGet, "/api/packages/"+pkg, nil, nil); r.Status != http.StatusOK {
		t.Errorf("package of the completed delivery answered %d after the refused cancel, want it kept", r.Status)
	}
}

func TestCancelInFlight(t *testing.T) {
	id, drone := schedule(t, request("47.600,-122.300", "47.700,-122.150", "None"))
	waitStage(t, id, messages.StageHeadedToDropoff, flightTimeout)
	if r := env.Do(t, "ingestion", http.MethodDelete, "/api/deliveryrequests/"+id, nil, nil); r.Status != http.StatusAccepted {
		t.Fatalf("cancel: %d %s", r.Status, r.Body)
	}
	env.WaitStatus(t, id, 30*time.Second, "Canceled")
	if s := getStatus(t, id); s.Stage != messages.StageCanceled {
		t.Fatalf("delivery stage %s after the cancel, want Canceled", s.Stage)
	}

	// The drone turns back: still held by the delivery while it flies home,
	// free once it has landed at its base.
	harness.Eventually(t, 30*time.Second, func() (bool, string) {
		d := getDrone(t, drone)
		if d.AssignedTo == "" {
			return true, "" // already home
		}
		return d.Flight != nil && d.Flight.Aborted && d.Flight.Phase == "returning",
			fmt.Sprintf("drone %s: %+v, want returning, aborted", drone, d.Flight)
	})
	d := waitDroneFree(t, drone, flightTimeout)

	reports := droneReports(t, id)
	checkSmoothFlight(t, reports)
	var aborted []droneReport
	for _, r := range reports {
		if r.Aborted {
			aborted = append(aborted, r)
		}
		if r.Status == messages.DroneDroppedOff {
			t.Errorf("the canceled delivery was dropped off (report %d)", r.Sequence)
		}
	}
	if len(aborted) < 2 {
		t.Fatalf("%d aborted reports, want the flight home reported", len(aborted))
	}
	for i := 1; i < len(aborted); i++ {
		if geo.DistanceKm(aborted[i].Position, d.Base) > geo.DistanceKm(aborted[i-1].Position, d.Base) {
			t.Errorf("turned-back drone flew away from its base between reports %d and %d", aborted[i-1].Sequence, aborted[i].Sequence)
		}
	}
	if end := aborted[len(aborted)-1]; end.Status != messages.DroneLanded || geo.DistanceKm(end.Position, d.Base) > 0.01 {
		t.Errorf("last report %s at %+v, want landed at base", end.Status, end.Position)
	}

	// It ends canceled, whatever the drone reports after the cancel.
	if s := getStatus(t, id); s.Stage != messages.StageCanceled {
		t.Errorf("delivery stage %s after the drone landed, want Canceled", s.Stage)
	}
	h := waitHistory(t, id, 30*time.Second,
		messages.StageCreated, messages.StageHeadedToPickup, messages.StageHeadedToDropoff, messages.StageCanceled)
	if got := publishedStages(t, id); !slices.Equal(got, historyStages(h)) {
		t.Errorf("delivery events published: %s, want %s", join(got), join(historyStages(h)))
	}
	// And the drone flies again.
	id2, drone2 := schedule(t, request(fmt.Sprintf("%.4f,%.4f", d.Base.Latitude, d.Base.Longitude), "47.620,-122.250", "None"))
	if drone2 != drone {
		t.Logf("the next delivery from %s's base got %s", drone, drone2)
	}
	waitStage(t, id2, messages.StageCompleted, flightTimeout)
}

func TestDroneRestartMidFlight(t *testing.T) {
	id, drone := schedule(t, request("47.600,-122.300", "47.700,-122.150", "Picture"))
	waitStage(t, id, messages.StageHeadedToDropoff, flightTimeout)
	before := getDrone(t, drone)

	env.Stack.Kill("drone", false)
	killedAt := time.Now()
	// Down for a while: long enough to see in the reports' times, and for
	// a drone that kept "flying" in the meantime to show as a jump.
	time.Sleep(2 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := env.Stack.Restart(ctx, "drone", false); err != nil {
		t.Fatalf("restart drone: %v", err)
	}
	t.Logf("drone service down for %s", time.Since(killedAt).Round(time.Millisecond))

	s := waitStage(t, id, messages.StageCompleted, flightTimeout)
	if s.Confirmation == nil || s.Confirmation.Type != "Picture" {
		t.Errorf("confirmation %+v, want Picture", s.Confirmation)
	}
	waitHistory(t, id, 30*time.Second, flightStages...)
	if got := publishedStages(t, id); !slices.Equal(got, flightStages) {
		t.Errorf("delivery events published: %s, want %s", join(got), join(flightStages))
	}
	after := waitDroneFree(t, drone, flightTimeout)
	if after.Seq <= before.Seq {
		t.Errorf("drone seq %d after the restart, want more than %d", after.Seq, before.Seq)
	}

	// Resumed where it was: no jump back to base or ahead, and a gap in the
	// reports' times where the service was down.
	reports := droneReports(t, id)
	checkSmoothFlight(t, reports)
	gap := time.Duration(0)
	for i := 1; i < len(reports); i++ {
		gap = max(gap, reports[i].Timestamp.Sub(reports[i-1].Timestamp))
	}
	if gap < time.Second {
		t.Errorf("longest gap between reports %s; the restart should show", gap)
	}
	t.Logf("%d reports, longest gap %s", len(reports), gap.Round(time.Millisecond))
}

// droneReport is a drone-status report as published.
type droneReport = messages.DroneStatusReport

// droneReports lists the reports of delivery id's flight, in sequence
// order, each sequence number once.
func droneReports(t testing.TB, id string) []droneReport {
	t.Helper()
	seen := map[uint64]bool{}
	var out []droneReport
	for _, raw := range env.Messages(t, messages.TopicDroneStatus, `"deliveryId":"`+id+`"`) {
		var ce struct {
			ID   string      `json:"id"`
			Type string      `json:"type"`
			Data droneReport `json:"data"`
		}
		if err := json.Unmarshal(raw, &ce); err != nil {
			t.Fatalf("decode drone report %s: %v", raw, err)
		}
		if ce.Type != messages.TypeDroneStatus || ce.Data.DeliveryID != id || seen[ce.Data.Sequence] {
			continue
		}
		seen[ce.Data.Sequence] = true
		out = append(out, ce.Data)
	}
	slices.SortFunc(out, func(a, b droneReport) int { return int(a.Sequence) - int(b.Sequence) })
	if len(out) == 0 {
		t.Fatalf("no drone reports for delivery %s", id)
	}
	return out
}

// checkSmoothFlight checks that the reports' sequence numbers grow and that
// no step between two reports is longer than two ticks of flight: the drone
// never jumps, also not across a restart.
func checkSmoothFlight(t testing.TB, reports []droneReport) {
	t.Helper()
	tickDur, _ := time.ParseDuration(tick)
	maxStepKm := 60 * timeScale * (2 * tickDur).Hours() * 1.05
	for i := 1; i < len(reports); i++ {
		a, b := reports[i-1], reports[i]
		if b.Sequence <= a.Sequence {
			t.Errorf("report sequence %d after %d", b.Sequence, a.Sequence)
		}
		if km := geo.DistanceKm(a.Position, b.Position); km > maxStepKm {
			t.Errorf("drone jumped %.2f km between reports %d (%s) and %d (%s), more than %.2f",
				km, a.Sequence, a.Status, b.Sequence, b.Status, maxStepKm)
		}
	}
	if first := reports[0]; first.Status != messages.DroneHeadedToPickup {
		t.Errorf("first report %d is %s, want %s", first.Sequence, first.Status, messages.DroneHeadedToPickup)
	}
}
