package main

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/fabrikam/dronedelivery/internal/geo"
	"github.com/fabrikam/dronedelivery/internal/messages"
	"github.com/fabrikam/dronedelivery/internal/sidecar/sidecartest"
	"github.com/fabrikam/dronedelivery/internal/workflow"
)

// errTransient stands for a failure that retrying may mend (a 503, a
// timeout): anything that is neither a Rejection nor a Permanent.
var errTransient = errors.New("service unavailable")

// event is one thing the fake steps were asked to do, in order.
type event struct {
	// op is "do" (a step started), "done" (a step ended without error),
	// "fail" (a step ended with an error), "undo" or "reschedule".
	op      string
	step    workflow.Step
	req     messages.DeliveryRequested
	outcome workflow.Outcome
}

// fakeSteps is a scripted stand-in for workflow.Client. Results are per step
// and consumed in order; a step with no result left succeeds. A hook runs in
// the middle of its step, once, without the fake's lock held, so it may call
// back into the processor.
type fakeSteps struct {
	mu          sync.Mutex
	events      []event
	results     map[workflow.Step][]error
	hooks       map[workflow.Step]func()
	undoErrs    []error
	reschedErrs []error
	thirdParty  workflow.ThirdParty
	drone       workflow.DroneAssignment
	reschedDrn  *workflow.DroneAssignment
}

func newFakeSteps() *fakeSteps {
	eta := time.Date(2030, 5, 14, 10, 20, 0, 0, time.UTC)
	return &fakeSteps{
		results:    map[workflow.Step][]error{},
		hooks:      map[workflow.Step]func(){},
		thirdParty: workflow.ThirdParty{Required: false, Reason: "within drone range"},
		drone:      workflow.DroneAssignment{DroneID: "drone-7", PickupETA: eta, DeliveryETA: eta.Add(25 * time.Minute)},
	}
}

// script appends results for step.
func (f *fakeSteps) script(step workflow.Step, errs ...error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.results[step] = append(f.results[step], errs...)
}

// during makes hook run, once, while step runs.
func (f *fakeSteps) during(step workflow.Step, hook func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hooks[step] = hook
}

func (f *fakeSteps) failUndo(errs ...error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.undoErrs = append(f.undoErrs, errs...)
}

func (f *fakeSteps) record(e event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, e)
}

func (f *fakeSteps) Do(_ context.Context, step workflow.Step, req messages.DeliveryRequested, p *workflow.Progress) error {
	f.record(event{op: "do", step: step, req: req})
	f.mu.Lock()
	hook := f.hooks[step]
	delete(f.hooks, step)
	f.mu.Unlock()
	if hook != nil {
		hook()
	}
	f.mu.Lock()
	var err error
	if rs := f.results[step]; len(rs) > 0 {
		err, f.results[step] = rs[0], rs[1:]
	}
	tp, d := f.thirdParty, f.drone
	f.mu.Unlock()
	if err != nil {
		f.record(event{op: "fail", step: step, req: req})
		return err
	}
	switch step {
	case workflow.StepThirdParty:
		p.ThirdParty = &tp
	case workflow.StepDrone:
		if p.ThirdParty == nil || !p.ThirdParty.Required {
			p.Drone = &d
		}
	}
	f.record(event{op: "done", step: step, req: req})
	return nil
}

func (f *fakeSteps) Undo(_ context.Context, upTo workflow.Step, req messages.DeliveryRequested, o workflow.Outcome) error {
	f.record(event{op: "undo", step: upTo, req: req, outcome: o})
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.undoErrs) > 0 {
		err := f.undoErrs[0]
		f.undoErrs = f.undoErrs[1:]
		return err
	}
	return nil
}

func (f *fakeSteps) Reschedule(_ context.Context, req messages.DeliveryRequested, p *workflow.Progress) error {
	f.record(event{op: "reschedule", req: req})
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reschedErrs) > 0 {
		err := f.reschedErrs[0]
		f.reschedErrs = f.reschedErrs[1:]
		return err
	}
	if f.reschedDrn != nil && p.Drone != nil {
		d := *f.reschedDrn
		p.Drone = &d
	}
	return nil
}

// Events returns the recorded events with op among ops (all when none).
func (f *fakeSteps) Events(ops ...string) []event {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []event
	for _, e := range f.events {
		if len(ops) == 0 || contains(ops, e.op) {
			out = append(out, e)
		}
	}
	return out
}

// stepsRun returns the steps started, in order.
func (f *fakeSteps) stepsRun() []workflow.Step {
	var out []workflow.Step
	for _, e := range f.Events("do") {
		out = append(out, e.step)
	}
	return out
}

func (f *fakeSteps) undos() []event { return f.Events("undo") }

func (f *fakeSteps) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = nil
}

func contains[T comparable](s []T, v T) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// recordingStore is the in-memory store, remembering the status of every
// record it successfully wrote, so a test can tell what was ever persisted.
type recordingStore struct {
	*sidecartest.Store[Transaction]
	mu      sync.Mutex
	written []Status
}

func (s *recordingStore) Create(ctx context.Context, key string, v Transaction) error {
	err := s.Store.Create(ctx, key, v)
	if err == nil {
		s.note(v.Status)
	}
	return err
}

func (s *recordingStore) Replace(ctx context.Context, key string, v Transaction, etag string) error {
	err := s.Store.Replace(ctx, key, v, etag)
	if err == nil {
		s.note(v.Status)
	}
	return err
}

func (s *recordingStore) note(st Status) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.written = append(s.written, st)
}

func (s *recordingStore) statuses() []Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Status(nil), s.written...)
}

// fixture is a processor over in-memory fakes.
type fixture struct {
	proc  *processor
	store *recordingStore
	pub   *sidecartest.Publisher
	steps *fakeSteps
	clock *clock
}

var t0 = time.Date(2030, 5, 14, 9, 0, 0, 0, time.UTC)

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{
		store: &recordingStore{Store: sidecartest.NewStore[Transaction]()},
		pub:   &sidecartest.Publisher{},
		steps: newFakeSteps(),
		clock: &clock{t: t0},
	}
	f.proc = &processor{
		log:    slog.New(slog.DiscardHandler),
		store:  f.store,
		pub:    f.pub,
		steps:  f.steps,
		limits: limits{MaxAttempts: 3, DroneWait: time.Minute},
		now:    f.clock.now,
	}
	return f
}

// tx returns the stored transaction of id, failing the test when there is none.
func (f *fixture) tx(t *testing.T, id string) Transaction {
	t.Helper()
	tx, _, found, err := f.store.Get(t.Context(), txKey(id))
	if err != nil {
		t.Fatalf("get %s: %v", id, err)
	}
	if !found {
		t.Fatalf("no transaction stored for %s", id)
	}
	return tx
}

func request(id string) messages.DeliveryRequested {
	deadline := time.Date(2030, 5, 14, 12, 0, 0, 0, time.UTC)
	return messages.DeliveryRequested{
		DeliveryID: id,
		OwnerID:    "contoso",
		Pickup:     geo.Location{Name: "Pike Place", Latitude: 47.6097, Longitude: -122.3422},
		Dropoff:    geo.Location{Name: "Space Needle", Latitude: 47.6205, Longitude: -122.3493},
		PickupTime: time.Date(2030, 5, 14, 10, 0, 0, 0, time.UTC),
		Deadline:   &deadline,
		Expedited:  true,
		PackageInfo: messages.PackageInfo{
			PackageID: "pkg-" + id, Size: "Small", Weight: 1.5, Tag: "fragile",
		},
		ConfirmationRequired: "None",
		RequestedAt:          time.Date(2030, 5, 14, 8, 59, 0, 0, time.UTC),
	}
}

func cancelOf(id string) messages.DeliveryCanceled {
	return messages.DeliveryCanceled{DeliveryID: id, RequestedAt: t0}
}

var allSteps = []workflow.Step{
	workflow.StepAccount, workflow.StepThirdParty, workflow.StepPackage, workflow.StepDrone, workflow.StepDelivery,
}

func equalSteps(a, b []workflow.Step) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
