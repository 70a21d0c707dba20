package main

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/fabrikam/dronedelivery/internal/messages"
	"github.com/fabrikam/dronedelivery/internal/telemetry"
	"github.com/fabrikam/dronedelivery/internal/telemetry/telemetrytest"
	"github.com/fabrikam/dronedelivery/internal/workflow"
)

func TestRequestedHappyPath(t *testing.T) {
	f := newFixture(t)
	req := request("d1")

	if err := f.proc.Requested(t.Context(), req); err != nil {
		t.Fatalf("Requested: %v", err)
	}
	if got := f.steps.stepsRun(); !equalSteps(got, allSteps) {
		t.Fatalf("steps run %v, want %v", got, allSteps)
	}
	for _, e := range f.steps.Events("do") {
		if !reflect.DeepEqual(e.req, req) {
			t.Fatalf("step %s got request %+v, want %+v", e.step, e.req, req)
		}
	}
	if u := f.steps.undos(); len(u) != 0 {
		t.Fatalf("undo called on the happy path: %+v", u)
	}

	tx := f.tx(t, "d1")
	if tx.Status != StatusScheduled {
		t.Fatalf("status = %s, want Scheduled", tx.Status)
	}
	if tx.Progress.Next != workflow.StepDone {
		t.Fatalf("progress.next = %s, want done", tx.Progress.Next)
	}
	if !tx.HasRequest || !reflect.DeepEqual(tx.Request, req) {
		t.Fatalf("stored request %+v (has=%v), want %+v", tx.Request, tx.HasRequest, req)
	}
	if tx.Progress.Drone == nil || *tx.Progress.Drone != f.steps.drone {
		t.Fatalf("drone = %+v, want %+v", tx.Progress.Drone, f.steps.drone)
	}
	if tx.Progress.ThirdParty == nil || tx.Progress.ThirdParty.Required {
		t.Fatalf("third party = %+v, want a not-required decision", tx.Progress.ThirdParty)
	}
	if tx.Attempts != 0 || tx.WaitingForDroneSince != nil || tx.Reason != "" || tx.CancelRequested {
		t.Fatalf("unexpected leftovers in %+v", tx)
	}
	if !tx.CreatedAt.Equal(t0) || !tx.UpdatedAt.Equal(t0) {
		t.Fatalf("createdAt %v updatedAt %v, want %v", tx.CreatedAt, tx.UpdatedAt, t0)
	}
	s := tx.schedule()
	if s == nil || s.DroneID != "drone-7" || s.PickupETA == nil || !s.PickupETA.Equal(f.steps.drone.PickupETA) ||
		s.DeliveryETA == nil || !s.DeliveryETA.Equal(f.steps.drone.DeliveryETA) || !s.PickupTime.Equal(req.PickupTime) || s.Carrier != "" {
		t.Fatalf("schedule = %+v", s)
	}
	if msgs := f.pub.Messages(); len(msgs) != 0 {
		t.Fatalf("published %+v on the happy path", msgs)
	}

	// A redelivered request finds the transaction ended and runs nothing.
	f.steps.reset()
	f.clock.advance(time.Minute)
	if err := f.proc.Requested(t.Context(), req); err != nil {
		t.Fatalf("redelivered Requested: %v", err)
	}
	if ev := f.steps.Events(); len(ev) != 0 {
		t.Fatalf("redelivery called the steps: %+v", ev)
	}
	if again := f.tx(t, "d1"); !reflect.DeepEqual(again, tx) {
		t.Fatalf("redelivery changed the record:\n got %+v\nwant %+v", again, tx)
	}
}

func TestRequestedThirdPartyScheduleShowsCarrier(t *testing.T) {
	f := newFixture(t)
	f.steps.thirdParty = workflow.ThirdParty{Required: true, Reason: "too far", Carrier: "Contoso Couriers", BookingID: "bk-1"}
	if err := f.proc.Requested(t.Context(), request("d1")); err != nil {
		t.Fatal(err)
	}
	tx := f.tx(t, "d1")
	if tx.Status != StatusScheduled || tx.Progress.Drone != nil {
		t.Fatalf("record %+v, want Scheduled without a drone", tx)
	}
	s := tx.schedule()
	if s == nil || s.Carrier != "Contoso Couriers" || s.CarrierBookingID != "bk-1" || s.ThirdPartyReason != "too far" || s.DroneID != "" || s.PickupETA != nil {
		t.Fatalf("schedule = %+v", s)
	}
}

func TestRequestedResumesFromCheckpoint(t *testing.T) {
	f := newFixture(t)
	req := request("d1")
	f.steps.script(workflow.StepDrone, errTransient)

	err := f.proc.Requested(t.Context(), req)
	if err == nil || !errors.Is(err, errTransient) {
		t.Fatalf("Requested = %v, want the transient drone error", err)
	}
	tx := f.tx(t, "d1")
	if tx.Status != StatusInProgress || tx.Progress.Next != workflow.StepDrone || tx.Attempts != 1 {
		t.Fatalf("checkpoint %+v, want InProgress at drone with 1 attempt", tx)
	}
	if tx.Progress.ThirdParty == nil {
		t.Fatal("the third-party decision was not checkpointed")
	}

	f.steps.reset()
	if err := f.proc.Requested(t.Context(), req); err != nil {
		t.Fatalf("resumed Requested: %v", err)
	}
	want := []workflow.Step{workflow.StepDrone, workflow.StepDelivery}
	if got := f.steps.stepsRun(); !equalSteps(got, want) {
		t.Fatalf("resume ran %v, want %v", got, want)
	}
	tx = f.tx(t, "d1")
	if tx.Status != StatusScheduled || tx.Progress.Next != workflow.StepDone || tx.Attempts != 0 || tx.Progress.Drone == nil {
		t.Fatalf("record after resume %+v", tx)
	}
}

// A record whose last step was checkpointed without the Scheduled status (an
// older version wrote it) is finished without running any step.
func TestRequestedFinishesCheckpointAtDone(t *testing.T) {
	f := newFixture(t)
	req := request("d1")
	old := Transaction{DeliveryID: "d1", Status: StatusInProgress, Request: req, HasRequest: true,
		Progress: workflow.Progress{Next: workflow.StepDone}, CreatedAt: t0, UpdatedAt: t0}
	if err := f.store.Create(t.Context(), txKey("d1"), old); err != nil {
		t.Fatal(err)
	}
	if err := f.proc.Requested(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	if ev := f.steps.Events(); len(ev) != 0 {
		t.Fatalf("steps called: %+v", ev)
	}
	if tx := f.tx(t, "d1"); tx.Status != StatusScheduled {
		t.Fatalf("status = %s, want Scheduled", tx.Status)
	}
}

func TestRequestedRejection(t *testing.T) {
	tests := []struct {
		at      workflow.Step
		wantRun []workflow.Step
	}{
		{workflow.StepAccount, []workflow.Step{workflow.StepAccount}},
		{workflow.StepPackage, []workflow.Step{workflow.StepAccount, workflow.StepThirdParty, workflow.StepPackage}},
		{workflow.StepDrone, []workflow.Step{workflow.StepAccount, workflow.StepThirdParty, workflow.StepPackage, workflow.StepDrone}},
	}
	for _, tt := range tests {
		t.Run(tt.at.String(), func(t *testing.T) {
			f := newFixture(t)
			req := request("d1")
			reason := fmt.Sprintf("%s says no", tt.at)
			f.steps.script(tt.at, &workflow.Rejection{Step: tt.at, Reason: reason})

			if err := f.proc.Requested(t.Context(), req); err != nil {
				t.Fatalf("Requested = %v, want nil (a rejection is acknowledged)", err)
			}
			if got := f.steps.stepsRun(); !equalSteps(got, tt.wantRun) {
				t.Fatalf("steps run %v, want %v", got, tt.wantRun)
			}
			u := f.steps.undos()
			if len(u) != 1 || u[0].step != tt.at || u[0].outcome.Failed || !reflect.DeepEqual(u[0].req, req) {
				t.Fatalf("undos %+v, want one Undo upTo %s (not failed)", u, tt.at)
			}
			tx := f.tx(t, "d1")
			if tx.Status != StatusRejected || tx.Reason != reason {
				t.Fatalf("record status %s reason %q, want Rejected %q", tx.Status, tx.Reason, reason)
			}
			if tx.schedule() != nil {
				t.Fatal("a rejected transaction has a schedule")
			}
			if msgs := f.pub.Messages(); len(msgs) != 0 {
				t.Fatalf("a rejection published %+v", msgs)
			}

			// Redelivery is acknowledged with no further work.
			f.steps.reset()
			if err := f.proc.Requested(t.Context(), req); err != nil {
				t.Fatal(err)
			}
			if ev := f.steps.Events(); len(ev) != 0 {
				t.Fatalf("redelivery of a rejected request called %+v", ev)
			}
		})
	}
}

// A rejection whose undo fails transiently is retried, and the retry undoes
// and rejects.
func TestRequestedRejectionUndoFailsThenRetries(t *testing.T) {
	f := newFixture(t)
	req := request("d1")
	f.steps.script(workflow.StepPackage, &workflow.Rejection{Step: workflow.StepPackage, Reason: "taken"},
		&workflow.Rejection{Step: workflow.StepPackage, Reason: "taken"})
	f.steps.failUndo(errTransient)

	if err := f.proc.Requested(t.Context(), req); !errors.Is(err, errTransient) {
		t.Fatalf("Requested = %v, want the undo error", err)
	}
	if tx := f.tx(t, "d1"); tx.Status != StatusInProgress {
		t.Fatalf("status %s after a failed undo, want InProgress", tx.Status)
	}
	if err := f.proc.Requested(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	if tx := f.tx(t, "d1"); tx.Status != StatusRejected || tx.Reason != "taken" {
		t.Fatalf("record %+v, want Rejected", tx)
	}
	if n := len(f.steps.undos()); n != 2 {
		t.Fatalf("undo called %d times, want 2", n)
	}
}

func checkFailureMessage(t *testing.T, f *fixture, req messages.DeliveryRequested, step workflow.Step) messages.DeliveryFailed {
	t.Helper()
	msgs := f.pub.Messages()
	if len(msgs) != 1 {
		t.Fatalf("published %d messages, want 1: %+v", len(msgs), msgs)
	}
	m := msgs[0]
	if m.Topic != messages.TopicDeliveryFailures || m.Type != messages.TypeDeliveryFailed || m.Key != req.DeliveryID {
		t.Fatalf("published to %q type %q key %q", m.Topic, m.Type, m.Key)
	}
	df, ok := m.Data.(messages.DeliveryFailed)
	if !ok {
		t.Fatalf("published data is %T, want messages.DeliveryFailed", m.Data)
	}
	if df.DeliveryID != req.DeliveryID || !reflect.DeepEqual(df.Request, req) ||
		df.FailedStep != step.String() || df.ReachedStep != step.String() || df.Reason == "" || df.FailedAt.IsZero() {
		t.Fatalf("failure message %+v", df)
	}
	return df
}

func TestRequestedPermanentFailure(t *testing.T) {
	f := newFixture(t)
	req := request("d1")
	f.steps.script(workflow.StepDelivery, &workflow.Permanent{Step: workflow.StepDelivery, Err: errors.New("400 bad body")})

	if err := f.proc.Requested(t.Context(), req); err != nil {
		t.Fatalf("Requested = %v, want nil (the supervisor takes over)", err)
	}
	df := checkFailureMessage(t, f, req, workflow.StepDelivery)
	if df.DroneID != "drone-7" || !strings.Contains(df.Reason, "400 bad body") || !df.FailedAt.Equal(t0) {
		t.Fatalf("failure message %+v, want drone-7 and the cause", df)
	}
	tx := f.tx(t, "d1")
	if tx.Status != StatusFailed || tx.FailedStep != "delivery" || !strings.Contains(tx.Reason, "400 bad body") {
		t.Fatalf("record %+v, want Failed at delivery", tx)
	}
	if u := f.steps.undos(); len(u) != 0 {
		t.Fatalf("the scheduler undid a failed transaction itself: %+v", u)
	}

	// Redelivery neither reruns nor republishes.
	f.steps.reset()
	if err := f.proc.Requested(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	if ev := f.steps.Events(); len(ev) != 0 || len(f.pub.Messages()) != 1 {
		t.Fatalf("redelivery of a failed request: steps %+v, messages %d", ev, len(f.pub.Messages()))
	}
}

func TestRequestedPermanentFailureCarriesBooking(t *testing.T) {
	f := newFixture(t)
	req := request("d1")
	f.steps.thirdParty = workflow.ThirdParty{Required: true, Carrier: "Contoso Couriers", BookingID: "bk-9"}
	f.steps.script(workflow.StepDelivery, &workflow.Permanent{Step: workflow.StepDelivery, Err: errors.New("boom")})
	if err := f.proc.Requested(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	df := checkFailureMessage(t, f, req, workflow.StepDelivery)
	if df.BookingID != "bk-9" || df.DroneID != "" {
		t.Fatalf("failure message %+v, want booking bk-9 and no drone", df)
	}
}

func TestRequestedPublishFailureIsRetried(t *testing.T) {
	f := newFixture(t)
	req := request("d1")
	f.steps.script(workflow.StepAccount, &workflow.Permanent{Step: workflow.StepAccount, Err: errors.New("boom")})
	f.pub.Err = errors.New("broker down")
	if err := f.proc.Requested(t.Context(), req); err == nil {
		t.Fatal("Requested = nil although the failure could not be published")
	}
	if tx := f.tx(t, "d1"); tx.Status != StatusInProgress {
		t.Fatalf("status %s, want InProgress until the failure is published", tx.Status)
	}
}

func TestRequestedTransientFailures(t *testing.T) {
	f := newFixture(t)
	req := request("d1")
	f.steps.script(workflow.StepPackage, errTransient, errTransient, errTransient)

	for attempt := 1; attempt < 3; attempt++ {
		err := f.proc.Requested(t.Context(), req)
		if err == nil || !errors.Is(err, errTransient) {
			t.Fatalf("attempt %d: Requested = %v, want the transient error (retry)", attempt, err)
		}
		tx := f.tx(t, "d1")
		if tx.Status != StatusInProgress || tx.Attempts != attempt || tx.Progress.Next != workflow.StepPackage {
			t.Fatalf("attempt %d: record %+v", attempt, tx)
		}
		if msgs := f.pub.Messages(); len(msgs) != 0 {
			t.Fatalf("attempt %d published %+v", attempt, msgs)
		}
	}

	if err := f.proc.Requested(t.Context(), req); err != nil {
		t.Fatalf("attempt 3: Requested = %v, want nil (failed and handed over)", err)
	}
	df := checkFailureMessage(t, f, req, workflow.StepPackage)
	if !strings.Contains(df.Reason, errTransient.Error()) || !strings.Contains(df.Reason, "3 attempts") {
		t.Fatalf("reason %q", df.Reason)
	}
	tx := f.tx(t, "d1")
	if tx.Status != StatusFailed || tx.FailedStep != "package" || tx.Attempts != 3 {
		t.Fatalf("record %+v, want Failed at package after 3 attempts", tx)
	}
	want := []workflow.Step{workflow.StepAccount, workflow.StepThirdParty,
		workflow.StepPackage, workflow.StepPackage, workflow.StepPackage}
	if got := f.steps.stepsRun(); !equalSteps(got, want) {
		t.Fatalf("steps run %v, want %v", got, want)
	}
}

// Attempts count consecutive transient failures: a step that succeeds resets
// them, so failures spread over several steps do not add up.
func TestRequestedAttemptsResetOnProgress(t *testing.T) {
	f := newFixture(t)
	req := request("d1")
	f.steps.script(workflow.StepAccount, errTransient, errTransient)
	f.steps.script(workflow.StepDrone, errTransient, errTransient)
	for range 2 {
		if err := f.proc.Requested(t.Context(), req); err == nil {
			t.Fatal("want a retry")
		}
	}
	if tx := f.tx(t, "d1"); tx.Attempts != 2 || tx.Progress.Next != workflow.StepAccount {
		t.Fatalf("record %+v", tx)
	}
	// account now succeeds; drone fails twice more.
	for range 2 {
		if err := f.proc.Requested(t.Context(), req); err == nil {
			t.Fatal("want a retry")
		}
	}
	if tx := f.tx(t, "d1"); tx.Attempts != 2 || tx.Progress.Next != workflow.StepDrone || tx.Status != StatusInProgress {
		t.Fatalf("record %+v, want 2 attempts at drone", tx)
	}
	if err := f.proc.Requested(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	if tx := f.tx(t, "d1"); tx.Status != StatusScheduled || tx.Attempts != 0 {
		t.Fatalf("record %+v, want Scheduled", tx)
	}
}

func TestRequestedNoDroneAvailable(t *testing.T) {
	f := newFixture(t)
	req := request("d1")
	f.steps.script(workflow.StepDrone, workflow.ErrNoDroneAvailable, workflow.ErrNoDroneAvailable, workflow.ErrNoDroneAvailable)

	if err := f.proc.Requested(t.Context(), req); err == nil {
		t.Fatal("Requested = nil, want a retry while no drone is free")
	}
	tx := f.tx(t, "d1")
	if tx.Status != StatusInProgress || tx.WaitingForDroneSince == nil || !tx.WaitingForDroneSince.Equal(t0) || tx.Attempts != 0 {
		t.Fatalf("record %+v, want waiting since %v", tx, t0)
	}

	f.clock.advance(30 * time.Second)
	if err := f.proc.Requested(t.Context(), req); err == nil {
		t.Fatal("Requested = nil within the wait, want a retry")
	}
	tx = f.tx(t, "d1")
	if tx.Status != StatusInProgress || !tx.WaitingForDroneSince.Equal(t0) {
		t.Fatalf("record %+v, want the wait to keep its start", tx)
	}
	if u := f.steps.undos(); len(u) != 0 {
		t.Fatalf("undo during the wait: %+v", u)
	}

	f.clock.advance(31 * time.Second)
	if err := f.proc.Requested(t.Context(), req); err != nil {
		t.Fatalf("Requested after the wait = %v, want nil (rejected)", err)
	}
	tx = f.tx(t, "d1")
	if tx.Status != StatusRejected || !strings.Contains(tx.Reason, "no drone") {
		t.Fatalf("record %+v, want Rejected for no drone", tx)
	}
	u := f.steps.undos()
	if len(u) != 1 || u[0].step != workflow.StepDrone || u[0].outcome.Failed {
		t.Fatalf("undos %+v, want one upTo drone", u)
	}
	if msgs := f.pub.Messages(); len(msgs) != 0 {
		t.Fatalf("published %+v", msgs)
	}
}

func TestRequestedDroneFreedDuringWait(t *testing.T) {
	f := newFixture(t)
	req := request("d1")
	f.steps.script(workflow.StepDrone, workflow.ErrNoDroneAvailable)
	if err := f.proc.Requested(t.Context(), req); err == nil {
		t.Fatal("want a retry")
	}
	f.clock.advance(45 * time.Second)
	if err := f.proc.Requested(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	tx := f.tx(t, "d1")
	if tx.Status != StatusScheduled || tx.WaitingForDroneSince != nil {
		t.Fatalf("record %+v, want Scheduled with the wait cleared", tx)
	}
}

func TestCanceledBeforeRequest(t *testing.T) {
	f := newFixture(t)
	tel, err := telemetry.New(t.Context(), "scheduler")
	if err != nil {
		t.Fatal(err)
	}
	f.proc.biz = tel.Business()
	if err := f.proc.Canceled(t.Context(), cancelOf("d1")); err != nil {
		t.Fatalf("Canceled: %v", err)
	}
	tx := f.tx(t, "d1")
	if tx.Status != StatusCanceled || !tx.CancelRequested || tx.HasRequest || tx.Reason == "" {
		t.Fatalf("record %+v, want a Canceled placeholder", tx)
	}
	if ev := f.steps.Events(); len(ev) != 0 {
		t.Fatalf("a cancel with nothing done called %+v", ev)
	}

	if err := f.proc.Requested(t.Context(), request("d1")); err != nil {
		t.Fatalf("Requested after the cancel: %v", err)
	}
	if ev := f.steps.Events(); len(ev) != 0 {
		t.Fatalf("a canceled request ran %+v", ev)
	}
	if tx := f.tx(t, "d1"); tx.Status != StatusCanceled {
		t.Fatalf("status %s, want Canceled", tx.Status)
	}
	// Canceling again is acknowledged.
	if err := f.proc.Canceled(t.Context(), cancelOf("d1")); err != nil {
		t.Fatal(err)
	}
	// Counted once, like any other cancel.
	rec := httptest.NewRecorder()
	tel.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	m, err := telemetrytest.Parse(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := m.Value("deliveries_canceled_total", nil); n != 1 {
		t.Errorf("deliveries_canceled_total = %v, want 1", n)
	}
}

func TestCanceledAfterScheduled(t *testing.T) {
	f := newFixture(t)
	req := request("d1")
	if err := f.proc.Requested(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	f.steps.reset()

	if err := f.proc.Canceled(t.Context(), cancelOf("d1")); err != nil {
		t.Fatalf("Canceled: %v", err)
	}
	u := f.steps.undos()
	if len(u) != 1 || u[0].step < workflow.StepDelivery || u[0].outcome.Failed || !reflect.DeepEqual(u[0].req, req) {
		t.Fatalf("undos %+v, want one covering every step", u)
	}
	if ev := f.steps.Events("do"); len(ev) != 0 {
		t.Fatalf("cancel ran steps: %+v", ev)
	}
	tx := f.tx(t, "d1")
	if tx.Status != StatusCanceled || !tx.CancelRequested || tx.Reason != "canceled by the client" {
		t.Fatalf("record %+v, want Canceled", tx)
	}
	if tx.schedule() != nil {
		t.Fatal("a canceled delivery still shows a schedule")
	}

	// A repeated cancel is acknowledged without another undo.
	if err := f.proc.Canceled(t.Context(), cancelOf("d1")); err != nil {
		t.Fatal(err)
	}
	if n := len(f.steps.undos()); n != 1 {
		t.Fatalf("repeated cancel: %d undos, want 1", n)
	}
	// So is a redelivered request.
	if err := f.proc.Requested(t.Context(), req); err != nil || len(f.steps.Events("do")) != 0 {
		t.Fatalf("redelivered request after cancel: err %v, steps %+v", err, f.steps.Events("do"))
	}
}

func TestCanceledAfterScheduledUndoFails(t *testing.T) {
	f := newFixture(t)
	if err := f.proc.Requested(t.Context(), request("d1")); err != nil {
		t.Fatal(err)
	}
	f.steps.failUndo(errTransient)
	if err := f.proc.Canceled(t.Context(), cancelOf("d1")); !errors.Is(err, errTransient) {
		t.Fatalf("Canceled = %v, want the undo error (retry)", err)
	}
	if tx := f.tx(t, "d1"); tx.Status != StatusScheduled {
		t.Fatalf("status %s, want Scheduled until the undo succeeds", tx.Status)
	}
	if err := f.proc.Canceled(t.Context(), cancelOf("d1")); err != nil {
		t.Fatal(err)
	}
	if tx := f.tx(t, "d1"); tx.Status != StatusCanceled {
		t.Fatalf("status %s, want Canceled", tx.Status)
	}
}

// A cancel that arrives after the package was delivered changes nothing and
// says why: the undo stopped at the delivery, before the drone, package and
// carrier booking.
func TestCancelOfCompletedDeliveryIsRefused(t *testing.T) {
	f := newFixture(t)
	if err := f.proc.Requested(t.Context(), request("d1")); err != nil {
		t.Fatal(err)
	}
	f.steps.failUndo(&workflow.TooLate{Stage: messages.StageCompleted})
	if err := f.proc.Canceled(t.Context(), cancelOf("d1")); err != nil {
		t.Fatalf("Canceled = %v, want it acknowledged", err)
	}
	tx := f.tx(t, "d1")
	if tx.Status != StatusScheduled || tx.CancelRequested || !strings.Contains(tx.CancelRefused, "Completed") || tx.schedule() == nil {
		t.Fatalf("record %+v, want still Scheduled with the refusal", tx)
	}
	if v := view(tx); v.CancelRefused != tx.CancelRefused {
		t.Errorf("view shows refusal %q", v.CancelRefused)
	}
}

func TestCanceledAfterEndedIsAcknowledged(t *testing.T) {
	for _, end := range []struct {
		name   string
		script error
		want   Status
	}{
		{"rejected", &workflow.Rejection{Step: workflow.StepAccount, Reason: "no"}, StatusRejected},
		{"failed", &workflow.Permanent{Step: workflow.StepAccount, Err: errors.New("x")}, StatusFailed},
	} {
		t.Run(end.name, func(t *testing.T) {
			f := newFixture(t)
			f.steps.script(workflow.StepAccount, end.script)
			if err := f.proc.Requested(t.Context(), request("d1")); err != nil {
				t.Fatal(err)
			}
			f.steps.reset()
			if err := f.proc.Canceled(t.Context(), cancelOf("d1")); err != nil {
				t.Fatal(err)
			}
			if ev := f.steps.Events(); len(ev) != 0 {
				t.Fatalf("cancel of an ended transaction called %+v", ev)
			}
			if tx := f.tx(t, "d1"); tx.Status != end.want {
				t.Fatalf("status %s, want %s", tx.Status, end.want)
			}
		})
	}
}

// A cancel of a transaction nobody runs right now (it waits for redelivery)
// undoes it at once.
func TestCanceledWhileWaitingForDrone(t *testing.T) {
	f := newFixture(t)
	req := request("d1")
	f.steps.script(workflow.StepDrone, workflow.ErrNoDroneAvailable)
	if err := f.proc.Requested(t.Context(), req); err == nil {
		t.Fatal("want a retry")
	}
	if err := f.proc.Canceled(t.Context(), cancelOf("d1")); err != nil {
		t.Fatal(err)
	}
	u := f.steps.undos()
	if len(u) != 1 || u[0].step != workflow.StepDrone {
		t.Fatalf("undos %+v, want one upTo drone", u)
	}
	if tx := f.tx(t, "d1"); tx.Status != StatusCanceled {
		t.Fatalf("status %s, want Canceled", tx.Status)
	}
	f.steps.reset()
	if err := f.proc.Requested(t.Context(), req); err != nil || len(f.steps.Events()) != 0 {
		t.Fatalf("redelivery after cancel: %v %+v", err, f.steps.Events())
	}
}

// A cancel arriving while a step runs: the step's side effect happens after
// the cancel's undo, so the processor that ran it must undo it as well, and
// the transaction must never be recorded as scheduled.
func TestCanceledRacingStep(t *testing.T) {
	for _, step := range []workflow.Step{workflow.StepThirdParty, workflow.StepPackage, workflow.StepDrone, workflow.StepDelivery} {
		t.Run(step.String(), func(t *testing.T) {
			f := newFixture(t)
			req := request("d1")
			var cancelErr error
			f.steps.during(step, func() {
				cancelErr = f.proc.Canceled(t.Context(), cancelOf("d1"))
			})

			if err := f.proc.Requested(t.Context(), req); err != nil {
				t.Fatalf("Requested: %v", err)
			}
			if cancelErr != nil {
				t.Fatalf("Canceled (during %s): %v", step, cancelErr)
			}

			tx := f.tx(t, "d1")
			if tx.Status != StatusCanceled {
				t.Fatalf("status %s, want Canceled", tx.Status)
			}
			if st := f.store.statuses(); contains(st, StatusScheduled) {
				t.Fatalf("a Scheduled status was persisted: %v", st)
			}
			ev := f.steps.Events()
			doneAt := -1
			for i, e := range ev {
				if e.op == "done" && e.step == step {
					doneAt = i
				}
			}
			if doneAt < 0 {
				t.Fatalf("the %s step never completed: %+v", step, ev)
			}
			undoneAfter := false
			for _, e := range ev[doneAt+1:] {
				if e.op == "undo" && e.step >= step && !e.outcome.Failed {
					undoneAfter = true
				}
				if e.op == "do" {
					t.Fatalf("step %s ran after the cancel: %+v", e.step, ev)
				}
			}
			if !undoneAfter {
				t.Fatalf("no undo covering %s after it completed: %+v", step, ev)
			}
			if msgs := f.pub.Messages(); len(msgs) != 0 {
				t.Fatalf("published %+v", msgs)
			}
		})
	}
}

// Bug: the undo of a side effect that escaped a cancel (the step completed
// after the cancel's undo) is attempted once; when it fails, the message is
// retried, but the retry finds the record Canceled and returns without
// undoing, so the side effect (a package or delivery record, which have no
// tombstones) stays forever.
func TestCanceledRacingStepUndoRetried(t *testing.T) {
	f := newFixture(t)
	req := request("d1")
	f.steps.during(workflow.StepPackage, func() {
		if err := f.proc.Canceled(t.Context(), cancelOf("d1")); err != nil {
			t.Errorf("Canceled: %v", err)
		}
	})
	// The cancel's own undo succeeds; the escaped step's undo fails once.
	f.steps.failUndo(nil, errTransient)

	if err := f.proc.Requested(t.Context(), req); !errors.Is(err, errTransient) {
		t.Fatalf("Requested = %v, want the undo error so the message is retried", err)
	}
	before := len(f.steps.undos())
	if err := f.proc.Requested(t.Context(), req); err != nil {
		t.Fatalf("redelivered Requested: %v", err)
	}
	u := f.steps.undos()
	if len(u) <= before || u[len(u)-1].step < workflow.StepPackage {
		t.Fatalf("the escaped package step was never undone after the failed undo: %+v", u)
	}
}

// Bug: a step that fails because a racing cancel already undid its resource
// (the third-party service answers 409 booking-canceled, which the client
// classifies Permanent) makes the processor publish a delivery-failures
// message for a delivery that was canceled.
func TestCanceledRacingStepThatFailsPublishesNothing(t *testing.T) {
	f := newFixture(t)
	req := request("d1")
	f.steps.during(workflow.StepThirdParty, func() {
		if err := f.proc.Canceled(t.Context(), cancelOf("d1")); err != nil {
			t.Errorf("Canceled: %v", err)
		}
	})
	f.steps.script(workflow.StepThirdParty, &workflow.Permanent{Step: workflow.StepThirdParty,
		Err: errors.New("thirdparty answered 409 Third-party delivery canceled")})

	_ = f.proc.Requested(t.Context(), req) // a retry is acceptable
	if err := f.proc.Requested(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	if tx := f.tx(t, "d1"); tx.Status != StatusCanceled {
		t.Fatalf("status %s, want Canceled", tx.Status)
	}
	if msgs := f.pub.Messages(); len(msgs) != 0 {
		t.Fatalf("a canceled delivery was reported as failed: %+v", msgs)
	}
}

// Bug: ErrRaced (the drone service's assignment-released: a cancel got there
// first) is counted as a transient failure. When it is the attempt that
// reaches MaxAttempts the transaction "fails" and a failure message goes to
// the supervisor for a delivery that was canceled.
func TestErrRacedAtAttemptLimitPublishesNothing(t *testing.T) {
	f := newFixture(t)
	req := request("d1")
	f.steps.script(workflow.StepDrone, errTransient, errTransient, workflow.ErrRaced)
	for range 2 {
		if err := f.proc.Requested(t.Context(), req); err == nil {
			t.Fatal("want a retry")
		}
	}
	f.steps.during(workflow.StepDrone, func() {
		if err := f.proc.Canceled(t.Context(), cancelOf("d1")); err != nil {
			t.Errorf("Canceled: %v", err)
		}
	})
	_ = f.proc.Requested(t.Context(), req)
	if err := f.proc.Requested(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	if tx := f.tx(t, "d1"); tx.Status != StatusCanceled {
		t.Fatalf("status %s, want Canceled", tx.Status)
	}
	if msgs := f.pub.Messages(); len(msgs) != 0 {
		t.Fatalf("a canceled delivery was reported as failed: %+v", msgs)
	}
}

// ErrRaced below the attempt limit: the message is retried and the retry
// finds the cancel.
func TestErrRacedBelowLimitEndsCanceled(t *testing.T) {
	f := newFixture(t)
	req := request("d1")
	f.steps.script(workflow.StepDrone, workflow.ErrRaced)
	f.steps.during(workflow.StepDrone, func() {
		if err := f.proc.Canceled(t.Context(), cancelOf("d1")); err != nil {
			t.Errorf("Canceled: %v", err)
		}
	})
	_ = f.proc.Requested(t.Context(), req)
	if err := f.proc.Requested(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	if tx := f.tx(t, "d1"); tx.Status != StatusCanceled {
		t.Fatalf("status %s, want Canceled", tx.Status)
	}
	if msgs := f.pub.Messages(); len(msgs) != 0 {
		t.Fatalf("published %+v", msgs)
	}
}

// A redelivery of the same request running concurrently (simulated inside a
// step) does not make the transaction run any step twice after it, and the
// transaction ends Scheduled.
func TestRequestedConcurrentRedelivery(t *testing.T) {
	f := newFixture(t)
	req := request("d1")
	var innerErr error
	f.steps.during(workflow.StepPackage, func() {
		innerErr = f.proc.Requested(t.Context(), req)
	})
	if err := f.proc.Requested(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	if innerErr != nil {
		t.Fatalf("inner Requested: %v", innerErr)
	}
	if tx := f.tx(t, "d1"); tx.Status != StatusScheduled || tx.Progress.Next != workflow.StepDone {
		t.Fatalf("record %+v", tx)
	}
	// The package step ran twice (both processors were in it); the steps
	// after it ran once.
	run := f.steps.stepsRun()
	count := map[workflow.Step]int{}
	for _, s := range run {
		count[s]++
	}
	if count[workflow.StepPackage] != 2 || count[workflow.StepDrone] != 1 || count[workflow.StepDelivery] != 1 {
		t.Fatalf("steps run %v", run)
	}
	if u := f.steps.undos(); len(u) != 0 {
		t.Fatalf("undos %+v", u)
	}
}

func TestRequestedStoreDown(t *testing.T) {
	f := newFixture(t)
	f.store.Err = errors.New("state store down")
	if err := f.proc.Requested(t.Context(), request("d1")); err == nil {
		t.Fatal("Requested = nil with the store down")
	}
	if ev := f.steps.Events(); len(ev) != 0 {
		t.Fatalf("steps ran without a record: %+v", ev)
	}
}

func TestRescheduled(t *testing.T) {
	newPickup := time.Date(2030, 5, 14, 15, 30, 0, 0, time.UTC)
	resched := messages.DeliveryRescheduled{DeliveryID: "d1", PickupTime: &newPickup, RequestedAt: t0}

	t.Run("unknown delivery waits", func(t *testing.T) {
		f := newFixture(t)
		if err := f.proc.Rescheduled(t.Context(), resched); err == nil {
			t.Fatal("Rescheduled = nil for a delivery not scheduled yet, want a retry")
		}
		if f.store.Len() != 0 {
			t.Fatal("a reschedule created a record")
		}
	})

	t.Run("in progress waits", func(t *testing.T) {
		f := newFixture(t)
		f.steps.script(workflow.StepDrone, errTransient)
		_ = f.proc.Requested(t.Context(), request("d1"))
		if err := f.proc.Rescheduled(t.Context(), resched); err == nil {
			t.Fatal("Rescheduled = nil before the transaction ended, want a retry")
		}
		if ev := f.steps.Events("reschedule"); len(ev) != 0 {
			t.Fatalf("reschedule ran early: %+v", ev)
		}
	})

	t.Run("scheduled", func(t *testing.T) {
		f := newFixture(t)
		req := request("d1")
		if err := f.proc.Requested(t.Context(), req); err != nil {
			t.Fatal(err)
		}
		moved := f.steps.drone
		moved.PickupETA = newPickup.Add(5 * time.Minute)
		moved.DeliveryETA = newPickup.Add(30 * time.Minute)
		f.steps.reschedDrn = &moved
		f.clock.advance(time.Hour)

		if err := f.proc.Rescheduled(t.Context(), resched); err != nil {
			t.Fatalf("Rescheduled: %v", err)
		}
		ev := f.steps.Events("reschedule")
		if len(ev) != 1 {
			t.Fatalf("Reschedule called %d times", len(ev))
		}
		want := req
		want.PickupTime = newPickup
		if !reflect.DeepEqual(ev[0].req, want) {
			t.Fatalf("Reschedule got %+v, want the merged request %+v", ev[0].req, want)
		}
		tx := f.tx(t, "d1")
		if tx.Status != StatusScheduled || tx.Reschedules != 1 || !tx.Request.PickupTime.Equal(newPickup) ||
			!reflect.DeepEqual(tx.Request, want) || tx.Progress.Drone == nil || *tx.Progress.Drone != moved ||
			!tx.UpdatedAt.Equal(t0.Add(time.Hour)) {
			t.Fatalf("record after reschedule %+v", tx)
		}
		if s := tx.schedule(); s == nil || !s.PickupTime.Equal(newPickup) || !s.PickupETA.Equal(moved.PickupETA) {
			t.Fatalf("schedule %+v", s)
		}
		if lr := tx.LastReschedule; lr == nil || !lr.RequestedAt.Equal(t0) || lr.Refused != "" {
			t.Fatalf("last reschedule %+v, want applied, requested at %s", lr, t0)
		}

		// The same message again, or an older one arriving late, changes
		// nothing: it must not undo the newer change.
		older := time.Date(2030, 5, 14, 9, 0, 0, 0, time.UTC)
		late := messages.DeliveryRescheduled{DeliveryID: "d1", PickupTime: &older, RequestedAt: t0.Add(-time.Minute)}
		for _, m := range []messages.DeliveryRescheduled{resched, late} {
			if err := f.proc.Rescheduled(t.Context(), m); err != nil {
				t.Fatal(err)
			}
		}
		if n := len(f.steps.Events("reschedule")); n != 1 {
			t.Fatalf("Reschedule called %d times, want the late copies ignored", n)
		}
		if tx := f.tx(t, "d1"); !tx.Request.PickupTime.Equal(newPickup) || tx.Reschedules != 1 {
			t.Fatalf("record %+v after late copies", tx)
		}
	})

	t.Run("merges only given fields", func(t *testing.T) {
		f := newFixture(t)
		req := request("d1")
		if err := f.proc.Requested(t.Context(), req); err != nil {
			t.Fatal(err)
		}
		drop := req.Dropoff
		drop.Name, drop.Latitude = "Elsewhere", 47.7
		deadline := time.Date(2030, 5, 15, 0, 0, 0, 0, time.UTC)
		if err := f.proc.Rescheduled(t.Context(), messages.DeliveryRescheduled{DeliveryID: "d1", Dropoff: &drop, Deadline: &deadline}); err != nil {
			t.Fatal(err)
		}
		want := req
		want.Dropoff, want.Deadline = drop, &deadline
		if got := f.steps.Events("reschedule")[0].req; !reflect.DeepEqual(got, want) {
			t.Fatalf("Reschedule got %+v, want %+v", got, want)
		}
	})

	t.Run("refused is acknowledged", func(t *testing.T) {
		f := newFixture(t)
		if err := f.proc.Requested(t.Context(), request("d1")); err != nil {
			t.Fatal(err)
		}
		f.steps.reschedErrs = []error{&workflow.Rejection{Step: workflow.StepDelivery, Reason: "in flight"}}
		if err := f.proc.Rescheduled(t.Context(), resched); err != nil {
			t.Fatalf("Rescheduled = %v, want nil", err)
		}
		tx := f.tx(t, "d1")
		if tx.Reschedules != 0 || tx.Request.PickupTime.Equal(newPickup) {
			t.Fatalf("a refused reschedule changed the record: %+v", tx)
		}
		if lr := tx.LastReschedule; lr == nil || !lr.RequestedAt.Equal(t0) || !strings.Contains(lr.Refused, "in flight") {
			t.Fatalf("last reschedule %+v, want refused with the reason", lr)
		}
	})

	t.Run("transient failure is retried", func(t *testing.T) {
		f := newFixture(t)
		if err := f.proc.Requested(t.Context(), request("d1")); err != nil {
			t.Fatal(err)
		}
		f.steps.reschedErrs = []error{errTransient}
		if err := f.proc.Rescheduled(t.Context(), resched); !errors.Is(err, errTransient) {
			t.Fatalf("Rescheduled = %v, want the transient error", err)
		}
		if tx := f.tx(t, "d1"); tx.Reschedules != 0 {
			t.Fatalf("record changed: %+v", tx)
		}
	})

	t.Run("canceled is ignored", func(t *testing.T) {
		f := newFixture(t)
		if err := f.proc.Requested(t.Context(), request("d1")); err != nil {
			t.Fatal(err)
		}
		if err := f.proc.Canceled(t.Context(), cancelOf("d1")); err != nil {
			t.Fatal(err)
		}
		before := f.tx(t, "d1")
		if err := f.proc.Rescheduled(t.Context(), resched); err != nil {
			t.Fatalf("Rescheduled on a canceled delivery = %v, want nil", err)
		}
		if ev := f.steps.Events("reschedule"); len(ev) != 0 {
			t.Fatalf("Reschedule called on a canceled delivery: %+v", ev)
		}
		if after := f.tx(t, "d1"); !reflect.DeepEqual(after, before) {
			t.Fatalf("record changed:\n%+v\n%+v", after, before)
		}
	})

	t.Run("canceled before request is ignored", func(t *testing.T) {
		f := newFixture(t)
		if err := f.proc.Canceled(t.Context(), cancelOf("d1")); err != nil {
			t.Fatal(err)
		}
		if err := f.proc.Rescheduled(t.Context(), resched); err != nil {
			t.Fatalf("Rescheduled = %v, want nil", err)
		}
	})
}
