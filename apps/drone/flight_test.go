package main

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/fabrikam/dronedelivery/internal/geo"
	"github.com/fabrikam/dronedelivery/internal/messages"
	"github.com/fabrikam/dronedelivery/internal/web"
)

const testTick = time.Second

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeWaiter
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock(now time.Time) *fakeClock { return &fakeClock{now: now} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, fakeWaiter{at: c.now.Add(d), ch: ch})
	return ch
}

// Advance moves the clock on and fires the timers that are due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if w.at.After(c.now) {
			kept = append(kept, w)
			continue
		}
		w.ch <- c.now
	}
	c.waiters = kept
}

// fakePublisher records the reports the simulation publishes.
type fakePublisher struct {
	mu   sync.Mutex
	ids  []string
	reps []messages.DroneStatusReport
	err  error
}

func (p *fakePublisher) PublishWithID(_ context.Context, topic, eventType, key, id string, data any) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return p.err
	}
	r, ok := data.(messages.DroneStatusReport)
	if topic != messages.TopicDroneStatus || eventType != messages.TypeDroneStatus || !ok || key != r.DeliveryID {
		panic("unexpected publish " + topic + " " + eventType)
	}
	p.ids, p.reps = append(p.ids, id), append(p.reps, r)
	return nil
}

func (p *fakePublisher) reports() []messages.DroneStatusReport {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]messages.DroneStatusReport(nil), p.reps...)
}

// flying is a fixture with the flight simulation running over the API's
// stores, on a fake clock.
type flying struct {
	*fixture
	clock *fakeClock
	pub   *fakePublisher
	fl    *flights
	stop  func()
}

func newFlying(t *testing.T, lead time.Duration) *flying {
	t.Helper()
	f := &flying{fixture: newFixture(t, testFleet()), clock: newFakeClock(testNow), pub: &fakePublisher{}}
	f.start(t, lead)
	return f
}

// start runs a simulation process; stop ends it, as a crash of the
// process would (nothing is kept but what is stored).
func (f *flying) start(t *testing.T, lead time.Duration) {
	t.Helper()
	f.fl = newFlights(slog.New(slog.DiscardHandler), f.api.fleet, f.drones, f.assignments, f.pub, f.clock,
		flightConfig{Tick: testTick, TimeScale: 60, Lead: lead})
	f.api.flights, f.api.timeScale = f.fl, 60
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = f.fl.Run(ctx)
	}()
	f.stop = func() {
		cancel()
		<-done
	}
	t.Cleanup(f.stop)
}

// until advances the clock a tick at a time until cond holds.
func (f *flying) until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; reports: %v", what, statuses(f.pub.reports()))
		}
		f.clock.Advance(testTick)
		time.Sleep(time.Millisecond)
	}
}

func (f *flying) last() messages.DroneStatusReport {
	r := f.pub.reports()
	if len(r) == 0 {
		return messages.DroneStatusReport{}
	}
	return r[len(r)-1]
}

func (f *flying) reached(s messages.DroneStatus) func() bool {
	return func() bool {
		for _, r := range f.pub.reports() {
			if r.Status == s {
				return true
			}
		}
		return false
	}
}

func statuses(rs []messages.DroneStatusReport) []messages.DroneStatus {
	out := make([]messages.DroneStatus, len(rs))
	for i, r := range rs {
		out[i] = r.Status
	}
	return out
}

func confirmBody(pickup, dropoff geo.Location, pickupTime time.Time, confirmation string) map[string]any {
	b := tripBody(pickup, dropoff, pickupTime, 3)
	b["confirmationRequired"] = confirmation
	return b
}

func TestFlightLegsAndReports(t *testing.T) {
	t.Parallel()
	tests := []struct {
		confirmation string
		wantRef      bool
	}{
		{messages.ConfirmFingerPrint, true},
		{messages.ConfirmPicture, true},
		{messages.ConfirmVoice, true},
		{messages.ConfirmNone, false},
	}
	for _, tt := range tests {
		t.Run(tt.confirmation, func(t *testing.T) {
			t.Parallel()
			f := newFlying(t, time.Minute)
			// drone-b takes off from Bellevue for a pickup 4 km away, then
			// Kirkland.
			pickup := geo.Location{Latitude: 47.62, Longitude: -122.25}
			asg := wantAssigned(t, put(t, f.h, "d1", confirmBody(pickup, kirkland, testNow, tt.confirmation)))
			f.until(t, "landing", f.reached(messages.DroneLanded))

			reps := f.pub.reports()
			d := testFleet()[1]
			if asg.DroneID != d.ID {
				t.Fatalf("drone %s, want %s", asg.DroneID, d.ID)
			}
			order := []messages.DroneStatus{
				messages.DroneHeadedToPickup, messages.DronePickedUp, messages.DroneHeadedToDropoff,
				messages.DroneDroppedOff, messages.DroneReturning, messages.DroneLanded,
			}
			stage := 0
			for i, r := range reps {
				if r.Sequence != uint64(i+1) || f.pub.ids[i] != reportID(d.ID, r.Sequence) {
					t.Errorf("report %d has sequence %d id %s", i, r.Sequence, f.pub.ids[i])
				}
				for stage < len(order) && order[stage] != r.Status {
					stage++
				}
				if stage == len(order) {
					t.Fatalf("report %d (%s) out of order: %v", i, r.Status, statuses(reps))
				}
				if r.DroneID != d.ID || r.DeliveryID != "d1" || r.SpeedKmh != d.SpeedKmh || r.TimeScale != 60 {
					t.Errorf("report %d: %+v", i, r)
				}
				if r.Position.Altitude < 0 || r.Position.Altitude > cruiseAltitudeM {
					t.Errorf("report %d at %v m", i, r.Position.Altitude)
				}
				if i > 0 {
					// At most two ticks (the clock may have moved twice
					// between two steps) at 60 times the drone's speed;
					// interpolating coordinates costs a little accuracy.
					if km := geo.DistanceKm(reps[i-1].Position, r.Position); km > 2*d.SpeedKmh/60*1.01 {
						t.Errorf("report %d moved %.3f km in a tick", i, km)
					}
				}
			}
			at := func(s messages.DroneStatus) messages.DroneStatusReport {
				for _, r := range reps {
					if r.Status == s {
						return r
					}
				}
				t.Fatalf("no %s report", s)
				return messages.DroneStatusReport{}
			}
			for _, c := range []struct {
				s     messages.DroneStatus
				where geo.Location
			}{
				{messages.DroneHeadedToPickup, d.Base}, {messages.DronePickedUp, pickup},
				{messages.DroneDroppedOff, kirkland}, {messages.DroneLanded, d.Base},
			} {
				r := at(c.s)
				if geo.DistanceKm(r.Position, c.where) > 1e-6 || r.Position.Altitude != 0 {
					t.Errorf("%s at %+v, want on the ground at %+v", c.s, r.Position, c.where)
				}
			}
			if mid := at(messages.DroneHeadedToDropoff); mid.Position.Altitude <= 0 {
				t.Errorf("headed to the drop-off at altitude %v, want airborne", mid.Position.Altitude)
			}
			drop := at(messages.DroneDroppedOff)
			c := drop.Confirmation
			if c == nil || c.Type != tt.confirmation || (c.Reference != "") != tt.wantRef || drop.DroppedOffAt == nil || drop.PickedUpAt == nil {
				t.Errorf("drop-off report %+v confirmation %+v", drop, c)
			}
			if land := f.last(); land.Confirmation == nil || land.Aborted {
				t.Errorf("landing report %+v, want it to carry the confirmation", land)
			}

			// Landed: the drone is free, the assignment records the flight.
			f.until(t, "the drone freed", func() bool { return f.stored(t)[d.ID].AssignedTo == "" })
			if dr := f.stored(t)[d.ID]; dr.Flight != nil || dr.Seq != uint64(len(reps)) {
				t.Errorf("drone after landing: %+v, want no flight and seq %d", dr, len(reps))
			}
			done := decode[Assignment](t, do(t, f.h, http.MethodGet, "/api/dronedeliveries/d1", nil))
			if done.Status != StatusCompleted || done.CompletedAt == nil || done.Confirmation == nil || done.Confirmation.Type != tt.confirmation {
				t.Errorf("assignment after landing: %+v", done)
			}
		})
	}
}

func TestFlightWaitsForItsDepartureTime(t *testing.T) {
	t.Parallel()
	f := newFlying(t, 5*time.Minute)
	wantAssigned(t, put(t, f.h, "d1", tripBody(bellevue, kirkland, testNow.Add(30*time.Minute), 3)))
	// Until 5 minutes before the pickup time, nothing flies.
	for f.clock.Now().Before(testNow.Add(24 * time.Minute)) {
		f.clock.Advance(time.Minute)
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	if n := len(f.pub.reports()); n != 0 {
		t.Fatalf("%d reports 6 minutes before the pickup time, want none", n)
	}
	if dr := f.stored(t)["drone-b"]; dr.Flight == nil || dr.Flight.Phase != PhasePlanned {
		t.Fatalf("drone-b: %+v, want a planned flight", dr.Flight)
	}
	f.until(t, "take-off", func() bool { return len(f.pub.reports()) > 0 })
	first := f.pub.reports()[0]
	if first.Status != messages.DroneHeadedToPickup || first.Timestamp.Before(testNow.Add(25*time.Minute)) {
		t.Errorf("first report %s at %s, want headed to pickup from %s on", first.Status, first.Timestamp, testNow.Add(25*time.Minute))
	}
}

func TestRescheduleMovesAPlannedFlight(t *testing.T) {
	t.Parallel()
	f := newFlying(t, time.Minute)
	wantAssigned(t, put(t, f.h, "d1", tripBody(bellevue, kirkland, testNow.Add(time.Hour), 3)))
	later := testNow.Add(3 * time.Hour)
	wantAssigned(t, put(t, f.h, "d1", tripBody(bellevue, redmond, later, 3)))
	dr := f.stored(t)["drone-b"]
	if dr.Flight == nil || !dr.Flight.PickupTime.Equal(later) || dr.Flight.Dropoff != redmond {
		t.Fatalf("plan after the reschedule: %+v", dr.Flight)
	}
	f.clock.Advance(90 * time.Minute)
	time.Sleep(20 * time.Millisecond)
	if n := len(f.pub.reports()); n != 0 {
		t.Fatalf("the drone took off at the old pickup time (%d reports)", n)
	}
}

func TestChangesAfterTakeOffAreRefused(t *testing.T) {
	t.Parallel()
	f := newFlying(t, time.Minute)
	body := tripBody(bellevue, kirkland, testNow, 3)
	asg := wantAssigned(t, put(t, f.h, "d1", body))
	f.until(t, "take-off", func() bool { return len(f.pub.reports()) > 0 })

	// A repeat of the PUT is answered as before; a change is refused.
	if again := wantAssigned(t, put(t, f.h, "d1", body)); again != asg {
		t.Errorf("repeat in flight: %+v, want %+v", again, asg)
	}
	wantProblem(t, put(t, f.h, "d1", tripBody(bellevue, redmond, testNow, 3)), http.StatusConflict, codeFlightStarted)

	f.until(t, "the drone freed", func() bool { return f.stored(t)["drone-b"].AssignedTo == "" })
	// After the flight: the same, and the drone is not claimed again.
	if again := wantAssigned(t, put(t, f.h, "d1", body)); again.Status != StatusCompleted {
		t.Errorf("repeat after landing: %+v, want the completed assignment", again)
	}
	wantProblem(t, put(t, f.h, "d1", tripBody(bellevue, redmond, testNow, 3)), http.StatusConflict, codeFlightStarted)
	if dr := f.stored(t)["drone-b"]; dr.AssignedTo != "" || dr.Flight != nil {
		t.Errorf("drone-b after repeats: %+v, want free", dr)
	}
	// A DELETE after the flight leaves the record of it.
	if rec := do(t, f.h, http.MethodDelete, "/api/dronedeliveries/d1", nil); rec.Code != http.StatusNoContent {
		t.Fatalf("DELETE = %d", rec.Code)
	}
	if got := decode[Assignment](t, do(t, f.h, http.MethodGet, "/api/dronedeliveries/d1", nil)); got.Status != StatusCompleted {
		t.Errorf("assignment after a late DELETE: %s, want completed", got.Status)
	}
}

func TestCancelTurnsTheDroneBack(t *testing.T) {
	t.Parallel()
	f := newFlying(t, time.Minute)
	// drone-b (20 kg) from Bellevue.
	wantAssigned(t, put(t, f.h, "d1", tripBody(seattle, renton, testNow, 15)))
	f.until(t, "headed to the drop-off", f.reached(messages.DroneHeadedToDropoff))

	if rec := do(t, f.h, http.MethodDelete, "/api/dronedeliveries/d1", nil); rec.Code != http.StatusNoContent {
		t.Fatalf("DELETE = %d: %s", rec.Code, rec.Body.String())
	}
	// Still held while in the air: no other delivery can have it.
	dr := f.stored(t)["drone-b"]
	if dr.AssignedTo != "d1" || dr.Flight == nil || !dr.Flight.Aborted || dr.Flight.Phase != PhaseReturning {
		t.Fatalf("drone-b after the cancel: assigned %q flight %+v, want turned back", dr.AssignedTo, dr.Flight)
	}
	wantProblem(t, put(t, f.h, "d2", tripBody(bellevue, kirkland, testNow, 15)), http.StatusConflict, codeNoDroneAvailable)

	turnedAt := len(f.pub.reports())
	f.until(t, "the drone freed", func() bool { return f.stored(t)["drone-b"].AssignedTo == "" })
	home := f.pub.reports()[turnedAt:]
	base := testFleet()[1].Base
	for i, r := range home {
		if !r.Aborted || r.Confirmation != nil {
			t.Errorf("report after the cancel %+v, want aborted without a confirmation", r)
		}
		if i > 0 && geo.DistanceKm(r.Position, base) > geo.DistanceKm(home[i-1].Position, base) {
			t.Errorf("report %d flew away from base", r.Sequence)
		}
	}
	if last := home[len(home)-1]; last.Status != messages.DroneLanded || geo.DistanceKm(last.Position, base) > 1e-6 {
		t.Errorf("last report %s at %+v, want landed at base", last.Status, last.Position)
	}
	if got := decode[Assignment](t, do(t, f.h, http.MethodGet, "/api/dronedeliveries/d1", nil)); got.Status != StatusReleased {
		t.Errorf("assignment %s, want released", got.Status)
	}
	// Free again, it takes the next delivery.
	if got := wantAssigned(t, put(t, f.h, "d2", tripBody(bellevue, kirkland, testNow, 15))); got.DroneID != "drone-b" {
		t.Errorf("next delivery got %s, want drone-b", got.DroneID)
	}
}

func TestFlightResumesWhereItWasAfterARestart(t *testing.T) {
	t.Parallel()
	f := newFlying(t, time.Minute)
	wantAssigned(t, put(t, f.h, "d1", tripBody(seattle, renton, testNow, 8)))
	f.until(t, "headed to the drop-off", f.reached(messages.DroneHeadedToDropoff))
	f.stop()
	before := f.last()

	// Down for an hour of clock: the drone does not jump ahead when the
	// process comes back, and its reports carry on numbering.
	f.clock.Advance(time.Hour)
	f.start(t, time.Minute)
	f.until(t, "a report after the restart", func() bool { return f.last().Sequence > before.Sequence })
	after := f.pub.reports()
	next := after[len(after)-1]
	for _, r := range after {
		if r.Sequence == before.Sequence+1 {
			next = r
		}
	}
	if next.Sequence != before.Sequence+1 {
		t.Errorf("first report after the restart has sequence %d, want %d", next.Sequence, before.Sequence+1)
	}
	// Two ticks at most: 2 km at 60 km/h × 60.
	if km := geo.DistanceKm(before.Position, next.Position); km > 2.0001 {
		t.Errorf("drone moved %.2f km across the restart", km)
	}
	f.until(t, "landing", f.reached(messages.DroneLanded))
}

func TestReportLostWhenPublishFails(t *testing.T) {
	t.Parallel()
	f := newFlying(t, time.Minute)
	f.pub.mu.Lock()
	f.pub.err = context.DeadlineExceeded
	f.pub.mu.Unlock()
	wantAssigned(t, put(t, f.h, "d1", tripBody(bellevue, kirkland, testNow, 3)))
	// The flight goes on, stored step by step, while reports cannot go out.
	f.until(t, "the drone moving", func() bool {
		dr := f.stored(t)["drone-b"]
		return dr.Flight != nil && dr.Flight.Phase == PhaseToDropoff
	})
	f.pub.mu.Lock()
	f.pub.err = nil
	f.pub.mu.Unlock()
	f.until(t, "a report", func() bool { return len(f.pub.reports()) > 0 })
	if r := f.pub.reports()[0]; r.Sequence <= 1 || r.PickedUpAt == nil {
		t.Errorf("first report delivered: %+v, want a later one that still says the package was picked up", r)
	}
}

func TestAbort(t *testing.T) {
	t.Parallel()
	tests := []struct {
		phase Phase
		want  bool
	}{
		{PhasePlanned, false},
		{PhaseToPickup, true},
		{PhaseToDropoff, true},
		{PhaseReturning, false},
	}
	for _, tt := range tests {
		pos := geo.Location{Latitude: 47.6, Longitude: -122.3, Altitude: 80}
		f := Flight{Phase: tt.phase, Position: pos}
		if got := f.abort(); got != tt.want {
			t.Errorf("abort in %s = %v, want %v", tt.phase, got, tt.want)
		}
		if tt.want && (f.Phase != PhaseReturning || !f.Aborted || f.LegFrom != pos) {
			t.Errorf("aborted in %s: %+v", tt.phase, f)
		}
	}
}

func TestAdvanceCountsAtMostMaxStep(t *testing.T) {
	t.Parallel()
	f := Flight{Phase: PhaseToDropoff, Position: seattle, LegFrom: seattle, Dropoff: renton, MovedAt: testNow}
	// A day since the last move, but only two seconds counted: at 60 km/h
	// × 60 that is two kilometres.
	status, landed := f.advance("x", seattle, 60, 60, testNow.Add(24*time.Hour), 2*time.Second)
	if status != messages.DroneHeadedToDropoff || landed {
		t.Fatalf("status %s landed %v", status, landed)
	}
	if km := geo.DistanceKm(seattle, f.Position); km < 1.99 || km > 2.01 {
		t.Errorf("moved %.3f km, want 2", km)
	}
	if !f.MovedAt.Equal(testNow.Add(24 * time.Hour)) {
		t.Errorf("MovedAt %s", f.MovedAt)
	}
}

func TestAltitudeProfile(t *testing.T) {
	t.Parallel()
	tests := []struct {
		from, to, want float64
	}{
		{0, 5, 0}, {5, 0, 0}, {0.1, 5, 40}, {5, 0.15, 60}, {1, 1, cruiseAltitudeM}, {0.3, 0.3, cruiseAltitudeM},
	}
	for _, tt := range tests {
		if got := altitude(tt.from, tt.to); got != tt.want {
			t.Errorf("altitude(%v, %v) = %v, want %v", tt.from, tt.to, got, tt.want)
		}
	}
}

func TestConfirmationValidated(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testFleet())
	rec := put(t, f.h, "d1", confirmBody(bellevue, kirkland, testNow, "Smile"))
	p := wantProblem(t, rec, http.StatusBadRequest, web.CodeInvalidRequest)
	if len(p.Errors) != 1 || p.Errors[0].Field != "confirmationRequired" {
		t.Errorf("problem %+v, want confirmationRequired named", p)
	}
}
