package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fabrikam/dronedelivery/internal/geo"
	"github.com/fabrikam/dronedelivery/internal/messages"
	"github.com/fabrikam/dronedelivery/internal/sidecar"
	"github.com/fabrikam/dronedelivery/internal/sidecar/sidecartest"
)

// The trip of putD1, and a point on the way to its pickup.
var (
	pickupD1  = geo.Location{Name: "Seattle", Latitude: 47.6062, Longitude: -122.3321}
	dropoffD1 = geo.Location{Latitude: 47.6101, Longitude: -122.2015}
	nearBase  = geo.Location{Latitude: 47.58, Longitude: -122.36, Altitude: 120}
	midway    = geo.Location{Latitude: 47.608, Longitude: -122.27, Altitude: 120}
)

// rep is a drone-7 report for d1: sequence, status and position, reported
// seq seconds after t0.
func rep(seq uint64, status messages.DroneStatus, pos geo.Location) messages.DroneStatusReport {
	return messages.DroneStatusReport{
		DroneID: "drone-7", DeliveryID: "d1", Sequence: seq, Timestamp: t0.Add(time.Duration(seq) * time.Second),
		Status: status, Position: pos, SpeedKmh: 60, TimeScale: 60,
	}
}

// pickedUp marks r as after the pickup, and dropped as after the drop-off.
func pickedUp(r messages.DroneStatusReport) messages.DroneStatusReport {
	at := t0.Add(time.Second)
	r.PickedUpAt = &at
	return r
}

func dropped(r messages.DroneStatusReport, confirmation string) messages.DroneStatusReport {
	r = pickedUp(r)
	at := t0.Add(20 * time.Second)
	r.DroppedOffAt = &at
	r.Confirmation = &messages.Confirmation{Type: confirmation, Reference: "ref", Location: dropoffD1, RecordedAt: at}
	return r
}

// deliver posts r to the subscription route as the sidecar would, as a
// CloudEvent with id, and returns the status the handler answered.
func (f *fixture) deliver(t *testing.T, id string, r any) string {
	t.Helper()
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	ce := fmt.Sprintf(`{"id":%q,"source":"drone","type":%q,"topic":"drone-status","pubsubname":"pubsub","specversion":"1.0","datacontenttype":"application/json","data":%s}`,
		id, messages.TypeDroneStatus, data)
	req := httptest.NewRequest(http.MethodPost, routeDroneStatus, strings.NewReader(ce))
	req.Header.Set("Content-Type", "application/cloudevents+json")
	rec := httptest.NewRecorder()
	f.handler.ServeHTTP(rec, req)
	var resp struct {
		Status string `json:"status"`
	}
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &resp) != nil {
		t.Fatalf("subscription answered %d %s", rec.Code, rec.Body)
	}
	return resp.Status
}

// report delivers r with the id its drone gives it and wants SUCCESS.
func (f *fixture) report(t *testing.T, r messages.DroneStatusReport) {
	t.Helper()
	if got := f.deliver(t, fmt.Sprintf("%s/%d", r.DroneID, r.Sequence), r); got != sidecar.StatusSuccess {
		t.Fatalf("report %d (%s): got %s, want SUCCESS", r.Sequence, r.Status, got)
	}
}

// stages lists the stages of the delivery events published for d1.
func (f *fixture) publishedStages(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, e := range f.pub.events() {
		ev, ok := e.Data.(messages.DeliveryEvent)
		if !ok || e.Topic != messages.TopicDeliveryEvents || e.Key != ev.DeliveryID ||
			e.Type != messages.DeliveryEventType(ev.Stage) || e.ID != messages.DeliveryEventID(ev.DeliveryID, ev.Sequence, ev.Stage) {
			t.Fatalf("published %+v", e)
		}
		out = append(out, ev.Stage)
	}
	return out
}

func transitionStages(d Delivery) []string {
	out := make([]string, len(d.Transitions))
	for i, tr := range d.Transitions {
		out[i] = string(tr.Stage)
	}
	return out
}

func TestStageOf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		r    messages.DroneStatusReport
		want Stage
	}{
		{rep(1, messages.DroneHeadedToPickup, nearBase), StageHeadedToPickup},
		{rep(1, messages.DronePickedUp, pickupD1), StageHeadedToDropoff},
		{rep(1, messages.DroneHeadedToDropoff, midway), StageHeadedToDropoff},
		{rep(1, messages.DroneDroppedOff, dropoffD1), StageCompleted},
		{rep(1, messages.DroneReturning, midway), StageCompleted},
		{rep(1, messages.DroneLanded, nearBase), StageCompleted},
		// The timestamps in a report say more than its status.
		{pickedUp(rep(1, messages.DroneHeadedToPickup, midway)), StageHeadedToDropoff},
		{dropped(rep(1, messages.DroneHeadedToDropoff, midway), "None"), StageCompleted},
	}
	for _, tt := range tests {
		if got := stageOf(tt.r); got != tt.want {
			t.Errorf("stageOf(%s, pickedUp %v, droppedOff %v) = %s, want %s",
				tt.r.Status, tt.r.PickedUpAt != nil, tt.r.DroppedOffAt != nil, got, tt.want)
		}
	}
}

func TestReportsMoveTheDeliveryForwardOnly(t *testing.T) {
	t.Parallel()
	all := []messages.DroneStatusReport{
		rep(1, messages.DroneHeadedToPickup, nearBase),
		rep(2, messages.DroneHeadedToPickup, nearBase),
		pickedUp(rep(3, messages.DronePickedUp, pickupD1)),
		pickedUp(rep(4, messages.DroneHeadedToDropoff, midway)),
		dropped(rep(5, messages.DroneDroppedOff, dropoffD1), "Voice"),
		dropped(rep(6, messages.DroneReturning, midway), "Voice"),
	}
	flown := []string{"Created", "HeadedToPickup", "HeadedToDropoff", "Completed"}
	tests := []struct {
		name  string
		order []int // indexes into all
		want  []string
	}{
		{"in order", []int{0, 1, 2, 3, 4, 5}, flown},
		{"every report twice", []int{0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5}, flown},
		{"reversed", []int{5, 4, 3, 2, 1, 0}, flown},
		{"shuffled with repeats", []int{1, 3, 0, 2, 3, 5, 1, 4, 0}, flown},
		{"only the last", []int{5}, flown},
		{"pickup first, start late", []int{2, 0, 1}, flown[:3]},
		{"nothing after the pickup", []int{0, 1}, flown[:2]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			f.create(t, "d1")
			rank := 0
			var applied messages.DroneStatusReport // the newest report before the end
			for _, i := range tt.order {
				if d, _ := f.stored(t, "d1"); !d.Stage.Final() && all[i].Sequence > applied.Sequence {
					applied = all[i]
				}
				f.report(t, all[i])
				d, _ := f.stored(t, "d1")
				if d.Stage.rank() < rank {
					t.Fatalf("report %d moved the delivery back to %s", all[i].Sequence, d.Stage)
				}
				rank = d.Stage.rank()
			}
			d, _ := f.stored(t, "d1")
			if got := transitionStages(d); !slices.Equal(got, tt.want) {
				t.Errorf("transitions %v, want %v", got, tt.want)
			}
			if got := f.publishedStages(t); !slices.Equal(got, tt.want) {
				t.Errorf("published %v, want each of %v once", got, tt.want)
			}
			if len(d.Outbox) != 0 {
				t.Errorf("outbox keeps %d events after they were published", len(d.Outbox))
			}
			if d.Tracking == nil || d.Tracking.Seq != applied.Sequence ||
				d.LastKnownLocation == nil || *d.LastKnownLocation != applied.Position {
				t.Errorf("tracking %+v at %+v, want report %d's", d.Tracking, d.LastKnownLocation, applied.Sequence)
			}
			for i, tr := range d.Transitions {
				if tr.Seq != i+1 || (i > 0 && tr.At.Before(d.Transitions[i-1].At)) {
					t.Errorf("transition %d: %+v", i, tr)
				}
			}
		})
	}
}

func TestCompletedCarriesTheConfirmation(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.create(t, "d1")
	f.report(t, dropped(rep(9, messages.DroneDroppedOff, dropoffD1), "FingerPrint"))
	st := decode[statusBody](t, f.do(t, http.MethodGet, "/api/deliveries/d1/status", ""))
	if st.Stage != StageCompleted || st.Confirmation == nil || st.Confirmation.Type != "FingerPrint" {
		t.Fatalf("status %+v, want Completed with the FingerPrint confirmation", st)
	}
	evs := f.pub.events()
	last := evs[len(evs)-1].Data.(messages.DeliveryEvent)
	if last.Stage != "Completed" || last.Confirmation == nil || last.Confirmation.Type != "FingerPrint" {
		t.Errorf("Completed event %+v, want the confirmation in it", last)
	}
}

func TestETAsFollowTheDrone(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.create(t, "d1")
	kmPerSec := 60.0 * 60 / 3600 // 60 km/h at 60 times real time
	within := func(what string, got *time.Time, want time.Time) {
		t.Helper()
		if got == nil || math.Abs(got.Sub(want).Seconds()) > 0.01 {
			t.Errorf("%s %v, want %v", what, got, want)
		}
	}
	secs := func(km float64) time.Duration { return time.Duration(km / kmPerSec * float64(time.Second)) }

	r := rep(1, messages.DroneHeadedToPickup, nearBase)
	f.report(t, r)
	st := decode[statusBody](t, f.do(t, http.MethodGet, "/api/deliveries/d1/status", ""))
	toPickup := secs(geo.DistanceKm(nearBase, pickupD1))
	within("pickup ETA", st.PickupETA, r.Timestamp.Add(toPickup))
	within("delivery ETA", st.DeliveryETA, r.Timestamp.Add(toPickup+secs(geo.DistanceKm(pickupD1, dropoffD1))))
	if st.LastReportAt == nil || !st.LastReportAt.Equal(r.Timestamp) {
		t.Errorf("last report at %v, want %v", st.LastReportAt, r.Timestamp)
	}

	// On the way to the drop-off the delivery ETA comes from the position,
	// the pickup ETA is when it happened, and the time left shrinks.
	var left []time.Duration
	for i, pos := range []geo.Location{pickupD1, midway, {Latitude: 47.609, Longitude: -122.22}} {
		r := pickedUp(rep(uint64(2+i), messages.DroneHeadedToDropoff, pos))
		f.report(t, r)
		st = decode[statusBody](t, f.do(t, http.MethodGet, "/api/deliveries/d1/status", ""))
		within("pickup ETA", st.PickupETA, *r.PickedUpAt)
		within("delivery ETA", st.DeliveryETA, r.Timestamp.Add(secs(geo.DistanceKm(pos, dropoffD1))))
		left = append(left, st.DeliveryETA.Sub(r.Timestamp))
	}
	if !slices.IsSortedFunc(left, func(a, b time.Duration) int { return int(b - a) }) {
		t.Errorf("time left to the drop-off %v, want it shrinking", left)
	}

	// A later report that claims the drone is still on its way to the pickup
	// neither moves the stage back nor brings a pickup ETA back.
	f.report(t, rep(10, messages.DroneHeadedToPickup, midway))
	st = decode[statusBody](t, f.do(t, http.MethodGet, "/api/deliveries/d1/status", ""))
	if st.Stage != StageHeadedToDropoff {
		t.Errorf("stage %s, want HeadedToDropoff", st.Stage)
	}
	within("pickup ETA after a stale status", st.PickupETA, t0.Add(time.Second))

	d := dropped(rep(11, messages.DroneDroppedOff, dropoffD1), "None")
	f.report(t, d)
	st = decode[statusBody](t, f.do(t, http.MethodGet, "/api/deliveries/d1/status", ""))
	within("delivery ETA once delivered", st.DeliveryETA, *d.DroppedOffAt)
}

func TestReportsIgnored(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		stage Stage
		r     messages.DroneStatusReport
	}{
		{"another drone, long ago", StageCreated, func() messages.DroneStatusReport {
			r := rep(1, messages.DroneHeadedToPickup, nearBase)
			r.DroneID, r.Timestamp = "drone-8", t0.Add(-time.Hour)
			return r
		}()},
		{"canceled delivery", StageCanceled, rep(1, messages.DroneHeadedToPickup, nearBase)},
		{"completed delivery", StageCompleted, rep(1, messages.DroneHeadedToPickup, nearBase)},
		{"failed delivery", StageFailed, rep(1, messages.DroneReturning, nearBase)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			f.seed(t, Delivery{ID: "d1", DroneID: "drone-7", Stage: tt.stage, UpdatedAt: t0})
			f.report(t, tt.r)
			d, _ := f.stored(t, "d1")
			if d.Stage != tt.stage || d.Tracking != nil || !d.UpdatedAt.Equal(t0) || len(f.pub.events()) != 0 {
				t.Errorf("after the report: %+v, %d events", d, len(f.pub.events()))
			}
		})
	}
}

func TestAbortedReportsMoveNoStage(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.create(t, "d1")
	f.report(t, rep(1, messages.DroneHeadedToPickup, nearBase))
	r := rep(2, messages.DroneReturning, nearBase)
	r.Aborted = true
	f.report(t, r)
	d, _ := f.stored(t, "d1")
	if d.Stage != StageHeadedToPickup || d.Tracking.Seq != 2 {
		t.Errorf("after an aborted report: stage %s seq %d, want HeadedToPickup and 2", d.Stage, d.Tracking.Seq)
	}
}

func TestSubscriptionAnswers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		exists  bool
		storeUp bool
		body    any
		want    string
	}{
		{"applied", true, true, rep(1, messages.DroneHeadedToPickup, nearBase), sidecar.StatusSuccess},
		{"delivery not created yet", false, true, func() messages.DroneStatusReport {
			r := rep(1, messages.DroneHeadedToPickup, nearBase)
			r.Timestamp = t0.Add(-5 * time.Second)
			return r
		}(), sidecar.StatusRetry},
		{"delivery never created", false, true, func() messages.DroneStatusReport {
			r := rep(1, messages.DroneHeadedToPickup, nearBase)
			r.Timestamp = t0.Add(-time.Hour)
			return r
		}(), sidecar.StatusSuccess},
		{"store down", true, false, rep(1, messages.DroneHeadedToPickup, nearBase), sidecar.StatusRetry},
		{"no sequence", true, true, rep(0, messages.DroneHeadedToPickup, nearBase), sidecar.StatusDrop},
		{"no delivery id", true, true, func() messages.DroneStatusReport {
			r := rep(1, messages.DroneHeadedToPickup, nearBase)
			r.DeliveryID = ""
			return r
		}(), sidecar.StatusDrop},
		{"unknown field", true, true, map[string]any{"droneId": "drone-7", "deliveryId": "d1", "sequence": 1, "colour": "red"}, sidecar.StatusDrop},
		{"not an object", true, true, []int{1, 2}, sidecar.StatusDrop},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			if tt.exists {
				f.create(t, "d1")
			}
			if !tt.storeUp {
				f.store.Err = errStoreDown
			}
			if got := f.deliver(t, "e1", tt.body); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
	t.Run("unknown type", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		req := httptest.NewRequest(http.MethodPost, routeDroneUnknown, strings.NewReader(`{"id":"x","type":"com.example.v1","data":{}}`))
		rec := httptest.NewRecorder()
		f.handler.ServeHTTP(rec, req)
		if !strings.Contains(rec.Body.String(), sidecar.StatusDrop) {
			t.Errorf("got %s, want DROP", rec.Body)
		}
	})
}

func TestOutboxPublishesAfterAFailure(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.create(t, "d1")
	f.pub.setErr(errors.New("broker down"))

	// The transition is stored with its event, which waits in the outbox.
	first := rep(1, messages.DroneHeadedToPickup, nearBase)
	if got := f.deliver(t, "drone-7/1", first); got != sidecar.StatusRetry {
		t.Fatalf("with the broker down: got %s, want RETRY", got)
	}
	d, _ := f.stored(t, "d1")
	if d.Stage != StageHeadedToPickup || len(d.Outbox) != 1 {
		t.Fatalf("stored stage %s outbox %d, want HeadedToPickup with 1 waiting", d.Stage, len(d.Outbox))
	}
	f.pub.setErr(nil)

	// Another report, while the first's handler might still be at it, does
	// not publish the first's event ...
	f.report(t, rep(2, messages.DroneHeadedToPickup, nearBase))
	if got := f.publishedStages(t); !slices.Equal(got, []string{"Created"}) {
		t.Fatalf("published %v, want only Created yet", got)
	}
	// ... the redelivered first report does, once.
	if got := f.deliver(t, "drone-7/1", first); got != sidecar.StatusSuccess {
		t.Fatalf("redelivered: got %s", got)
	}
	if got := f.publishedStages(t); !slices.Equal(got, []string{"Created", "HeadedToPickup"}) {
		t.Fatalf("published %v, want Created and HeadedToPickup", got)
	}
	if d, _ := f.stored(t, "d1"); len(d.Outbox) != 0 {
		t.Errorf("outbox %d after publishing, want empty", len(d.Outbox))
	}
	f.deliver(t, "drone-7/1", first)
	if n := len(f.publishedStages(t)); n != 2 {
		t.Errorf("%d events after a third delivery, want 2", n)
	}
}

func TestOutboxLeftOverIsPublishedByTheNextReport(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.create(t, "d1")
	f.pub.setErr(errors.New("broker down"))
	f.deliver(t, "drone-7/1", rep(1, messages.DroneHeadedToPickup, nearBase))
	f.pub.setErr(nil)
	// Its handler crashed for good; past the grace the next report sends it.
	f.advance(outboxGrace)
	f.report(t, pickedUp(rep(2, messages.DroneHeadedToDropoff, midway)))
	if got := f.publishedStages(t); !slices.Equal(got, []string{"Created", "HeadedToPickup", "HeadedToDropoff"}) {
		t.Errorf("published %v, want every stage in order", got)
	}
}

func TestAPIPublishesItsStages(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.create(t, "d1")
	if rec := f.do(t, http.MethodPut, "/api/deliveries/d1", putD1); rec.Code != http.StatusOK {
		t.Fatalf("repeat PUT: %d", rec.Code)
	}
	patch := `{"pickupTime":"2026-05-14T12:00:00Z"}`
	for range 2 {
		if rec := f.do(t, http.MethodPatch, "/api/deliveries/d1", patch); rec.Code != http.StatusOK {
			t.Fatalf("PATCH: %d %s", rec.Code, rec.Body)
		}
	}
	if rec := f.do(t, http.MethodPatch, "/api/deliveries/d1", `{"pickupTime":"2026-05-14T13:00:00Z"}`); rec.Code != http.StatusOK {
		t.Fatalf("second reschedule: %d", rec.Code)
	}
	for range 2 {
		if rec := f.do(t, http.MethodDelete, "/api/deliveries/d1", ""); rec.Code != http.StatusOK {
			t.Fatalf("DELETE: %d", rec.Code)
		}
	}
	want := []string{"Created", "Rescheduled", "Rescheduled", "Canceled"}
	if got := f.publishedStages(t); !slices.Equal(got, want) {
		t.Errorf("published %v, want %v", got, want)
	}

	g := newFixture(t)
	g.create(t, "d1")
	for range 2 {
		if rec := g.do(t, http.MethodPut, "/api/failed-deliveries?id=d1", `{"reason":"no drone"}`); rec.Code != http.StatusOK {
			t.Fatalf("failure: %d %s", rec.Code, rec.Body)
		}
	}
	if got := g.publishedStages(t); !slices.Equal(got, []string{"Created", "Failed"}) {
		t.Errorf("published %v, want Created and Failed", got)
	}
	ev := g.pub.events()[1].Data.(messages.DeliveryEvent)
	if ev.Reason != "no drone" || ev.Sequence != 2 {
		t.Errorf("Failed event %+v", ev)
	}
}

func TestAPIAsksForARepeatWhenItCannotPublish(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.pub.setErr(errors.New("broker down"))
	rec := f.do(t, http.MethodPut, "/api/deliveries?id=d1", putD1)
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("PUT with the broker down: %d, want 503", rec.Code)
	}
	f.pub.setErr(nil)
	if rec := f.do(t, http.MethodPut, "/api/deliveries?id=d1", putD1); rec.Code != http.StatusOK {
		t.Fatalf("repeat: %d %s", rec.Code, rec.Body)
	}
	if got := f.publishedStages(t); !slices.Equal(got, []string{"Created"}) {
		t.Errorf("published %v, want Created once", got)
	}
	if d, _ := f.stored(t, "d1"); len(d.Outbox) != 0 {
		t.Errorf("outbox %d, want empty", len(d.Outbox))
	}
}

func TestNoRescheduleInFlight(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.create(t, "d1")
	f.report(t, rep(1, messages.DroneHeadedToPickup, nearBase))
	rec := f.do(t, http.MethodPatch, "/api/deliveries?id=d1", `{"pickupTime":"2026-05-14T12:00:00Z"}`)
	checkProblem(t, rec, http.StatusConflict, codeDeliveryInFlight, "")
	// Canceling in flight is fine.
	if rec := f.do(t, http.MethodDelete, "/api/deliveries?id=d1", ""); rec.Code != http.StatusOK {
		t.Fatalf("DELETE in flight: %d", rec.Code)
	}
	if got := f.publishedStages(t); !slices.Equal(got, []string{"Created", "HeadedToPickup", "Canceled"}) {
		t.Errorf("published %v", got)
	}
}

// A reschedule reaches the drone before the delivery: the new trip's
// reports wait for it, so that the history has Rescheduled before the
// flight, and the ETAs follow the new trip.
func TestReportsWaitForTheirBooking(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.create(t, "d1")
	newPickupTime := ts("2026-05-14T09:00:00Z")
	trip := func(r messages.DroneStatusReport, drone string) messages.DroneStatusReport {
		r.DroneID, r.Pickup, r.Dropoff, r.PickupTime = drone, midway, dropoffD1, newPickupTime
		return r
	}
	for _, r := range []messages.DroneStatusReport{
		trip(rep(1, messages.DroneHeadedToPickup, nearBase), "drone-7"), // same drone, new trip
		trip(rep(1, messages.DroneHeadedToPickup, nearBase), "drone-9"), // another drone
	} {
		if got := f.deliver(t, "e", r); got != sidecar.StatusRetry {
			t.Errorf("report of %s before the reschedule: got %s, want RETRY", r.DroneID, got)
		}
	}
	rec := f.do(t, http.MethodPatch, "/api/deliveries/d1",
		`{"pickup":{"latitude":47.608,"longitude":-122.27,"altitude":120},"pickupTime":"2026-05-14T09:00:00Z","droneId":"drone-9"}`)
	if rec.Code != http.StatusOK {
		t.Fatalf("PATCH: %d %s", rec.Code, rec.Body)
	}
	f.report(t, trip(rep(1, messages.DroneHeadedToPickup, nearBase), "drone-9"))
	if got := f.publishedStages(t); !slices.Equal(got, []string{"Created", "Rescheduled", "HeadedToPickup"}) {
		t.Errorf("published %v", got)
	}

	// Reports of a trip no booking ever named are taken, late, as they are.
	g := newFixture(t)
	g.create(t, "d1")
	late := trip(rep(1, messages.DroneHeadedToPickup, nearBase), "drone-7")
	late.Timestamp = t0.Add(-catchUpWindow)
	g.report(t, late)
	if d, _ := g.stored(t, "d1"); d.Stage != StageHeadedToPickup {
		t.Errorf("stage %s after a report of an unbooked trip, want HeadedToPickup", d.Stage)
	}
}

// clearFails is a store that cannot clear outboxes: every write that
// removes outbox events fails.
type clearFails struct{ *sidecartest.Store[Delivery] }

func (s clearFails) Update(ctx context.Context, k string, fn func(*Delivery, bool) (bool, error)) (Delivery, error) {
	return sidecar.UpdateKey[Delivery](ctx, s, k, fn)
}

func (s clearFails) Replace(ctx context.Context, k string, v Delivery, etag string) error {
	cur, _, _, err := s.Store.Get(ctx, k)
	if err == nil && len(v.Outbox) < len(cur.Outbox) {
		return errStoreDown
	}
	return s.Store.Replace(ctx, k, v, etag)
}

// Once an event is out, failing to note it in the record fails nothing:
// the event goes out again later under the same id.
func TestPublishedButNotCleared(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.api.store = clearFails{f.store}
	if rec := f.do(t, http.MethodPut, "/api/deliveries/d1", putD1); rec.Code != http.StatusCreated {
		t.Fatalf("PUT: %d %s", rec.Code, rec.Body)
	}
	f.report(t, rep(1, messages.DroneHeadedToPickup, nearBase))
	if got := f.publishedStages(t); !slices.Equal(got, []string{"Created", "HeadedToPickup"}) {
		t.Errorf("published %v", got)
	}
	if d, _ := f.stored(t, "d1"); len(d.Outbox) != 2 {
		t.Errorf("outbox %d, want both events still there", len(d.Outbox))
	}
}

func TestReportsThrottledUnlessTheStageMoves(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.api.trackEvery = 5 * time.Second
	f.create(t, "d1")
	// Reports a second apart: only every fifth moves the position, but the
	// pickup, a stage change, goes through at once.
	var applied []uint64
	for seq := uint64(1); seq <= 12; seq++ {
		r := rep(seq, messages.DroneHeadedToPickup, nearBase)
		if seq >= 8 {
			r = pickedUp(rep(seq, messages.DroneHeadedToDropoff, midway))
		}
		f.report(t, r)
		d, _ := f.stored(t, "d1")
		if d.Tracking.Seq == seq {
			applied = append(applied, seq)
		}
	}
	if want := []uint64{1, 6, 8}; !slices.Equal(applied, want) {
		t.Errorf("applied reports %v, want %v", applied, want)
	}
	if got := f.publishedStages(t); !slices.Equal(got, []string{"Created", "HeadedToPickup", "HeadedToDropoff"}) {
		t.Errorf("published %v", got)
	}
}
