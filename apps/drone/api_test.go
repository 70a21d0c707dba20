package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fabrikam/dronedelivery/internal/geo"
	"github.com/fabrikam/dronedelivery/internal/sidecar"
	"github.com/fabrikam/dronedelivery/internal/sidecar/sidecartest"
	"github.com/fabrikam/dronedelivery/internal/web"
)

var (
	seattle  = geo.Location{Name: "Seattle", Latitude: 47.6062, Longitude: -122.3321}
	bellevue = geo.Location{Name: "Bellevue", Latitude: 47.6101, Longitude: -122.2015}
	redmond  = geo.Location{Name: "Redmond", Latitude: 47.6740, Longitude: -122.1215}
	kirkland = geo.Location{Name: "Kirkland", Latitude: 47.6769, Longitude: -122.2060}
	renton   = geo.Location{Name: "Renton", Latitude: 47.4829, Longitude: -122.2171}
)

var testNow = time.Date(2026, 5, 14, 12, 0, 0, 0, time.UTC)

// testFleet is small enough to exhaust: a light drone in Redmond, a medium
// one in Seattle and a heavy one in Bellevue.
func testFleet() []Drone {
	return []Drone{
		{ID: "drone-a", Base: seattle, MaxPayloadKg: 10, SpeedKmh: 60},
		{ID: "drone-b", Base: bellevue, MaxPayloadKg: 20, SpeedKmh: 80},
		{ID: "drone-c", Base: redmond, MaxPayloadKg: 5, SpeedKmh: 50},
	}
}

type fixture struct {
	api         *api
	h           http.Handler
	drones      *sidecartest.Store[Drone]
	assignments *sidecartest.Store[Assignment]
}

// newFixture returns a seeded service over in-memory stores.
func newFixture(t *testing.T, fleet []Drone) *fixture {
	t.Helper()
	f := &fixture{drones: sidecartest.NewStore[Drone](), assignments: sidecartest.NewStore[Assignment]()}
	f.api, f.h = f.replica(fleet, f.drones)
	if err := f.api.seed(t.Context()); err != nil {
		t.Fatalf("seed: %v", err)
	}
	return f
}

// seededReplica returns another instance of the service over the same
// stores, as a second replica would be, after its own (no-op) seeding.
func (f *fixture) seededReplica(t *testing.T, drones droneStore) http.Handler {
	t.Helper()
	a, h := f.replica(f.api.fleet, drones)
	if err := a.seed(t.Context()); err != nil {
		t.Fatalf("seed: %v", err)
	}
	return h
}

// replica returns an unseeded instance of the service over f's assignment
// store and the given drone store.
func (f *fixture) replica(fleet []Drone, drones droneStore) (*api, http.Handler) {
	a := newAPI(slog.New(slog.DiscardHandler), fleet, drones, f.assignments, func() time.Time { return testNow })
	r := web.NewRouter(a.log)
	a.routes(r)
	return a, r
}

func do(t *testing.T, h http.Handler, method, path string, body any) *httptest.ResponseRecorder {
	t.Helper()
	var rd *bytes.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req := httptest.NewRequest(method, path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func tripBody(pickup, dropoff geo.Location, pickupTime time.Time, weightKg float64) map[string]any {
	return map[string]any{
		"pickup": pickup, "dropoff": dropoff, "pickupTime": pickupTime.Format(time.RFC3339),
		"packageWeight": weightKg, "packageSize": "Medium", "expedited": false,
	}
}

func put(t *testing.T, h http.Handler, id string, body any) *httptest.ResponseRecorder {
	t.Helper()
	return do(t, h, http.MethodPut, "/api/dronedeliveries/"+id, body)
}

func decode[T any](t *testing.T, rec *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("decode %q: %v", rec.Body.String(), err)
	}
	return v
}

func wantAssigned(t *testing.T, rec *httptest.ResponseRecorder) Assignment {
	t.Helper()
	if rec.Code != http.StatusOK {
		t.Fatalf("status = %d, want 200; body %s", rec.Code, rec.Body.String())
	}
	return decode[Assignment](t, rec)
}

func wantProblem(t *testing.T, rec *httptest.ResponseRecorder, status int, code string) web.Problem {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status = %d, want %d; body %s", rec.Code, status, rec.Body.String())
	}
	if ct := rec.Header().Get("Content-Type"); ct != web.ProblemContentType {
		t.Fatalf("Content-Type = %q, want %q", ct, web.ProblemContentType)
	}
	p := decode[web.Problem](t, rec)
	if p.Code != code {
		t.Fatalf("problem code = %q, want %q; body %s", p.Code, code, rec.Body.String())
	}
	return p
}

// stored returns the drone records as the store holds them.
func (f *fixture) stored(t *testing.T) map[string]Drone {
	t.Helper()
	rec := do(t, f.h, http.MethodGet, "/api/drones", nil)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /api/drones = %d: %s", rec.Code, rec.Body.String())
	}
	out := map[string]Drone{}
	for _, d := range decode[[]Drone](t, rec) {
		out[d.ID] = d
	}
	return out
}

func TestAssignPicksNearestCapableDrone(t *testing.T) {
	tests := []struct {
		name   string
		pickup geo.Location
		weight float64
		want   string
	}{
		{"nearest", bellevue, 3, "drone-b"},
		{"nearest in Redmond", redmond, 5, "drone-c"},
		// drone-c in Redmond is nearest but carries only 5 kg.
		{"nearest that can carry", redmond, 8, "drone-b"},
		// drone-a in Seattle carries 10 kg; drone-b (20 kg) is farther.
		{"light drone when enough", seattle, 10, "drone-a"},
		{"heavy package", seattle, 15, "drone-b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, testFleet())
			got := wantAssigned(t, put(t, f.h, "d1", tripBody(tt.pickup, kirkland, testNow, tt.weight)))
			if got.DroneID != tt.want {
				t.Fatalf("drone = %s, want %s", got.DroneID, tt.want)
			}
			if got.Status != StatusAssigned || got.DeliveryID != "d1" {
				t.Fatalf("assignment = %+v", got)
			}
			if d := f.stored(t)[tt.want]; d.AssignedTo != "d1" {
				t.Fatalf("drone %s assignedTo = %q, want d1", tt.want, d.AssignedTo)
			}
		})
	}
}

func TestETAs(t *testing.T) {
	flight := func(km, kmh float64) time.Duration { return time.Duration(km / kmh * float64(time.Hour)) }
	// drone-b flies from Bellevue at 80 km/h.
	toPickup := flight(geo.DistanceKm(bellevue, redmond), 80)
	toDropoff := flight(geo.DistanceKm(redmond, renton), 80)

	t.Run("pickup as soon as the drone gets there", func(t *testing.T) {
		f := newFixture(t, testFleet())
		got := wantAssigned(t, put(t, f.h, "d1", tripBody(redmond, renton, testNow, 8)))
		wantPickup := testNow.Add(toPickup).Round(time.Second)
		if !got.PickupETA.Equal(wantPickup) {
			t.Errorf("pickupEta = %s, want %s", got.PickupETA, wantPickup)
		}
		if want := wantPickup.Add(toDropoff).Round(time.Second); !got.DeliveryETA.Equal(want) {
			t.Errorf("deliveryEta = %s, want %s", got.DeliveryETA, want)
		}
		if !got.AssignedAt.Equal(testNow) {
			t.Errorf("assignedAt = %s, want %s", got.AssignedAt, testNow)
		}
	})
	t.Run("not before the pickup time", func(t *testing.T) {
		f := newFixture(t, testFleet())
		pickupTime := testNow.Add(3 * time.Hour)
		got := wantAssigned(t, put(t, f.h, "d1", tripBody(redmond, renton, pickupTime, 8)))
		if !got.PickupETA.Equal(pickupTime) {
			t.Errorf("pickupEta = %s, want the pickup time %s", got.PickupETA, pickupTime)
		}
		if want := pickupTime.Add(toDropoff).Round(time.Second); !got.DeliveryETA.Equal(want) {
			t.Errorf("deliveryEta = %s, want %s", got.DeliveryETA, want)
		}
	})
}

func TestRepeatedPutReturnsSameDroneAndWritesOneAssignment(t *testing.T) {
	f := newFixture(t, testFleet())
	body := tripBody(bellevue, kirkland, testNow.Add(time.Hour), 3)
	first := put(t, f.h, "d1", body)
	want := wantAssigned(t, first)
	for range 5 {
		rec := put(t, f.h, "d1", body)
		got := wantAssigned(t, rec)
		if got.DroneID != want.DroneID {
			t.Fatalf("drone = %s, want %s", got.DroneID, want.DroneID)
		}
		if rec.Body.String() != first.Body.String() {
			t.Fatalf("repeat answered %s, first %s", rec.Body.String(), first.Body.String())
		}
	}
	if n := f.assignments.Len(); n != 1 {
		t.Fatalf("%d assignment records, want 1", n)
	}
	busy := 0
	for _, d := range f.stored(t) {
		if d.AssignedTo != "" {
			busy++
		}
	}
	if busy != 1 {
		t.Fatalf("%d drones busy, want 1", busy)
	}
	rec := do(t, f.h, http.MethodGet, "/api/dronedeliveries/d1", nil)
	if got := wantAssigned(t, rec); got != want {
		t.Fatalf("GET = %+v, want %+v", got, want)
	}
}

// A crash between claiming the drone and writing the assignment leaves a
// drone assigned to the delivery and no assignment; the retry must take that
// drone, not a nearer one.
func TestPutAfterCrashTakesTheClaimedDrone(t *testing.T) {
	f := newFixture(t, testFleet())
	claim(t, f, "drone-a", "d1")
	got := wantAssigned(t, put(t, f.h, "d1", tripBody(bellevue, kirkland, testNow, 3)))
	if got.DroneID != "drone-a" {
		t.Fatalf("drone = %s, want drone-a (already claimed)", got.DroneID)
	}
	if d := f.stored(t)["drone-b"]; d.AssignedTo != "" {
		t.Fatalf("drone-b assignedTo = %q, want free", d.AssignedTo)
	}
}

// Two racing attempts may each have claimed a drone for the same delivery;
// the repeat keeps the one the assignment names and frees the other.
func TestPutFreesStrayClaims(t *testing.T) {
	f := newFixture(t, testFleet())
	body := tripBody(bellevue, kirkland, testNow, 3)
	want := wantAssigned(t, put(t, f.h, "d1", body))
	claim(t, f, "drone-a", "d1")
	got := wantAssigned(t, put(t, f.h, "d1", body))
	if got.DroneID != want.DroneID {
		t.Fatalf("drone = %s, want %s", got.DroneID, want.DroneID)
	}
	if d := f.stored(t)["drone-a"]; d.AssignedTo != "" {
		t.Fatalf("stray drone-a assignedTo = %q, want free", d.AssignedTo)
	}
}

func claim(t *testing.T, f *fixture, droneID, deliveryID string) {
	t.Helper()
	_, err := f.drones.Update(t.Context(), droneKey(droneID), func(d *Drone, _ bool) (bool, error) {
		d.AssignedTo = deliveryID
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentPutsNeverDoubleBook(t *testing.T) {
	f := newFixture(t, testFleet())
	// A second replica over the same store: the in-process mutex does not
	// protect across replicas, the ETags must.
	h2 := f.seededReplica(t, f.drones)
	const n = 20
	codes := make([]*httptest.ResponseRecorder, n)
	var wg sync.WaitGroup
	for i := range n {
		h := f.h
		if i%2 == 1 {
			h = h2
		}
		wg.Go(func() {
			codes[i] = put(t, h, fmt.Sprintf("d%02d", i), tripBody(bellevue, kirkland, testNow, 4))
		})
	}
	wg.Wait()

	droneOf := map[string]string{} // delivery → drone
	for i, rec := range codes {
		id := fmt.Sprintf("d%02d", i)
		switch rec.Code {
		case http.StatusOK:
			droneOf[id] = decode[Assignment](t, rec).DroneID
		case http.StatusConflict:
			wantProblem(t, rec, http.StatusConflict, codeNoDroneAvailable)
			if ra := rec.Header().Get("Retry-After"); ra == "" {
				t.Errorf("%s: 409 without Retry-After", id)
			}
		default:
			t.Fatalf("%s: status %d: %s", id, rec.Code, rec.Body.String())
		}
	}
	if len(droneOf) != len(testFleet()) {
		t.Fatalf("%d deliveries got a drone, want %d (the whole fleet)", len(droneOf), len(testFleet()))
	}
	owner := map[string]string{} // drone → delivery
	for delivery, drone := range droneOf {
		if other, ok := owner[drone]; ok {
			t.Fatalf("drone %s given to %s and %s", drone, other, delivery)
		}
		owner[drone] = delivery
	}
	for id, d := range f.stored(t) {
		if d.AssignedTo != owner[id] {
			t.Errorf("drone %s assignedTo = %q, want %q", id, d.AssignedTo, owner[id])
		}
	}
	if got := f.assignments.Len(); got != len(droneOf) {
		t.Errorf("%d assignment records, want %d", got, len(droneOf))
	}
}

// losingDrones simulates another replica claiming the chosen drone between
// this replica's read and its claim.
type losingDrones struct {
	*sidecartest.Store[Drone]
	lost atomic.Bool
}

func (s *losingDrones) Replace(ctx context.Context, key string, d Drone, etag string) error {
	if d.AssignedTo != "" && s.lost.CompareAndSwap(false, true) {
		_, err := s.Store.Update(ctx, key, func(v *Drone, _ bool) (bool, error) {
			v.AssignedTo = "other-replica"
			return true, nil
		})
		if err != nil {
			return err
		}
	}
	return s.Store.Replace(ctx, key, d, etag)
}

func TestLostClaimTakesNextNearestDrone(t *testing.T) {
	f := newFixture(t, testFleet())
	h := f.seededReplica(t, &losingDrones{Store: f.drones})
	got := wantAssigned(t, put(t, h, "d1", tripBody(bellevue, kirkland, testNow, 3)))
	if got.DroneID == "drone-b" {
		t.Fatal("got drone-b, which the other replica claimed first")
	}
	drones := f.stored(t)
	if drones["drone-b"].AssignedTo != "other-replica" || drones[got.DroneID].AssignedTo != "d1" {
		t.Fatalf("drones = %+v", drones)
	}
}

func TestTooHeavyIsNoCapableDrone(t *testing.T) {
	f := newFixture(t, testFleet())
	p := wantProblem(t, put(t, f.h, "d1", tripBody(bellevue, kirkland, testNow, 25)), http.StatusUnprocessableEntity, codeNoCapableDrone)
	if !strings.Contains(p.Detail, "25 kg") {
		t.Errorf("detail = %q, want the weight", p.Detail)
	}
	if f.assignments.Len() != 0 {
		t.Error("an assignment was written for a rejected delivery")
	}
}

func TestCapableDronesBusyIsNoDroneAvailable(t *testing.T) {
	f := newFixture(t, testFleet())
	// drone-b is the only drone for 15 kg.
	wantAssigned(t, put(t, f.h, "d1", tripBody(bellevue, kirkland, testNow, 15)))
	rec := put(t, f.h, "d2", tripBody(seattle, kirkland, testNow, 15))
	wantProblem(t, rec, http.StatusConflict, codeNoDroneAvailable)
	if got := rec.Header().Get("Retry-After"); got != fmt.Sprint(noDroneRetryAfter) {
		t.Errorf("Retry-After = %q, want %d", got, noDroneRetryAfter)
	}
	// Lighter packages still find the free drones.
	if got := wantAssigned(t, put(t, f.h, "d3", tripBody(seattle, kirkland, testNow, 5))); got.DroneID != "drone-a" {
		t.Errorf("drone = %s, want drone-a", got.DroneID)
	}
}

func TestDeleteFreesDroneAndBlocksLaterPut(t *testing.T) {
	f := newFixture(t, testFleet())
	body := tripBody(bellevue, kirkland, testNow, 3)
	asg := wantAssigned(t, put(t, f.h, "d1", body))

	for range 2 { // idempotent
		if rec := do(t, f.h, http.MethodDelete, "/api/dronedeliveries/d1", nil); rec.Code != http.StatusNoContent {
			t.Fatalf("DELETE = %d: %s", rec.Code, rec.Body.String())
		}
	}
	if d := f.stored(t)[asg.DroneID]; d.AssignedTo != "" {
		t.Fatalf("drone %s assignedTo = %q after DELETE, want free", asg.DroneID, d.AssignedTo)
	}
	got := wantAssigned(t, do(t, f.h, http.MethodGet, "/api/dronedeliveries/d1", nil))
	if got.Status != StatusReleased || got.ReleasedAt == nil || !got.ReleasedAt.Equal(testNow) || got.DroneID != asg.DroneID {
		t.Fatalf("assignment after DELETE = %+v", got)
	}

	wantProblem(t, put(t, f.h, "d1", body), http.StatusConflict, codeAssignmentReleased)
	if d := f.stored(t)[asg.DroneID]; d.AssignedTo != "" {
		t.Fatalf("late PUT claimed drone %s again", asg.DroneID)
	}
	// The freed drone serves the next delivery.
	if got := wantAssigned(t, put(t, f.h, "d2", body)); got.DroneID != asg.DroneID {
		t.Errorf("next delivery got %s, want the freed %s", got.DroneID, asg.DroneID)
	}
}

func TestDeleteUnknownDeliveryLeavesTombstone(t *testing.T) {
	f := newFixture(t, testFleet())
	if rec := do(t, f.h, http.MethodDelete, "/api/dronedeliveries/ghost", nil); rec.Code != http.StatusNoContent {
		t.Fatalf("DELETE = %d: %s", rec.Code, rec.Body.String())
	}
	got := wantAssigned(t, do(t, f.h, http.MethodGet, "/api/dronedeliveries/ghost", nil))
	if got.Status != StatusReleased || got.DroneID != "" {
		t.Fatalf("tombstone = %+v", got)
	}
	// A PUT that the broker delivered after the cancel must not assign.
	wantProblem(t, put(t, f.h, "ghost", tripBody(bellevue, kirkland, testNow, 3)), http.StatusConflict, codeAssignmentReleased)
	for id, d := range f.stored(t) {
		if d.AssignedTo != "" {
			t.Errorf("drone %s assigned to %q", id, d.AssignedTo)
		}
	}
}

// A PUT that claimed a drone just as a cancel on another replica released the
// delivery finds the release and gives the drone back.
func TestReleasedDeliveryFreesDroneClaimedInRace(t *testing.T) {
	f := newFixture(t, testFleet())
	if rec := do(t, f.h, http.MethodDelete, "/api/dronedeliveries/d1", nil); rec.Code != http.StatusNoContent {
		t.Fatalf("DELETE = %d", rec.Code)
	}
	claim(t, f, "drone-b", "d1")
	wantProblem(t, put(t, f.h, "d1", tripBody(bellevue, kirkland, testNow, 3)), http.StatusConflict, codeAssignmentReleased)
	if d := f.stored(t)["drone-b"]; d.AssignedTo != "" {
		t.Fatalf("drone-b assignedTo = %q, want free", d.AssignedTo)
	}
}

func TestGetUnknownAssignmentIs404(t *testing.T) {
	f := newFixture(t, testFleet())
	wantProblem(t, do(t, f.h, http.MethodGet, "/api/dronedeliveries/nope", nil), http.StatusNotFound, web.CodeNotFound)
}

func TestRescheduleKeepsDroneAndRecomputesETAs(t *testing.T) {
	f := newFixture(t, testFleet())
	before := wantAssigned(t, put(t, f.h, "d1", tripBody(bellevue, kirkland, testNow.Add(time.Hour), 8)))
	later := testNow.Add(4 * time.Hour)
	after := wantAssigned(t, put(t, f.h, "d1", tripBody(bellevue, renton, later, 8)))

	if after.DroneID != before.DroneID {
		t.Fatalf("drone = %s, want the same %s", after.DroneID, before.DroneID)
	}
	if !after.PickupETA.Equal(later) || after.PickupETA.Equal(before.PickupETA) {
		t.Errorf("pickupEta = %s, want %s (was %s)", after.PickupETA, later, before.PickupETA)
	}
	if after.DeliveryETA.Equal(before.DeliveryETA) || !after.DeliveryETA.After(later) {
		t.Errorf("deliveryEta = %s, not recomputed (was %s)", after.DeliveryETA, before.DeliveryETA)
	}
	if after.Dropoff != renton || !after.PickupTime.Equal(later) || !after.AssignedAt.Equal(before.AssignedAt) {
		t.Errorf("rescheduled assignment = %+v", after)
	}
	stored := wantAssigned(t, do(t, f.h, http.MethodGet, "/api/dronedeliveries/d1", nil))
	if stored != after {
		t.Errorf("stored %+v, answered %+v", stored, after)
	}
	if n := f.assignments.Len(); n != 1 {
		t.Errorf("%d assignment records, want 1", n)
	}
}

func TestRescheduleMovesToCapableDrone(t *testing.T) {
	f := newFixture(t, testFleet())
	before := wantAssigned(t, put(t, f.h, "d1", tripBody(seattle, kirkland, testNow, 8)))
	if before.DroneID != "drone-a" {
		t.Fatalf("drone = %s, want drone-a", before.DroneID)
	}
	// drone-a carries 10 kg; 12 kg needs drone-b.
	after := wantAssigned(t, put(t, f.h, "d1", tripBody(seattle, kirkland, testNow, 12)))
	if after.DroneID != "drone-b" {
		t.Fatalf("drone = %s, want drone-b", after.DroneID)
	}
	drones := f.stored(t)
	if drones["drone-a"].AssignedTo != "" || drones["drone-b"].AssignedTo != "d1" {
		t.Fatalf("drones = %+v", drones)
	}
}

func TestRescheduleWithoutFreeDroneKeepsAssignment(t *testing.T) {
	f := newFixture(t, testFleet())
	before := wantAssigned(t, put(t, f.h, "d1", tripBody(seattle, kirkland, testNow, 8)))
	wantAssigned(t, put(t, f.h, "d2", tripBody(bellevue, kirkland, testNow, 15))) // takes drone-b
	wantProblem(t, put(t, f.h, "d1", tripBody(seattle, kirkland, testNow, 12)), http.StatusConflict, codeNoDroneAvailable)
	if got := wantAssigned(t, do(t, f.h, http.MethodGet, "/api/dronedeliveries/d1", nil)); got != before {
		t.Fatalf("assignment changed to %+v", got)
	}
	if d := f.stored(t)["drone-a"]; d.AssignedTo != "d1" {
		t.Fatalf("drone-a assignedTo = %q, want d1", d.AssignedTo)
	}
}

func TestValidation(t *testing.T) {
	f := newFixture(t, testFleet())
	valid := func() map[string]any { return tripBody(bellevue, kirkland, testNow, 3) }
	tests := []struct {
		name  string
		edit  func(map[string]any)
		field string
	}{
		{"missing pickup", func(b map[string]any) { delete(b, "pickup") }, "pickup"},
		{"bad dropoff", func(b map[string]any) { b["dropoff"] = map[string]any{"latitude": 91, "longitude": 0} }, "dropoff"},
		{"missing pickupTime", func(b map[string]any) { delete(b, "pickupTime") }, "pickupTime"},
		{"bad pickupTime", func(b map[string]any) { b["pickupTime"] = "tomorrow" }, "pickupTime"},
		{"zero weight", func(b map[string]any) { b["packageWeight"] = 0 }, "packageWeight"},
		{"weight as text", func(b map[string]any) { b["packageWeight"] = "3" }, "packageWeight"},
		{"bad size", func(b map[string]any) { b["packageSize"] = "Huge" }, "packageSize"},
		{"missing size", func(b map[string]any) { delete(b, "packageSize") }, "packageSize"},
		{"unknown field", func(b map[string]any) { b["droneId"] = "drone-a" }, "droneId"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := valid()
			tt.edit(b)
			p := wantProblem(t, put(t, f.h, "d1", b), http.StatusBadRequest, web.CodeInvalidRequest)
			if len(p.Errors) == 0 || p.Errors[0].Field != tt.field {
				t.Fatalf("errors = %+v, want field %s", p.Errors, tt.field)
			}
		})
	}
	if f.assignments.Len() != 0 {
		t.Error("an invalid request wrote an assignment")
	}
}

func TestStoreDownIs503(t *testing.T) {
	f := newFixture(t, testFleet())
	wantAssigned(t, put(t, f.h, "d1", tripBody(bellevue, kirkland, testNow, 3)))
	down := errors.New("connection refused")
	f.drones.Err, f.assignments.Err = down, down
	requests := []struct {
		method, path string
		body         any
	}{
		{http.MethodPut, "/api/dronedeliveries/d2", tripBody(bellevue, kirkland, testNow, 3)},
		{http.MethodGet, "/api/dronedeliveries/d1", nil},
		{http.MethodDelete, "/api/dronedeliveries/d1", nil},
		{http.MethodGet, "/api/drones", nil},
	}
	for _, r := range requests {
		rec := do(t, f.h, r.method, r.path, r.body)
		wantProblem(t, rec, http.StatusServiceUnavailable, web.CodeUnavailable)
		if rec.Header().Get("Retry-After") == "" {
			t.Errorf("%s %s: 503 without Retry-After", r.method, r.path)
		}
	}
}

func TestDronesListsFleetWithAssignments(t *testing.T) {
	f := newFixture(t, testFleet())
	wantAssigned(t, put(t, f.h, "d1", tripBody(bellevue, kirkland, testNow, 3)))
	rec := do(t, f.h, http.MethodGet, "/api/drones", nil)
	if rec.Code != http.StatusOK {
		t.Fatalf("status = %d", rec.Code)
	}
	var raw []map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	if len(raw) != 3 || raw[0]["id"] != "drone-a" || raw[1]["assignedTo"] != "d1" || raw[0]["assignedTo"] != "" {
		t.Fatalf("drones = %s", rec.Body.String())
	}
	for _, k := range []string{"id", "base", "maxPayloadKg", "speedKmh", "assignedTo"} {
		if _, ok := raw[0][k]; !ok {
			t.Errorf("drone has no %q: %v", k, raw[0])
		}
	}
}

// flakyDrones fails the first creates, as a store does while its sidecar is
// still starting.
type flakyDrones struct {
	*sidecartest.Store[Drone]
	failures atomic.Int32
}

func (s *flakyDrones) Create(ctx context.Context, key string, d Drone) error {
	if s.failures.Add(-1) >= 0 {
		return errors.New("sidecar not ready")
	}
	return s.Store.Create(ctx, key, d)
}

func TestHealthzWaitsForSeeding(t *testing.T) {
	store := &flakyDrones{Store: sidecartest.NewStore[Drone]()}
	store.failures.Store(2)
	f := &fixture{drones: store.Store, assignments: sidecartest.NewStore[Assignment]()}
	a, h := f.replica(testFleet(), store)

	wantProblem(t, do(t, h, http.MethodGet, "/healthz", nil), http.StatusServiceUnavailable, web.CodeUnavailable)
	wantProblem(t, put(t, h, "d1", tripBody(bellevue, kirkland, testNow, 3)), http.StatusServiceUnavailable, web.CodeUnavailable)

	if err := a.seed(t.Context()); err != nil {
		t.Fatalf("seed: %v", err)
	}
	if rec := do(t, h, http.MethodGet, "/healthz", nil); rec.Code != http.StatusOK {
		t.Fatalf("healthz after seeding = %d: %s", rec.Code, rec.Body.String())
	}
	if got := store.Len(); got != 3 {
		t.Fatalf("%d drones seeded, want 3", got)
	}
	wantAssigned(t, put(t, h, "d1", tripBody(bellevue, kirkland, testNow, 3)))
}

func TestSeedStopsWithContext(t *testing.T) {
	store := &flakyDrones{Store: sidecartest.NewStore[Drone]()}
	store.failures.Store(1 << 30)
	f := &fixture{drones: store.Store, assignments: sidecartest.NewStore[Assignment]()}
	a, _ := f.replica(testFleet(), store)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if err := a.seed(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("seed = %v, want the context's error", err)
	}
	if a.ready.Load() {
		t.Fatal("ready without a seeded fleet")
	}
}

// Seeding again, as a restart or another replica does, keeps assignments.
func TestSeedKeepsExistingRecords(t *testing.T) {
	f := newFixture(t, testFleet())
	wantAssigned(t, put(t, f.h, "d1", tripBody(bellevue, kirkland, testNow, 3)))
	if err := f.api.seed(t.Context()); err != nil {
		t.Fatal(err)
	}
	if d := f.stored(t)["drone-b"]; d.AssignedTo != "d1" {
		t.Fatalf("reseeding freed drone-b (assignedTo = %q)", d.AssignedTo)
	}
}

// interleavedAssignments runs step once, just before the first assignment
// write, as another replica acting at that moment would.
type interleavedAssignments struct {
	*sidecartest.Store[Assignment]
	step func()
	once sync.Once
}

func (s *interleavedAssignments) Create(ctx context.Context, key string, v Assignment) error {
	s.once.Do(s.step)
	return s.Store.Create(ctx, key, v)
}

// The cancel lands after the PUT claimed a drone and before it wrote the
// assignment: the PUT must give the drone back and report the release.
func TestCancelBetweenClaimAndAssignment(t *testing.T) {
	f := newFixture(t, testFleet())
	other := f.seededReplica(t, f.drones)
	racing := &interleavedAssignments{Store: f.assignments, step: func() {
		if rec := do(t, other, http.MethodDelete, "/api/dronedeliveries/d1", nil); rec.Code != http.StatusNoContent {
			t.Errorf("DELETE = %d", rec.Code)
		}
	}}
	a := newAPI(f.api.log, f.api.fleet, f.drones, racing, f.api.now)
	a.ready.Store(true)
	h := web.NewRouter(a.log)
	a.routes(h)

	wantProblem(t, put(t, h, "d1", tripBody(bellevue, kirkland, testNow, 3)), http.StatusConflict, codeAssignmentReleased)
	for id, d := range f.stored(t) {
		if d.AssignedTo != "" {
			t.Errorf("drone %s assigned to %q after the cancel", id, d.AssignedTo)
		}
	}
	if got := wantAssigned(t, do(t, f.h, http.MethodGet, "/api/dronedeliveries/d1", nil)); got.Status != StatusReleased {
		t.Fatalf("assignment = %+v, want released", got)
	}
}

// The same delivery PUT on two replicas at once ends with one drone.
func TestSamePutOnTwoReplicas(t *testing.T) {
	f := newFixture(t, testFleet())
	other := f.seededReplica(t, f.drones)
	body := tripBody(bellevue, kirkland, testNow, 3)
	var first Assignment
	racing := &interleavedAssignments{Store: f.assignments, step: func() {
		first = wantAssigned(t, put(t, other, "d1", body))
	}}
	a := newAPI(f.api.log, f.api.fleet, f.drones, racing, f.api.now)
	a.ready.Store(true)
	h := web.NewRouter(a.log)
	a.routes(h)

	got := wantAssigned(t, put(t, h, "d1", body))
	if got != first {
		t.Fatalf("answers differ: %+v and %+v", got, first)
	}
	busy := 0
	for _, d := range f.stored(t) {
		if d.AssignedTo != "" {
			busy++
		}
	}
	if busy != 1 || f.assignments.Len() != 1 {
		t.Fatalf("%d drones busy and %d assignments, want 1 and 1", busy, f.assignments.Len())
	}
}

// touchingDrones rewrites a drone record, unchanged, just before it is first
// freed, so that the ETag the release read with is stale.
type touchingDrones struct {
	*sidecartest.Store[Drone]
	touched atomic.Bool
}

func (s *touchingDrones) Replace(ctx context.Context, key string, d Drone, etag string) error {
	if d.AssignedTo == "" && s.touched.CompareAndSwap(false, true) {
		if _, err := s.Store.Update(ctx, key, func(*Drone, bool) (bool, error) { return true, nil }); err != nil {
			return err
		}
	}
	return s.Store.Replace(ctx, key, d, etag)
}

func TestDeleteRetriesOnStaleDroneETag(t *testing.T) {
	f := newFixture(t, testFleet())
	asg := wantAssigned(t, put(t, f.h, "d1", tripBody(bellevue, kirkland, testNow, 3)))
	h := f.seededReplica(t, &touchingDrones{Store: f.drones})
	if rec := do(t, h, http.MethodDelete, "/api/dronedeliveries/d1", nil); rec.Code != http.StatusNoContent {
		t.Fatalf("DELETE = %d: %s", rec.Code, rec.Body.String())
	}
	if d := f.stored(t)[asg.DroneID]; d.AssignedTo != "" {
		t.Fatalf("drone %s assignedTo = %q, want free", asg.DroneID, d.AssignedTo)
	}
}

// interleavedDrones runs step once, just before the first fleet read.
type interleavedDrones struct {
	*sidecartest.Store[Drone]
	step func()
	once sync.Once
}

func (s *interleavedDrones) GetBulk(ctx context.Context, keys []string) (map[string]sidecar.Item[Drone], error) {
	s.once.Do(s.step)
	return s.Store.GetBulk(ctx, keys)
}

// A repeated PUT read the assignment just before a cancel on another replica
// released it and freed the drone: the PUT must not take the drone back.
func TestRepeatedPutRacingCancelDoesNotReclaim(t *testing.T) {
	f := newFixture(t, testFleet())
	body := tripBody(bellevue, kirkland, testNow, 3)
	asg := wantAssigned(t, put(t, f.h, "d1", body))
	other := f.seededReplica(t, f.drones)
	h := f.seededReplica(t, &interleavedDrones{Store: f.drones, step: func() {
		if rec := do(t, other, http.MethodDelete, "/api/dronedeliveries/d1", nil); rec.Code != http.StatusNoContent {
			t.Errorf("DELETE = %d", rec.Code)
		}
	}})

	wantProblem(t, put(t, h, "d1", body), http.StatusConflict, codeAssignmentReleased)
	if d := f.stored(t)[asg.DroneID]; d.AssignedTo != "" {
		t.Fatalf("drone %s assignedTo = %q after the cancel, want free", asg.DroneID, d.AssignedTo)
	}
}
