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
)

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
	return &api{log: log, fleet: fleet, fleetKeys: keys, drones: drones, assignments: assignments, now: now}
}

func (a *api) routes(r *mux.Router) {
	a.replaceHealthz(r)
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
}

// trip is a validated putBody: what the assignment depends on.
type trip struct {
	pickup     geo.Location
	dropoff    geo.Location
	pickupTime time.Time
	weightKg   float64
}

// sameAs reports whether t is the trip an assignment was made for, so that a
// repeated PUT leaves the assignment and its ETAs as they are.
func (t trip) sameAs(asg Assignment) bool {
	return t.pickup == asg.Pickup && t.dropoff == asg.Dropoff && t.pickupTime.Equal(asg.PickupTime)
}

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
		if claimed {
			d.AssignedTo = id
			err := a.drones.Replace(ctx, droneKey(d.ID), d, pick.ETag)
			if errors.Is(err, sidecar.ErrConflict) {
				continue // another replica took or changed it; look again
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
			if found {
				err = a.assignments.Replace(ctx, assignmentKey(id), next, asgETag)
			} else {
				err = a.assignments.Create(ctx, assignmentKey(id), next)
			}
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
	pickupETA, deliveryETA := etas(d, t.pickup, t.dropoff, t.pickupTime, now)
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

// freeAll frees the drones in items that are still assigned to delivery id.
func (a *api) freeAll(ctx context.Context, id string, items []sidecar.Item[Drone]) error {
	for _, it := range items {
		if err := a.free(ctx, id, it); err != nil {
			return err
		}
		a.log.InfoContext(ctx, "drone freed", "deliveryId", id, "droneId", it.Value.ID)
	}
	return nil
}

// free clears the drone's assignedTo if it is still id, first with the ETag
// it was read with and, when that is stale, by re-reading: the drone may
// meanwhile have been freed, or freed and claimed for another delivery, and
// then it must be left alone.
func (a *api) free(ctx context.Context, id string, it sidecar.Item[Drone]) error {
	if it.Value.AssignedTo != id {
		return nil
	}
	d := it.Value
	d.AssignedTo = ""
	err := a.drones.Replace(ctx, droneKey(d.ID), d, it.ETag)
	if !errors.Is(err, sidecar.ErrConflict) {
		return err
	}
	_, err = sidecar.UpdateKey[Drone](ctx, a.drones, droneKey(d.ID), func(d *Drone, found bool) (bool, error) {
		if !found || d.AssignedTo != id {
			return false, nil
		}
		d.AssignedTo = ""
		return true, nil
	})
	return err
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
// Then every drone still assigned to the delivery is freed.
func (a *api) handleDelete() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		id := mux.Vars(r)["id"]
		a.mu.Lock()
		defer a.mu.Unlock()
		now := a.now().UTC()
		_, err := sidecar.UpdateKey(ctx, a.assignments, assignmentKey(id), func(v *Assignment, found bool) (bool, error) {
			if found && v.Status == StatusReleased {
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
