package main

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/mux"

	"github.com/fabrikam/dronedelivery/internal/geo"
	"github.com/fabrikam/dronedelivery/internal/messages"
	"github.com/fabrikam/dronedelivery/internal/sidecar"
	"github.com/fabrikam/dronedelivery/internal/web"
)

// droneStore holds drone records. GetBulk reads the whole fleet in one call
// with each record's ETag, which a claim needs.
type droneStore interface {
	sidecar.Versioned[Drone]
	GetBulk(ctx context.Context, keys []string) (map[string]sidecar.Item[Drone], error)
}

// Problem codes of this service. The scheduler switches on them: it waits
// and retries on no-drone-available, and rejects the delivery on
// no-capable-drone and assignment-released.
const (
	codeAssignmentReleased = "assignment-released"
	codeNoCapableDrone     = "no-capable-drone"
	codeNoDroneAvailable   = "no-drone-available"
	// codeFlightStarted refuses to change a delivery whose drone has taken
	// off (or already landed): the scheduler takes it, like any 409 it does
	// not know, as a permanent refusal of the reschedule.
	codeFlightStarted = "flight-started"
)

// waker is told about every drone whose flight was planned, changed or
// turned back; flights is one.
type waker interface{ Wake(droneID string) }

type noWaker struct{}

func (noWaker) Wake(string) {}

// noDroneRetryAfter is the Retry-After, in seconds, sent when every capable
// drone is busy. Drones come free only when a delivery ends, which takes
// minutes, so retrying within a few seconds would only add load.
const noDroneRetryAfter = 5

// maxAssignAttempts bounds how often one request re-reads and retries after
// losing an ETag race to another replica. Within one process the mutex
// already rules races out, so hitting the bound means heavy contention.
const maxAssignAttempts = 10

type api struct {
	log         *slog.Logger
	fleet       []Drone
	fleetKeys   []string
	drones      droneStore
	assignments sidecar.Versioned[Assignment]
	now         func() time.Time
	// timeScale is how much faster than real time flights are simulated;
	// the ETAs promised at assignment follow it.
	timeScale float64
	flights   waker

	// ready is set once every fleet drone has a record; until then there is
	// nothing to assign and /healthz says so.
	ready atomic.Bool
	// mu serialises assignment changes in this process so that concurrent
	// requests do not lose ETag races to each other and retry for nothing.
	// The ETags still decide between replicas.
	mu sync.Mutex
}

func newAPI(log *slog.Logger, fleet []Drone, drones droneStore, assignments sidecar.Versioned[Assignment], now func() time.Time) *api {
	keys := make([]string, len(fleet))
	for i, d := range fleet {
		keys[i] = droneKey(d.ID)
	}
	return &api{log: log, fleet: fleet, fleetKeys: keys, drones: drones, assignments: assignments, now: now,
		timeScale: 1, flights: noWaker{}}
}

func (a *api) routes(r *mux.Router) {
	a.replaceHealthz(r)
	// Internal callers (the scheduler and the supervisor, through Dapr) use
	// the forms with the id in the query. Dapr keys its circuit breakers by
	// app and method path, so with the id in the path every delivery would
	// get a breaker of its own, and none would ever protect the service.
	r.Handle("/api/dronedeliveries", a.handlePut()).Methods(http.MethodPut).Queries("id", "{id}")
	r.Handle("/api/dronedeliveries", a.handleDelete()).Methods(http.MethodDelete).Queries("id", "{id}")
	r.Handle("/api/dronedeliveries/{id}", a.handlePut()).Methods(http.MethodPut)
	r.Handle("/api/dronedeliveries/{id}", a.handleGet()).Methods(http.MethodGet)
	r.Handle("/api/dronedeliveries/{id}", a.handleDelete()).Methods(http.MethodDelete)
	r.Handle("/api/drones", a.handleDrones()).Methods(http.MethodGet)
}

// replaceHealthz swaps the handler of the /healthz route web.NewRouter
// registered for one that reports readiness. Registering a second /healthz
// would never be reached (mux matches the first route), and swapping the
// handler keeps the route's middleware and method matching.
func (a *api) replaceHealthz(r *mux.Router) {
	h := a.handleHealthz()
	replaced := false
	_ = r.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		if t, err := route.GetPathTemplate(); err == nil && t == "/healthz" {
			route.Handler(h)
			replaced = true
		}
		return nil
	})
	if !replaced {
		r.Handle("/healthz", h).Methods(http.MethodGet)
	}
}

func (a *api) handleHealthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.ready.Load() {
			web.WriteProblem(w, r, web.Unavailable("the fleet is not seeded yet", 1))
			return
		}
		web.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
}

// putBody is what the scheduler sends to get a drone for a delivery.
// Pointers tell a missing field from a zero one.
type putBody struct {
	Pickup        *geo.Location `json:"pickup"`
	Dropoff       *geo.Location `json:"dropoff"`
	PickupTime    *string       `json:"pickupTime"`
	PackageWeight *float64      `json:"packageWeight"`
	PackageSize   *string       `json:"packageSize"`
	Expedited     bool          `json:"expedited"`
	// ConfirmationRequired is the proof of delivery the drone records at
	// drop-off; absent means none.
	ConfirmationRequired *string `json:"confirmationRequired"`
}

// trip is a validated putBody: what the assignment depends on.
type trip struct {
	pickup       geo.Location
	dropoff      geo.Location
	pickupTime   time.Time
	weightKg     float64
	confirmation string
}

// sameAs reports whether t is the trip an assignment was made for, so that a
// repeated PUT leaves the assignment and its ETAs as they are.
func (t trip) sameAs(asg Assignment) bool {
	return t.pickup == asg.Pickup && t.dropoff == asg.Dropoff && t.pickupTime.Equal(asg.PickupTime)
}

// flies reports whether t is the trip flight f is flying.
func (t trip) flies(f *Flight) bool {
	return t.pickup == f.Pickup && t.dropoff == f.Dropoff && t.pickupTime.Equal(f.PickupTime)
}

// confirmationTypes are the proofs of delivery a drone can record.
var confirmationTypes = []string{messages.ConfirmFingerPrint, messages.ConfirmPicture, messages.ConfirmVoice, messages.ConfirmNone}

func (b *putBody) validate() (trip, []web.FieldError) {
	var t trip
	var errs []web.FieldError
	add := func(field, msg string) { errs = append(errs, web.FieldError{Field: field, Error: msg}) }
	location := func(field string, l *geo.Location) geo.Location {
		if l == nil {
			add(field, "is required")
			return geo.Location{}
		}
		if err := l.Valid(); err != nil {
			add(field, err.Error())
		}
		return *l
	}
	t.pickup = location("pickup", b.Pickup)
	t.dropoff = location("dropoff", b.Dropoff)
	// pickupTime is parsed here rather than by encoding/json so that a bad
	// value is reported against its field.
	if b.PickupTime == nil || *b.PickupTime == "" {
		add("pickupTime", "is required")
	} else if pt, err := time.Parse(time.RFC3339, *b.PickupTime); err != nil {
		add("pickupTime", "must be an RFC 3339 date-time such as 2026-05-14T20:10:00Z")
	} else {
		t.pickupTime = pt.UTC()
	}
	switch {
	case b.PackageWeight == nil:
		add("packageWeight", "is required")
	case *b.PackageWeight <= 0:
		add("packageWeight", "must be more than 0 (kg)")
	default:
		t.weightKg = *b.PackageWeight
	}
	switch {
	case b.PackageSize == nil:
		add("packageSize", "is required")
	case *b.PackageSize != "Small" && *b.PackageSize != "Medium" && *b.PackageSize != "Large":
		add("packageSize", "must be one of Small, Medium, Large")
	}
	t.confirmation = messages.ConfirmNone
	if c := b.ConfirmationRequired; c != nil && *c != "" {
		if !slices.Contains(confirmationTypes, *c) {
			add("confirmationRequired", "must be one of FingerPrint, Picture, Voice, None")
		}
		t.confirmation = *c
	}
	return t, errs
}

// handlePut assigns a drone to the delivery, or reschedules its assignment.
// It is idempotent: the same delivery always gets the same drone.
func (a *api) handlePut() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := mux.Vars(r)["id"]
		var b putBody
		if p := web.DecodeJSON(w, r, &b); p != nil {
			web.WriteProblem(w, r, p)
			return
		}
		t, errs := b.validate()
		if len(errs) > 0 {
			web.WriteProblem(w, r, web.Validation(errs))
			return
		}
		if !a.ready.Load() {
			web.WriteProblem(w, r, web.Unavailable("the fleet is not seeded yet", 1))
			return
		}
		asg, p := a.assign(r.Context(), id, t)
		if p != nil {
			web.WriteProblem(w, r, p)
			return
		}
		web.WriteJSON(w, http.StatusOK, asg)
	})
}

// assign gives delivery id a drone for trip t. The order of writes makes every
// crash point recoverable by repeating the call: the drone is claimed first
// (its record is the source of truth), then the assignment is written, then
// drones this delivery no longer needs are freed. A repeat finds the claimed
// drone by its assignedTo and carries on from there.
func (a *api) assign(ctx context.Context, id string, t trip) (Assignment, *web.Problem) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for range maxAssignAttempts {
		asg, asgETag, found, err := a.assignments.Get(ctx, assignmentKey(id))
		if err != nil {
			return Assignment{}, a.unavailable(ctx, "read assignment", err)
		}
		fleet, err := a.readFleet(ctx)
		if err != nil {
			return Assignment{}, a.unavailable(ctx, "read fleet", err)
		}
		held := heldBy(fleet, id)
		if found && asg.Status == StatusReleased {
			// A drone may have been claimed for this delivery by a PUT that
			// raced with the cancel; it must not stay claimed.
			if err := a.freeAll(ctx, id, held); err != nil {
				return Assignment{}, a.unavailable(ctx, "free drone", err)
			}
			return Assignment{}, web.NewProblem(http.StatusConflict, codeAssignmentReleased,
				"Assignment released", "delivery "+id+" was released and cannot be assigned a drone again")
		}
		var cur *Assignment
		if found {
			cur = &asg
		}
		if found && asg.Status == StatusCompleted {
			if t.sameAs(asg) {
				return asg, nil // a repeat of the PUT that booked the flight
			}
			return Assignment{}, flightStarted(id)
		}
		if it, ok := departed(held, id); ok {
			// The drone is in the air for this delivery: only a repeat of
			// the trip it flies is answered, with its assignment. That is
			// written here if a crash lost it after the drone was claimed.
			if !t.flies(it.Value.Flight) {
				return Assignment{}, flightStarted(id)
			}
			next, changed := a.assignmentFor(id, it.Value, t, cur)
			if changed {
				if err := a.writeAssignment(ctx, id, next, found, asgETag); errors.Is(err, sidecar.ErrConflict) {
					continue
				} else if err != nil {
					return Assignment{}, a.unavailable(ctx, "write assignment", err)
				}
			}
			return next, nil
		}
		pick, ok := pickDrone(fleet, held, cur, id, t)
		if !ok {
			if !a.anyCapable(fleet, t.weightKg) {
				return Assignment{}, web.NewProblem(http.StatusUnprocessableEntity, codeNoCapableDrone,
					"No drone can carry the package", "no drone in the fleet carries "+formatKg(t.weightKg))
			}
			p := web.NewProblem(http.StatusConflict, codeNoDroneAvailable,
				"No drone available", "every drone that can carry "+formatKg(t.weightKg)+" is busy; retry later")
			p.RetryAfter = noDroneRetryAfter
			return Assignment{}, p
		}
		d := pick.Value
		claimed := d.AssignedTo != id
		plan := planFor(id, t)
		// The flight plan goes into the drone's record with the claim, under
		// the drone's ETag: the flight simulation departs the drone with an
		// ETag-checked write too, so a plan is never changed under a flight
		// that has just taken off.
		planned := !d.Flight.samePlan(plan)
		if claimed || planned {
			d.AssignedTo, d.Flight = id, &plan
			err := a.drones.Replace(ctx, droneKey(d.ID), d, pick.ETag)
			if errors.Is(err, sidecar.ErrConflict) {
				continue // another replica, or the drone's flight, changed it; look again
			}
			if err != nil {
				return Assignment{}, a.unavailable(ctx, "claim drone", err)
			}
		}
		next, changed := a.assignmentFor(id, d, t, cur)
		// A fresh claim is always followed by an ETag-checked assignment
		// write, even when the assignment stays as it is: that write is what
		// notices a cancel that released the delivery since it was read.
		if changed || claimed {
			err := a.writeAssignment(ctx, id, next, found, asgETag)
			if errors.Is(err, sidecar.ErrConflict) {
				// A cancel or a PUT for the same delivery on another replica
				// got there first. The drone just claimed now shows up in
				// held, so the next round either keeps or frees it.
				continue
			}
			if err != nil {
				return Assignment{}, a.unavailable(ctx, "write assignment", err)
			}
		}
		// Drones this delivery holds besides the chosen one: the drone a
		// reschedule moved away from, or one claimed by an attempt that
		// crashed or lost a race.
		stray := slices.DeleteFunc(held, func(it sidecar.Item[Drone]) bool { return it.Value.ID == d.ID })
		if err := a.freeAll(ctx, id, stray); err != nil {
			return Assignment{}, a.unavailable(ctx, "free drone", err)
		}
		if claimed || planned {
			a.flights.Wake(d.ID)
		}
		if changed {
			a.log.InfoContext(ctx, "drone assigned", "deliveryId", id, "droneId", d.ID,
				"rescheduled", found, "pickupEta", next.PickupETA, "deliveryEta", next.DeliveryETA)
		}
		return next, nil
	}
	return Assignment{}, web.Unavailable("the drone fleet is changing too fast; retry", 1)
}

// assignmentFor returns the assignment of delivery id to drone d for trip t,
// and whether it differs from cur. A repeat of the same trip on the same
// drone keeps cur as it is, ETAs included.
func (a *api) assignmentFor(id string, d Drone, t trip, cur *Assignment) (Assignment, bool) {
	if cur != nil && cur.DroneID == d.ID && t.sameAs(*cur) {
		return *cur, false
	}
	now := a.now().UTC()
	pickupETA, deliveryETA := etas(d, t.pickup, t.dropoff, t.pickupTime, now, a.timeScale)
	next := Assignment{
		DeliveryID: id, DroneID: d.ID, Status: StatusAssigned,
		Pickup: t.pickup, Dropoff: t.dropoff, PickupTime: t.pickupTime,
		PickupETA: pickupETA, DeliveryETA: deliveryETA, AssignedAt: now,
	}
	if cur != nil && cur.DroneID == d.ID {
		next.AssignedAt = cur.AssignedAt
	}
	return next, true
}

// writeAssignment creates or replaces (with etag) delivery id's assignment.
func (a *api) writeAssignment(ctx context.Context, id string, v Assignment, exists bool, etag string) error {
	if exists {
		return a.assignments.Replace(ctx, assignmentKey(id), v, etag)
	}
	return a.assignments.Create(ctx, assignmentKey(id), v)
}

func flightStarted(id string) *web.Problem {
	return web.NewProblem(http.StatusConflict, codeFlightStarted, "Flight started",
		"the drone of delivery "+id+" has taken off; the delivery can no longer be changed")
}

// departed returns the drone among held that is in the air for delivery id.
func departed(held []sidecar.Item[Drone], id string) (sidecar.Item[Drone], bool) {
	for _, it := range held {
		if f := it.Value.Flight; f.departed() && f.DeliveryID == id {
			return it, true
		}
	}
	return sidecar.Item[Drone]{}, false
}

// pickDrone chooses the drone for delivery id: the one its assignment names
// if that can still carry the load, else one already claimed for it (a claim
// whose assignment was never written), else the nearest free capable drone.
func pickDrone(fleet []sidecar.Item[Drone], held []sidecar.Item[Drone], cur *Assignment, id string, t trip) (sidecar.Item[Drone], bool) {
	capable := func(d Drone) bool { return d.MaxPayloadKg >= t.weightKg }
	if cur != nil {
		for _, it := range fleet {
			d := it.Value
			// The assignment's drone may be free because a cancel released
			// the delivery after the assignment was read. Reclaiming it is
			// safe: the assignment write that follows a claim then fails on
			// its ETag, and the next round sees the release.
			if d.ID == cur.DroneID && capable(d) && (d.AssignedTo == id || d.AssignedTo == "") {
				return it, true
			}
		}
	}
	if it, ok := nearest(held, t.pickup, capable); ok {
		return it, true
	}
	return nearest(fleet, t.pickup, func(d Drone) bool { return d.AssignedTo == "" && capable(d) })
}

// nearest returns the drone among items, accepted by ok, whose base is
// closest to pickup; ties go to the lower id so the choice is stable.
func nearest(items []sidecar.Item[Drone], pickup geo.Location, ok func(Drone) bool) (sidecar.Item[Drone], bool) {
	var best sidecar.Item[Drone]
	bestKm, found := 0.0, false
	for _, it := range items {
		if !ok(it.Value) {
			continue
		}
		km := geo.DistanceKm(it.Value.Base, pickup)
		if !found || km < bestKm || (km == bestKm && it.Value.ID < best.Value.ID) {
			best, bestKm, found = it, km, true
		}
	}
	return best, found
}

func heldBy(fleet []sidecar.Item[Drone], id string) []sidecar.Item[Drone] {
	var held []sidecar.Item[Drone]
	for _, it := range fleet {
		if it.Value.AssignedTo == id {
			held = append(held, it)
		}
	}
	return held
}

// anyCapable reports whether some drone of the fleet can carry weightKg. A
// drone whose record is missing still counts, from the fleet file: it is
// unavailable, not incapable.
func (a *api) anyCapable(fleet []sidecar.Item[Drone], weightKg float64) bool {
	for _, it := range fleet {
		if it.Value.MaxPayloadKg >= weightKg {
			return true
		}
	}
	for _, d := range a.fleet {
		if d.MaxPayloadKg >= weightKg {
			return true
		}
	}
	return false
}

// readFleet returns the stored records of the fleet's drones in fleet order.
func (a *api) readFleet(ctx context.Context) ([]sidecar.Item[Drone], error) {
	bulk, err := a.drones.GetBulk(ctx, a.fleetKeys)
	if err != nil {
		return nil, err
	}
	items := make([]sidecar.Item[Drone], 0, len(bulk))
	for _, k := range a.fleetKeys {
		if it, ok := bulk[k]; ok {
			items = append(items, it)
		} else {
			a.log.WarnContext(ctx, "drone record missing from the state store", "key", k)
		}
	}
	return items, nil
}

// freeAll frees the drones in items that are still assigned to delivery id,
// or turns them back when they are in the air.
func (a *api) freeAll(ctx context.Context, id string, items []sidecar.Item[Drone]) error {
	for _, it := range items {
		turned, err := a.free(ctx, id, it)
		if err != nil {
			return err
		}
		if turned {
			a.flights.Wake(it.Value.ID)
			a.log.InfoContext(ctx, "drone turned back", "deliveryId", id, "droneId", it.Value.ID)
			continue
		}
		a.log.InfoContext(ctx, "drone freed", "deliveryId", id, "droneId", it.Value.ID)
	}
	return nil
}

// free releases the drone from delivery id if it is still assigned to it,
// first with the ETag it was read with and, when that is stale, by
// re-reading: the drone may meanwhile have been freed, or freed and claimed
// for another delivery, and then it must be left alone. A drone on the
// ground is freed at once; one in the air is turned back (turned is true)
// and freed by its flight when it lands.
func (a *api) free(ctx context.Context, id string, it sidecar.Item[Drone]) (turned bool, err error) {
	release := func(d *Drone) bool {
		if d.AssignedTo != id {
			return false
		}
		if f := d.Flight; f.departed() && f.DeliveryID == id {
			back := *f
			if !back.abort() {
				return false // already on its way home
			}
			d.Flight, turned = &back, true
			return true
		}
		d.AssignedTo, d.Flight = "", nil
		return true
	}
	d := it.Value
	if !release(&d) {
		return false, nil
	}
	err = a.drones.Replace(ctx, droneKey(d.ID), d, it.ETag)
	if !errors.Is(err, sidecar.ErrConflict) {
		return turned, err
	}
	turned = false
	_, err = sidecar.UpdateKey[Drone](ctx, a.drones, droneKey(d.ID), func(d *Drone, found bool) (bool, error) {
		turned = false
		return found && release(d), nil
	})
	return turned, err
}

func (a *api) handleGet() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := mux.Vars(r)["id"]
		asg, _, found, err := a.assignments.Get(r.Context(), assignmentKey(id))
		switch {
		case err != nil:
			web.WriteProblem(w, r, a.unavailable(r.Context(), "read assignment", err))
		case !found:
			web.WriteProblem(w, r, web.NotFound("no drone assignment for delivery "+id))
		default:
			web.WriteJSON(w, http.StatusOK, asg)
		}
	})
}

// handleDelete releases the delivery's drone. It always succeeds when the
// store answers: the assignment is marked released first, and created as a
// released tombstone when there is none, so that a PUT arriving after the
// cancel (a retry, or one overtaken in the broker) cannot assign a drone.
// Then every drone still assigned to the delivery is freed, or, when it is
// flying, turned back to base, where it becomes free as it lands.
func (a *api) handleDelete() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		id := mux.Vars(r)["id"]
		a.mu.Lock()
		defer a.mu.Unlock()
		now := a.now().UTC()
		_, err := sidecar.UpdateKey(ctx, a.assignments, assignmentKey(id), func(v *Assignment, found bool) (bool, error) {
			// A flown delivery keeps its record of the flight; its drone
			// is already free.
			if found && (v.Status == StatusReleased || v.Status == StatusCompleted) {
				return false, nil
			}
			if !found {
				*v = Assignment{DeliveryID: id}
			}
			v.Status, v.ReleasedAt = StatusReleased, &now
			return true, nil
		})
		if err != nil {
			web.WriteProblem(w, r, a.unavailable(ctx, "release assignment", err))
			return
		}
		fleet, err := a.readFleet(ctx)
		if err != nil {
			web.WriteProblem(w, r, a.unavailable(ctx, "read fleet", err))
			return
		}
		if err := a.freeAll(ctx, id, heldBy(fleet, id)); err != nil {
			web.WriteProblem(w, r, a.unavailable(ctx, "free drone", err))
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

// handleDrones lists the fleet with each drone's assignment, in id order.
func (a *api) handleDrones() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fleet, err := a.readFleet(r.Context())
		if err != nil {
			web.WriteProblem(w, r, a.unavailable(r.Context(), "read fleet", err))
			return
		}
		out := make([]Drone, len(fleet))
		for i, it := range fleet {
			out[i] = it.Value
		}
		slices.SortFunc(out, func(x, y Drone) int { return cmp.Compare(x.ID, y.ID) })
		web.WriteJSON(w, http.StatusOK, out)
	})
}

func formatKg(kg float64) string { return strconv.FormatFloat(kg, 'g', -1, 64) + " kg" }

func (a *api) unavailable(ctx context.Context, what string, err error) *web.Problem {
	a.log.WarnContext(ctx, what+" failed", "err", err)
	return web.Unavailable("the drone store is unavailable", 1)
}
