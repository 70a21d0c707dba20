package main

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/fabrikam/dronedelivery/internal/messages"
	"github.com/fabrikam/dronedelivery/internal/sidecar"
)

// clock is the time source of the flight simulation; tests drive a fake one.
type clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// eventPublisher publishes a CloudEvent with a chosen id, so that a report
// published twice is recognisably the same report.
type eventPublisher interface {
	PublishWithID(ctx context.Context, topic, eventType, key, id string, data any) error
}

// flightConfig tunes the simulation.
type flightConfig struct {
	// Tick is the wall-clock interval between two reports of a drone in
	// flight.
	Tick time.Duration
	// TimeScale speeds simulated time up: at 60 a drone covers in a second
	// what it would in a minute.
	TimeScale float64
	// Lead is how long before its pickup time a drone takes off; a pickup
	// time closer than that, or past, means at once.
	Lead time.Duration
}

// callTimeout bounds every sidecar call of the simulation, which runs
// outside any request and would otherwise wait on a stuck sidecar forever.
const callTimeout = 5 * time.Second

// flights flies the drones. Everything about a flight lives in the drone's
// record; what is kept here is only which drones have a goroutine looking
// after them, so a restarted process loses nothing: Run finds the drones
// with a flight in the store and carries on.
type flights struct {
	log    *slog.Logger
	drones droneStore
	asg    sidecar.Versioned[Assignment]
	pub    eventPublisher
	clock  clock
	cfg    flightConfig
	keys   []string

	mu      sync.Mutex
	woken   map[string]bool          // drones to look at, not yet dispatched
	running map[string]chan struct{} // drones with a goroutine, and how to poke it
	signal  chan struct{}
	wg      sync.WaitGroup
}

func newFlights(log *slog.Logger, fleet []Drone, drones droneStore, asg sidecar.Versioned[Assignment],
	pub eventPublisher, c clock, cfg flightConfig) *flights {
	keys := make([]string, len(fleet))
	for i, d := range fleet {
		keys[i] = droneKey(d.ID)
	}
	if cfg.TimeScale <= 0 {
		cfg.TimeScale = 1
	}
	return &flights{
		log: log, drones: drones, asg: asg, pub: pub, clock: c, cfg: cfg, keys: keys,
		woken: map[string]bool{}, running: map[string]chan struct{}{}, signal: make(chan struct{}, 1),
	}
}

// Wake asks for drone id to be looked at: a flight was planned, changed or
// turned back. It never blocks, so handlers may call it at any time, also
// before Run has started.
func (f *flights) Wake(id string) {
	f.mu.Lock()
	f.woken[id] = true
	f.mu.Unlock()
	select {
	case f.signal <- struct{}{}:
	default:
	}
}

// Run resumes every flight found in the store, then flies the drones it is
// woken for until ctx ends, and waits for their goroutines to stop.
func (f *flights) Run(ctx context.Context) error {
	defer f.wg.Wait()
	if err := f.resume(ctx); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-f.signal:
			f.dispatch(ctx)
		}
	}
}

// resume wakes every drone whose record holds a flight, retrying the fleet
// read until it succeeds: the sidecar may still be starting.
func (f *flights) resume(ctx context.Context) error {
	wait := seedMinBackoff
	for {
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		bulk, err := f.drones.GetBulk(cctx, f.keys)
		cancel()
		if err == nil {
			n := 0
			for _, it := range bulk {
				if it.Value.Flight != nil {
					f.Wake(it.Value.ID)
					n++
				}
			}
			f.log.InfoContext(ctx, "flights resumed", "flights", n)
			return nil
		}
		f.log.Log(ctx, seedLogLevel(wait), "reading the fleet to resume flights failed; retrying", "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(wait*2, seedMaxBackoff)
	}
}

// dispatch starts a goroutine for every woken drone that has none, and pokes
// the ones that have.
func (f *flights) dispatch(ctx context.Context) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id := range f.woken {
		delete(f.woken, id)
		if poke, ok := f.running[id]; ok {
			select {
			case poke <- struct{}{}:
			default: // already poked
			}
			continue
		}
		poke := make(chan struct{}, 1)
		f.running[id] = poke
		f.wg.Go(func() { f.fly(ctx, id, poke) })
	}
}

// done removes the goroutine of drone id from the running set, unless it was
// poked since it last looked: then the drone may have a new flight, and the
// goroutine must look again.
func (f *flights) done(id string, poke chan struct{}) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	select {
	case <-poke:
		return false
	default:
		delete(f.running, id)
		return true
	}
}

// fly looks after drone id until it has no flight: it waits for the planned
// departure, departs, and then moves the drone on at every tick, storing
// each step before reporting it, until the drone has landed.
func (f *flights) fly(ctx context.Context, id string, poke chan struct{}) {
	for ctx.Err() == nil {
		wait, err := f.step(ctx, id)
		switch {
		case err != nil:
			f.log.WarnContext(ctx, "flight step failed; retrying", "droneId", id, "err", err)
			wait = f.cfg.Tick
		case wait < 0:
			if f.done(id, poke) {
				return
			}
			continue
		case wait == 0:
			continue
		}
		select {
		case <-ctx.Done():
		case <-poke:
		case <-f.clock.After(wait):
		}
	}
}

// step does what drone id needs next and says how long to wait before the
// next step: <0 when the drone has no flight, 0 to step again at once.
func (f *flights) step(ctx context.Context, id string) (time.Duration, error) {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	d, etag, found, err := f.drones.Get(cctx, droneKey(id))
	if err != nil {
		return 0, err
	}
	if !found || d.Flight == nil {
		return -1, nil
	}
	now := f.clock.Now()
	fl := *d.Flight
	var status messages.DroneStatus
	departing, landed := fl.Phase == PhasePlanned, false
	if departing {
		if departAt := fl.PickupTime.Add(-f.cfg.Lead); now.Before(departAt) {
			return departAt.Sub(now), nil
		}
		status = fl.depart(d.Base, now)
	} else {
		if due := fl.MovedAt.Add(f.cfg.Tick); now.Before(due) {
			return due.Sub(now), nil
		}
		status, landed = fl.advance(d.ID, d.Base, d.SpeedKmh, f.cfg.TimeScale, now, 2*f.cfg.Tick)
	}
	next := d
	next.Seq++
	next.Flight = &fl
	if landed {
		// The assignment records the outcome before the drone is freed, so
		// that a repeated PUT for the delivery never finds the drone free
		// and the assignment open, and claims the drone a second time.
		if err := f.complete(cctx, d.ID, fl, now); err != nil {
			return 0, err
		}
		next.Flight = nil
		if next.AssignedTo == fl.DeliveryID {
			next.AssignedTo = ""
		}
	}
	if err := f.drones.Replace(cctx, droneKey(id), next, etag); err != nil {
		if errors.Is(err, sidecar.ErrConflict) {
			return 0, nil // a cancel or a reschedule changed the drone: look again
		}
		return 0, err
	}
	// Stored first, reported second: a crash in between loses one report,
	// and the next one, a full snapshot, makes up for it.
	ev := report(next, fl, status, now, f.cfg.TimeScale)
	if err := f.pub.PublishWithID(cctx, messages.TopicDroneStatus, messages.TypeDroneStatus, fl.DeliveryID,
		reportID(d.ID, next.Seq), ev); err != nil {
		f.log.WarnContext(ctx, "drone status report lost", "droneId", id, "seq", next.Seq, "err", err)
	}
	switch {
	case departing:
		f.log.InfoContext(ctx, "drone departed", "droneId", id, "deliveryId", fl.DeliveryID)
	case status == messages.DronePickedUp, status == messages.DroneDroppedOff, status == messages.DroneLanded:
		f.log.InfoContext(ctx, "drone "+string(status), "droneId", id, "deliveryId", fl.DeliveryID,
			"aborted", fl.Aborted, "seq", next.Seq)
	}
	if landed {
		return -1, nil
	}
	// Ticks are counted from the step's start, so that the time a step takes
	// does not stretch the interval between reports.
	return max(now.Add(f.cfg.Tick).Sub(f.clock.Now()), 0), nil
}

// complete marks the delivery's assignment completed, with the confirmation
// recorded at drop-off, when it still names this drone. A flight turned back
// by a cancel finds its assignment released and leaves it so.
func (f *flights) complete(ctx context.Context, droneID string, fl Flight, now time.Time) error {
	_, err := sidecar.UpdateKey(ctx, f.asg, assignmentKey(fl.DeliveryID), func(a *Assignment, found bool) (bool, error) {
		if !found || a.Status != StatusAssigned || a.DroneID != droneID || fl.Aborted {
			return false, nil
		}
		at := now.UTC()
		a.Status, a.CompletedAt, a.Confirmation = StatusCompleted, &at, fl.Confirmation
		return true, nil
	})
	return err
}

// reportID is the CloudEvent id of a drone's seq-th report.
func reportID(droneID string, seq uint64) string {
	return droneID + "/" + strconv.FormatUint(seq, 10)
}
