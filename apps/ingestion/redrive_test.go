package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/fabrikam/dronedelivery/internal/geo"
	"github.com/fabrikam/dronedelivery/internal/messages"
	"github.com/fabrikam/dronedelivery/internal/sidecar/sidecartest"
	"github.com/fabrikam/dronedelivery/internal/web"
)

// lookup answers Transactions from a map, remembering each batch it was asked.
type lookup struct {
	mu      sync.Mutex
	tx      map[string]transactionView
	err     error
	batches [][]string
}

func (l *lookup) Transactions(_ context.Context, ids []string) (map[string]transactionView, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.batches = append(l.batches, append([]string(nil), ids...))
	if l.err != nil {
		return nil, l.err
	}
	out := map[string]transactionView{}
	for _, id := range ids {
		if v, ok := l.tx[id]; ok {
			out[id] = v
		}
	}
	return out, nil
}

type redriveFixture struct {
	r        *redriver
	batches  *sidecartest.Store[pendingBatch]
	cursors  *sidecartest.Store[cursor]
	requests *sidecartest.Store[requestRecord]
	pub      *sidecartest.Publisher
	sched    *lookup
	now      time.Time
}

func newRedriveFixture(t *testing.T) *redriveFixture {
	t.Helper()
	f := &redriveFixture{
		batches:  sidecartest.NewStore[pendingBatch](),
		cursors:  sidecartest.NewStore[cursor](),
		requests: sidecartest.NewStore[requestRecord](),
		pub:      &sidecartest.Publisher{},
		sched:    &lookup{tx: map[string]transactionView{}},
		now:      t0,
	}
	f.r = newRedriver(redriver{
		log:     slog.New(slog.DiscardHandler),
		cfg:     redriveConfig{Settle: 2 * time.Second, After: time.Minute, Limit: 2, Batch: 1000},
		batches: f.batches, cursors: f.cursors, requests: f.requests, pub: f.pub, scheduler: f.sched,
		now: func() time.Time { return f.now },
	})
	go f.r.run(t.Context())
	return f
}

// accept records and tracks a request as the create handler would.
func (f *redriveFixture) accept(t *testing.T, id string) {
	t.Helper()
	msg := messages.DeliveryRequested{DeliveryID: id, OwnerID: "contoso", PackageInfo: messages.PackageInfo{PackageID: "pkg-" + id}}
	if err := f.requests.Create(t.Context(), recordKey(id), requestRecord{DeliveryID: id, AcceptedAt: f.now, Request: msg}); err != nil {
		t.Fatal(err)
	}
	f.r.track(t.Context(), pendingEntry{Kind: pendingRequest, DeliveryID: id, AcceptedAt: f.now})
}

func (f *redriveFixture) sweep(t *testing.T) redriveReport {
	t.Helper()
	rep, err := f.r.sweep(t.Context())
	if err != nil {
		t.Fatalf("sweep: %v", err)
	}
	return rep
}

func (f *redriveFixture) pendingCount(t *testing.T) int {
	t.Helper()
	return pendingEntries(t, f.batches, f.cursors)
}

// pendingEntries counts the entries in the batches from the tail to the head.
func pendingEntries(t *testing.T, batches *sidecartest.Store[pendingBatch], cursors *sidecartest.Store[cursor]) int {
	t.Helper()
	head, _, _, _ := cursors.Get(t.Context(), headKey)
	tail, _, _, _ := cursors.Get(t.Context(), tailKey)
	n := 0
	for i := tail.N; i < head.N; i++ {
		b, _, _, err := batches.Get(t.Context(), batchKey(i))
		if err != nil {
			t.Fatal(err)
		}
		n += len(b)
	}
	return n
}

func TestRedriveForgetsWhatTheSchedulerHas(t *testing.T) {
	t.Parallel()
	f := newRedriveFixture(t)
	for i := range 5 {
		f.accept(t, idN(int64(i+1)))
	}
	if rep := f.sweep(t); rep.Checked != 0 {
		t.Errorf("entries younger than Settle were checked: %+v", rep)
	}
	f.now = f.now.Add(3 * time.Second)
	for i, status := range []string{"Scheduled", "Rejected", "Failed", "InProgress"} {
		f.sched.tx[idN(int64(i+1))] = transactionView{DeliveryID: idN(int64(i + 1)), Status: status}
	}
	rep := f.sweep(t)
	if rep != (redriveReport{Checked: 5, Confirmed: 3}) {
		t.Errorf("report %+v, want 5 checked, 3 confirmed (the ended ones)", rep)
	}
	if n := f.pendingCount(t); n != 2 {
		t.Errorf("%d entries pending, want 2: one unknown, one in progress", n)
	}
	if n := len(f.pub.Messages()); n != 0 {
		t.Errorf("%d messages published before the entry was overdue", n)
	}
}

func TestRedrivePublishesTheSameRequestAgainWhenOverdue(t *testing.T) {
	t.Parallel()
	f := newRedriveFixture(t)
	id := idN(1)
	f.accept(t, id)
	f.now = f.now.Add(time.Minute)
	if rep := f.sweep(t); rep.Redriven != 1 {
		t.Fatalf("report %+v, want 1 redriven", rep)
	}
	msgs := f.pub.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages published, want 1", len(msgs))
	}
	m := msgs[0]
	got, ok := m.Data.(messages.DeliveryRequested)
	if m.Topic != messages.TopicDeliveryRequests || m.Type != messages.TypeDeliveryRequested || m.Key != id || !ok || got.DeliveryID != id || got.PackageInfo.PackageID != "pkg-"+id {
		t.Errorf("published %+v, want the original request for %s", m, id)
	}

	// Not again until After has passed since the last redrive.
	f.now = f.now.Add(30 * time.Second)
	if rep := f.sweep(t); rep.Redriven != 0 {
		t.Errorf("redriven again after 30s: %+v", rep)
	}
	// Once the scheduler has it, it is forgotten.
	f.sched.tx[id] = transactionView{DeliveryID: id, Status: "Scheduled"}
	if rep := f.sweep(t); rep.Confirmed != 1 || f.pendingCount(t) != 0 {
		t.Errorf("report %+v with %d pending, want it confirmed and forgotten", rep, f.pendingCount(t))
	}
}

// A transaction stuck in progress gets its request again: the scheduler
// resumes it from its checkpoint.
func TestRedriveResumesATransactionLeftInProgress(t *testing.T) {
	t.Parallel()
	f := newRedriveFixture(t)
	id := idN(1)
	f.accept(t, id)
	f.sched.tx[id] = transactionView{DeliveryID: id, Status: "InProgress"}
	f.now = f.now.Add(time.Minute)
	if rep := f.sweep(t); rep.Redriven != 1 || rep.Confirmed != 0 {
		t.Errorf("report %+v, want the request published again", rep)
	}
}

func TestRedriveGivesUpAfterLimit(t *testing.T) {
	t.Parallel()
	f := newRedriveFixture(t)
	f.accept(t, idN(1))
	var total redriveReport
	for range 5 {
		f.now = f.now.Add(time.Minute)
		rep := f.sweep(t)
		total.Redriven += rep.Redriven
		total.GivenUp += rep.GivenUp
	}
	if total.Redriven != 2 || total.GivenUp != 1 {
		t.Errorf("redriven %d and given up %d times, want 2 (the limit) and 1", total.Redriven, total.GivenUp)
	}
	if n := f.pendingCount(t); n != 0 {
		t.Errorf("%d entries pending after giving up", n)
	}
}

func TestRedriveCancelUntilTheSchedulerShowsIt(t *testing.T) {
	t.Parallel()
	f := newRedriveFixture(t)
	id := idN(1)
	f.r.track(t.Context(), pendingEntry{Kind: pendingCancel, DeliveryID: id, AcceptedAt: f.now})
	// A transaction that exists but has not seen the cancel does not confirm it.
	f.sched.tx[id] = transactionView{DeliveryID: id, Status: "Scheduled"}
	f.now = f.now.Add(time.Minute)
	if rep := f.sweep(t); rep.Redriven != 1 {
		t.Fatalf("report %+v, want the cancel redriven", rep)
	}
	msgs := f.pub.Messages()
	if len(msgs) != 1 || msgs[0].Type != messages.TypeDeliveryCanceled {
		t.Fatalf("published %+v, want one cancel", msgs)
	}
	if c, ok := msgs[0].Data.(messages.DeliveryCanceled); !ok || c.DeliveryID != id || !c.RequestedAt.Equal(t0) {
		t.Errorf("cancel %+v, want delivery %s requested at %s", msgs[0].Data, id, t0)
	}
	f.sched.tx[id] = transactionView{DeliveryID: id, Status: "Canceled", CancelRequested: true}
	if rep := f.sweep(t); rep.Confirmed != 1 || f.pendingCount(t) != 0 {
		t.Errorf("report %+v, want the cancel confirmed", rep)
	}
}

func TestRedriveDoesNothingWhenTheSchedulerCannotAnswer(t *testing.T) {
	t.Parallel()
	f := newRedriveFixture(t)
	f.accept(t, idN(1))
	f.sched.err = errDown
	f.now = f.now.Add(time.Hour)
	if _, err := f.r.sweep(t.Context()); err == nil {
		t.Error("sweep succeeded without the scheduler")
	}
	if n := len(f.pub.Messages()); n != 0 {
		t.Errorf("%d published without knowing whether the scheduler has them", n)
	}
	if n := f.pendingCount(t); n != 1 {
		t.Errorf("%d pending, want the entry kept", n)
	}
}

func TestRedriveAsksInBatches(t *testing.T) {
	t.Parallel()
	f := newRedriveFixture(t)
	for i := range 250 {
		f.r.track(t.Context(), pendingEntry{Kind: pendingRequest, DeliveryID: idN(int64(i + 1)), AcceptedAt: f.now})
		f.sched.tx[idN(int64(i+1))] = transactionView{DeliveryID: idN(int64(i + 1)), Status: "Scheduled"}
	}
	f.now = f.now.Add(3 * time.Second)
	if rep := f.sweep(t); rep.Confirmed != 250 {
		t.Errorf("report %+v, want 250 confirmed", rep)
	}
	if len(f.sched.batches) != 3 {
		t.Fatalf("%d lookups, want 3 of at most %d", len(f.sched.batches), lookupChunk)
	}
	for _, b := range f.sched.batches {
		if len(b) > lookupChunk {
			t.Errorf("a lookup of %d ids", len(b))
		}
	}
}

// TestAcceptedMessagesAreTracked checks the handlers' side: a 202 for a
// request or a cancel leaves a pending entry, a refused request none.
func TestAcceptedMessagesAreTracked(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	batches, cursors := sidecartest.NewStore[pendingBatch](), sidecartest.NewStore[cursor]()
	log := slog.New(slog.DiscardHandler)
	rd := newRedriver(redriver{log: log, batches: batches, cursors: cursors, requests: f.requests, pub: f.pub,
		scheduler: &lookup{}, now: func() time.Time { return t0 }})
	go rd.run(t.Context())
	a := &api{
		log: log, pub: f.pub, requests: f.requests, keys: f.keys, scheduler: f.sched,
		places: geo.DefaultGazetteer(), now: func() time.Time { return t0 },
		newID:   func() string { return idN(f.ids.Add(1)) },
		redrive: rd,
	}
	router := web.NewRouter(log)
	a.routes(router)
	f.handler = router

	id := f.accept(t, body(t, nil))
	if rec := f.post(t, `{"ownerId":""}`); rec.Code != http.StatusBadRequest {
		t.Fatalf("invalid request answered %d", rec.Code)
	}
	if rec := f.send(t, http.MethodPatch, "/api/deliveryrequests/"+id, `{"pickupTime":"`+t0.Add(2*time.Hour).Format(time.RFC3339)+`"}`, nil); rec.Code != http.StatusAccepted {
		t.Fatalf("reschedule answered %d %s", rec.Code, rec.Body)
	}
	if rec := f.send(t, http.MethodDelete, "/api/deliveryrequests/"+id, "", nil); rec.Code != http.StatusAccepted {
		t.Fatalf("cancel answered %d", rec.Code)
	}
	// Each handler returned after its flush: both entries are stored.
	head, _, _, _ := cursors.Get(t.Context(), headKey)
	var kinds []string
	for i := int64(0); i < head.N; i++ {
		b, _, _, err := batches.Get(t.Context(), batchKey(i))
		if err != nil {
			t.Fatal(err)
		}
		for k, e := range b {
			if e.DeliveryID != id || !e.AcceptedAt.Equal(t0) || k != pendingKey(e.Kind, id) {
				t.Errorf("entry %s = %+v", k, e)
			}
			kinds = append(kinds, e.Kind)
		}
	}
	if !slices.Equal(kinds, []string{pendingRequest, pendingReschedule, pendingCancel}) {
		t.Errorf("pending entries %v, want a request, a reschedule and a cancel", kinds)
	}

	// The binding's route answers the sweep's report.
	rec := f.send(t, http.MethodPost, "/redrive", "", nil)
	var rep redriveReport
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &rep) != nil {
		t.Errorf("POST /redrive answered %d %s", rec.Code, rec.Body)
	}
	rec = httptest.NewRecorder()
	router.ServeHTTP(rec, httptest.NewRequest(http.MethodOptions, "/redrive", nil))
	if rec.Code != http.StatusOK {
		t.Errorf("OPTIONS /redrive answered %d; daprd probes binding routes with it", rec.Code)
	}
}

func TestRedriveTakesARefusedCancelAsDone(t *testing.T) {
	t.Parallel()
	f := newRedriveFixture(t)
	id := idN(1)
	f.r.track(t.Context(), pendingEntry{Kind: pendingCancel, DeliveryID: id, AcceptedAt: f.now})
	f.sched.tx[id] = transactionView{DeliveryID: id, Status: "Scheduled", CancelRefused: "too late to cancel: the delivery is already Completed"}
	f.now = f.now.Add(time.Minute)
	if rep := f.sweep(t); rep.Confirmed != 1 || rep.Redriven != 0 {
		t.Errorf("report %+v, want the refused cancel confirmed, not published again", rep)
	}
}

// The tail moves past batches the sweep emptied, and their keys go; a batch
// that was claimed but never written (its flush failed) holds the tail only
// for gapAge.
func TestRedriveTailMovesPastResolvedBatchesAndGaps(t *testing.T) {
	t.Parallel()
	f := newRedriveFixture(t)
	f.accept(t, idN(1)) // batch 0
	// A flush that claimed batch 1 and failed before writing it.
	if _, err := f.cursors.Update(t.Context(), headKey, func(c *cursor, _ bool) (bool, error) { c.N++; return true, nil }); err != nil {
		t.Fatal(err)
	}
	f.accept(t, idN(2)) // batch 2
	f.sched.tx[idN(1)] = transactionView{DeliveryID: idN(1), Status: "Scheduled"}
	f.sched.tx[idN(2)] = transactionView{DeliveryID: idN(2), Status: "Scheduled"}
	tail := func() cursor {
		c, _, _, _ := f.cursors.Get(t.Context(), tailKey)
		return c
	}

	f.now = f.now.Add(3 * time.Second)
	if rep := f.sweep(t); rep.Confirmed != 2 {
		t.Fatalf("report %+v, want both confirmed", rep)
	}
	if c := tail(); c.N != 1 || c.GapSince == nil {
		t.Fatalf("tail %+v, want at the missing batch 1 with the time it was found missing", c)
	}
	if _, _, found, _ := f.batches.Get(t.Context(), batchKey(0)); found {
		t.Error("batch 0 kept after the tail passed it")
	}

	f.now = f.now.Add(gapAge / 2)
	f.sweep(t)
	if c := tail(); c.N != 1 {
		t.Fatalf("tail %+v moved past the gap before gapAge", c)
	}
	f.now = f.now.Add(gapAge)
	f.sweep(t)
	if c := tail(); c.N != 3 || c.GapSince != nil {
		t.Fatalf("tail %+v, want past the gap and the emptied batch 2", c)
	}
	if n := f.pendingCount(t); n != 0 {
		t.Errorf("%d pending", n)
	}
}

func TestConcurrentAcceptsAreAllTracked(t *testing.T) {
	t.Parallel()
	f := newRedriveFixture(t)
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.r.track(t.Context(), pendingEntry{Kind: pendingRequest, DeliveryID: idN(int64(i + 1)), AcceptedAt: f.now})
		}()
	}
	wg.Wait()
	if n := f.pendingCount(t); n != 200 {
		t.Errorf("%d tracked, want 200", n)
	}
	head, _, _, _ := f.cursors.Get(t.Context(), headKey)
	t.Logf("200 concurrent accepts took %d flushes", head.N)
}

// A reschedule is published again, the same change, until the scheduler has
// handled it or a newer one; a refusal counts as handled.
func TestRedriveReschedule(t *testing.T) {
	t.Parallel()
	f := newRedriveFixture(t)
	id := idN(1)
	pickup := t0.Add(3 * time.Hour)
	change := messages.DeliveryRescheduled{DeliveryID: id, PickupTime: &pickup, RequestedAt: f.now}
	f.r.track(t.Context(), pendingEntry{Kind: pendingReschedule, DeliveryID: id, AcceptedAt: f.now, Reschedule: &change})

	// The scheduler handled an older reschedule only.
	f.sched.tx[id] = transactionView{DeliveryID: id, Status: "Scheduled", LastReschedule: &rescheduleOutcome{RequestedAt: t0.Add(-time.Minute)}}
	f.now = f.now.Add(time.Minute)
	if rep := f.sweep(t); rep.Redriven != 1 {
		t.Fatalf("report %+v, want the reschedule published again", rep)
	}
	msgs := f.pub.Messages()
	if len(msgs) != 1 || msgs[0].Type != messages.TypeDeliveryRescheduled {
		t.Fatalf("published %+v, want the reschedule", msgs)
	}
	if got, ok := msgs[0].Data.(messages.DeliveryRescheduled); !ok || !got.RequestedAt.Equal(t0) || got.PickupTime == nil || !got.PickupTime.Equal(pickup) {
		t.Errorf("published %+v, want the same change, requested at %s", msgs[0].Data, t0)
	}

	// Refused, at the same request time: handled.
	f.sched.tx[id] = transactionView{DeliveryID: id, Status: "Scheduled", LastReschedule: &rescheduleOutcome{RequestedAt: t0, Refused: "in flight"}}
	if rep := f.sweep(t); rep.Confirmed != 1 || f.pendingCount(t) != 0 {
		t.Errorf("report %+v, want the refused reschedule taken as handled", rep)
	}
}
