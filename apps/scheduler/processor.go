package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/fabrikam/dronedelivery/internal/messages"
	"github.com/fabrikam/dronedelivery/internal/sidecar"
	"github.com/fabrikam/dronedelivery/internal/telemetry"
	"github.com/fabrikam/dronedelivery/internal/workflow"
)

type store interface {
	sidecar.Versioned[Transaction]
}

type publisher interface {
	Publish(ctx context.Context, topic, eventType, key string, data any) error
}

// steps runs and undoes the transaction's steps; workflow.Client is one.
type steps interface {
	Do(ctx context.Context, step workflow.Step, req messages.DeliveryRequested, p *workflow.Progress) error
	Undo(ctx context.Context, upTo workflow.Step, req messages.DeliveryRequested, o workflow.Outcome) error
	Reschedule(ctx context.Context, req messages.DeliveryRequested, p *workflow.Progress) error
}

// limits bound how long a transaction may keep trying.
type limits struct {
	// MaxAttempts is how many times a step may fail transiently: the
	// MaxAttempts-th failure ends the transaction as failed.
	MaxAttempts int
	// DroneWait is how long a transaction waits for a drone to come free
	// before it is rejected.
	DroneWait time.Duration
}

// processor runs scheduling transactions.
type processor struct {
	log    *slog.Logger
	store  store
	index  *index
	pub    publisher
	steps  steps
	limits limits
	now    func() time.Time
	// biz counts outcomes; nil counts nothing.
	biz *telemetry.Business
}

func txKey(id string) string { return "tx:" + id }

// errRetry asks for the message to be delivered again later.
type errRetry struct{ reason string }

func (e *errRetry) Error() string { return e.reason }

// Requested runs (or resumes) the transaction of a delivery request.
func (p *processor) Requested(ctx context.Context, req messages.DeliveryRequested) error {
	tx, etag, _, err := p.load(ctx, req.DeliveryID, func(t *Transaction) {
		t.Request, t.HasRequest = req, true
	})
	if err != nil {
		return err
	}
	if !tx.HasRequest {
		// A cancel got here first and left a record without the request.
		tx.Request, tx.HasRequest = req, true
	}
	return p.advance(ctx, tx, etag)
}

// load returns the transaction of id, creating it (InProgress, initialised by
// init) when there is none; created says this call created it.
func (p *processor) load(ctx context.Context, id string, init func(*Transaction)) (tx Transaction, etag string, created bool, err error) {
	for range 10 {
		var found bool
		tx, etag, found, err = p.store.Get(ctx, txKey(id))
		if err != nil || found {
			return tx, etag, false, err
		}
		now := p.now().UTC()
		tx = Transaction{DeliveryID: id, Status: StatusInProgress, CreatedAt: now, UpdatedAt: now}
		init(&tx)
		// Indexed before it exists: a crash between the two writes then
		// leaves an entry the listing skips, rather than a record in
		// progress that no sweep can find.
		if tx.Status == StatusInProgress {
			p.index.started(ctx, id, now)
		}
		err = p.store.Create(ctx, txKey(id), tx)
		if err == nil {
			tx, etag, err = p.reload(ctx, id)
			return tx, etag, true, err
		}
		if !errors.Is(err, sidecar.ErrConflict) {
			return tx, "", false, err
		}
	}
	return Transaction{}, "", false, &errRetry{"transaction record keeps changing"}
}

func (p *processor) reload(ctx context.Context, id string) (Transaction, string, error) {
	tx, etag, found, err := p.store.Get(ctx, txKey(id))
	if err == nil && !found {
		err = fmt.Errorf("transaction %s vanished", id)
	}
	return tx, etag, err
}

// advance runs the remaining steps, checkpointing after each. When another
// writer changed the record meanwhile (a cancel, a concurrent redelivery) it
// re-reads and carries on from what that writer left.
func (p *processor) advance(ctx context.Context, tx Transaction, etag string) error {
	for {
		if tx.UndoPending != nil {
			return p.undoEscaped(ctx, tx, etag)
		}
		if tx.Status.Final() {
			return nil
		}
		if tx.CancelRequested {
			return p.undo(ctx, tx, etag, StatusCanceled, "canceled by the client")
		}
		step := tx.Progress.Next
		if step == workflow.StepDone {
			// Only reachable when a checkpoint of the last step was written
			// by an older version without the status; finish it here.
			tx.Status = StatusScheduled
			_, _, err := p.checkpoint(ctx, tx, etag)
			if errors.Is(err, sidecar.ErrConflict) {
				if tx, etag, err = p.reload(ctx, tx.DeliveryID); err != nil {
					return err
				}
				continue
			}
			return err
		}

		progress := tx.Progress
		err := p.steps.Do(ctx, step, tx.Request, &progress)
		var (
			rej  *workflow.Rejection
			perm *workflow.Permanent
		)
		switch {
		case err == nil:
			done := tx
			done.Progress = progress
			done.Progress.Next = step + 1
			done.Attempts = 0
			if step == workflow.StepDrone {
				done.WaitingForDroneSince = nil
			}
			if done.Progress.Next == workflow.StepDone {
				done.Status = StatusScheduled
			}
			next, nextTag, err := p.checkpoint(ctx, done, etag)
			if errors.Is(err, sidecar.ErrConflict) {
				if tx, etag, err = p.reload(ctx, tx.DeliveryID); err != nil {
					return err
				}
				if tx.Status.Final() && tx.Status != StatusScheduled {
					// Undone while this step ran: its side effect escaped the
					// undo, so it is taken back too, durably.
					tx.UndoPending = &step
					next, nextTag, err := p.checkpoint(ctx, tx, etag)
					if err != nil {
						return err // redelivery finds the record and tries again
					}
					return p.undoEscaped(ctx, next, nextTag)
				}
				continue
			}
			if err != nil {
				return err
			}
			if next.Status == StatusScheduled {
				p.log.InfoContext(ctx, "delivery scheduled", "deliveryId", tx.DeliveryID)
				p.biz.Scheduled(ctx)
			}
			tx, etag = next, nextTag
		case p.changedMeanwhile(ctx, &tx, &etag):
			// A cancel (or another delivery of this message) moved the
			// transaction on while the step ran; the step's failure may be a
			// consequence of that, so decide again from the new state.
			continue
		case errors.Is(err, workflow.ErrRaced):
			return &errRetry{"the step raced an undo that is not visible yet"}
		case errors.As(err, &rej):
			return p.undo(ctx, tx, etag, StatusRejected, rej.Reason)
		case errors.As(err, &perm):
			return p.fail(ctx, tx, etag, step, perm.Error())
		case errors.Is(err, workflow.ErrNoDroneAvailable):
			return p.waitForDrone(ctx, tx, etag)
		default:
			return p.transient(ctx, tx, etag, step, err)
		}
	}
}

// changedMeanwhile re-reads the transaction after a failed step and, when
// another writer changed it, replaces tx and etag with what is stored now.
func (p *processor) changedMeanwhile(ctx context.Context, tx *Transaction, etag *string) bool {
	cur, curTag, err := p.reload(ctx, tx.DeliveryID)
	if err != nil || curTag == *etag {
		return false
	}
	*tx, *etag = cur, curTag
	return true
}

// undoEscaped takes back a step that completed after its transaction was
// undone, then clears the mark. A failure leaves the mark for the next
// delivery of the message.
func (p *processor) undoEscaped(ctx context.Context, tx Transaction, etag string) error {
	step := *tx.UndoPending
	if err := p.steps.Undo(ctx, step, tx.Request, workflow.Outcome{
		Failed: tx.Status == StatusFailed, Reason: tx.Reason}); err != nil {
		return err
	}
	tx.UndoPending = nil
	if _, _, err := p.checkpoint(ctx, tx, etag); err != nil && !errors.Is(err, sidecar.ErrConflict) {
		return err
	}
	return nil
}

// waitForDrone records when the wait began and asks for redelivery, until
// the wait exceeds its limit and the request is rejected.
func (p *processor) waitForDrone(ctx context.Context, tx Transaction, etag string) error {
	now := p.now().UTC()
	if tx.WaitingForDroneSince == nil {
		tx.WaitingForDroneSince = &now
		if _, _, err := p.checkpoint(ctx, tx, etag); err != nil && !errors.Is(err, sidecar.ErrConflict) {
			return err
		}
		return &errRetry{"no drone available yet"}
	}
	if now.Sub(*tx.WaitingForDroneSince) >= p.limits.DroneWait {
		return p.undo(ctx, tx, etag, StatusRejected,
			fmt.Sprintf("no drone became available within %s", p.limits.DroneWait))
	}
	return &errRetry{"no drone available yet"}
}

// transient counts a transient failure and asks for redelivery; past the
// attempt limit the transaction fails.
func (p *processor) transient(ctx context.Context, tx Transaction, etag string, step workflow.Step, cause error) error {
	tx.Attempts++
	if tx.Attempts >= p.limits.MaxAttempts {
		return p.fail(ctx, tx, etag, step, fmt.Sprintf("%s kept failing after %d attempts: %v", step, tx.Attempts, cause))
	}
	if _, _, err := p.checkpoint(ctx, tx, etag); err != nil && !errors.Is(err, sidecar.ErrConflict) {
		p.log.WarnContext(ctx, "count failed attempt", "deliveryId", tx.DeliveryID, "err", err)
	}
	return fmt.Errorf("%s (attempt %d): %w", step, tx.Attempts, cause)
}

// fail ends the transaction as failed and hands it to the supervisor, which
// compensates. The failure message is published before the record is marked,
// so a crash in between leads to a retry, never to a failure nobody handles.
func (p *processor) fail(ctx context.Context, tx Transaction, etag string, step workflow.Step, reason string) error {
	msg := messages.DeliveryFailed{
		DeliveryID: tx.DeliveryID, Reason: reason, FailedStep: step.String(), Request: tx.Request,
		ReachedStep: tx.Progress.Next.String(), FailedAt: p.now().UTC(),
	}
	if d := tx.Progress.Drone; d != nil {
		msg.DroneID = d.DroneID
	}
	if tp := tx.Progress.ThirdParty; tp != nil {
		msg.BookingID = tp.BookingID
	}
	if err := p.pub.Publish(ctx, messages.TopicDeliveryFailures, messages.TypeDeliveryFailed, tx.DeliveryID, msg); err != nil {
		return err
	}
	tx.Status, tx.Reason, tx.FailedStep = StatusFailed, reason, step.String()
	if _, _, err := p.checkpoint(ctx, tx, etag); err != nil {
		if errors.Is(err, sidecar.ErrConflict) {
			return &errRetry{"transaction changed while failing"}
		}
		return err
	}
	p.log.WarnContext(ctx, "delivery failed", "deliveryId", tx.DeliveryID, "step", step.String(), "reason", reason)
	p.biz.Failed(ctx)
	return nil
}

// undo reverses what the transaction did and ends it with status.
func (p *processor) undo(ctx context.Context, tx Transaction, etag string, status Status, reason string) error {
	if tx.HasRequest {
		// Undo the next step too: it may have run without being recorded.
		if err := p.steps.Undo(ctx, tx.Progress.Next, tx.Request, workflow.Outcome{Reason: reason}); err != nil {
			var late *workflow.TooLate
			if status == StatusCanceled && errors.As(err, &late) {
				return p.refuseCancel(ctx, tx, etag, late)
			}
			return err
		}
	}
	tx.Status, tx.Reason = status, reason
	if _, _, err := p.checkpoint(ctx, tx, etag); err != nil {
		if errors.Is(err, sidecar.ErrConflict) {
			return &errRetry{"transaction changed while undoing"}
		}
		return err
	}
	p.log.InfoContext(ctx, "delivery "+string(status), "deliveryId", tx.DeliveryID, "reason", reason)
	switch status {
	case StatusRejected:
		p.biz.Rejected(ctx)
	case StatusCanceled:
		p.biz.Canceled(ctx)
	}
	return nil
}

// refuseCancel records that a cancel came too late: the delivery was
// completed, so nothing is undone and the transaction keeps its status.
func (p *processor) refuseCancel(ctx context.Context, tx Transaction, etag string, late *workflow.TooLate) error {
	tx.CancelRequested, tx.CancelRefused = false, late.Error()
	if _, _, err := p.checkpoint(ctx, tx, etag); err != nil {
		if errors.Is(err, sidecar.ErrConflict) {
			return &errRetry{"transaction changed while refusing a cancel"}
		}
		return err
	}
	p.log.InfoContext(ctx, "cancel refused", "deliveryId", tx.DeliveryID, "reason", tx.CancelRefused)
	return nil
}

// Canceled cancels a delivery whatever its state: before its request
// arrived, while its transaction runs, or after it was scheduled.
func (p *processor) Canceled(ctx context.Context, c messages.DeliveryCanceled) error {
	for range 20 {
		tx, etag, created, err := p.load(ctx, c.DeliveryID, func(t *Transaction) {
			// The request has not arrived yet: it will find this and stop.
			t.Status, t.CancelRequested, t.Reason = StatusCanceled, true, "canceled before it was processed"
		})
		if err != nil {
			return err
		}
		if created {
			p.log.InfoContext(ctx, "delivery canceled before its request arrived", "deliveryId", c.DeliveryID)
			p.biz.Canceled(ctx)
			return nil
		}
		switch tx.Status {
		case StatusCanceled, StatusRejected, StatusFailed:
			return nil
		case StatusScheduled:
			// Everything was done: undo all of it.
			tx.CancelRequested = true
			return p.undo(ctx, tx, etag, StatusCanceled, "canceled by the client")
		}
		tx.CancelRequested = true
		next, nextTag, err := p.checkpoint(ctx, tx, etag)
		if errors.Is(err, sidecar.ErrConflict) {
			continue
		}
		if err != nil {
			return err
		}
		// A processor running the steps will see the flag at its next
		// checkpoint; undoing here as well covers a transaction that nobody
		// is running right now (waiting for redelivery, say).
		return p.advance(ctx, next, nextTag)
	}
	return &errRetry{"transaction record keeps changing"}
}

// Rescheduled applies new times or places to a scheduled delivery. Until the
// transaction has scheduled it the message waits, so that changes apply in
// order; on an ended delivery it is acknowledged and ignored.
func (p *processor) Rescheduled(ctx context.Context, r messages.DeliveryRescheduled) error {
	tx, etag, found, err := p.store.Get(ctx, txKey(r.DeliveryID))
	switch {
	case err != nil:
		return err
	case !found || tx.Status == StatusInProgress:
		return &errRetry{"delivery not scheduled yet"}
	case tx.Status != StatusScheduled:
		p.log.InfoContext(ctx, "reschedule ignored", "deliveryId", r.DeliveryID, "status", tx.Status)
		return nil
	case tx.LastReschedule != nil && !r.RequestedAt.After(tx.LastReschedule.RequestedAt):
		// Handled already, or older than one that was: a late copy must
		// not undo a newer change.
		p.log.InfoContext(ctx, "reschedule already handled or superseded", "deliveryId", r.DeliveryID, "requestedAt", r.RequestedAt)
		return nil
	}
	req := tx.Request
	if r.Pickup != nil {
		req.Pickup = *r.Pickup
	}
	if r.Dropoff != nil {
		req.Dropoff = *r.Dropoff
	}
	if r.PickupTime != nil {
		req.PickupTime = *r.PickupTime
	}
	if r.Deadline != nil {
		req.Deadline = r.Deadline
	}
	progress := tx.Progress
	if err := p.steps.Reschedule(ctx, req, &progress); err != nil {
		var (
			rej  *workflow.Rejection
			perm *workflow.Permanent
		)
		if errors.As(err, &rej) || errors.As(err, &perm) || errors.Is(err, workflow.ErrNoDroneAvailable) {
			// Retrying cannot make it possible; the delivery keeps its
			// current schedule, and the record says why.
			p.log.WarnContext(ctx, "reschedule refused", "deliveryId", r.DeliveryID, "reason", err.Error())
			tx.LastReschedule = &RescheduleOutcome{RequestedAt: r.RequestedAt, Refused: err.Error()}
			if _, _, err := p.checkpoint(ctx, tx, etag); err != nil {
				if errors.Is(err, sidecar.ErrConflict) {
					return &errRetry{"transaction changed while refusing a reschedule"}
				}
				return err
			}
			return nil
		}
		return err
	}
	tx.Request, tx.Progress = req, progress
	tx.Reschedules++
	tx.LastReschedule = &RescheduleOutcome{RequestedAt: r.RequestedAt}
	if _, _, err := p.checkpoint(ctx, tx, etag); err != nil {
		if errors.Is(err, sidecar.ErrConflict) {
			return &errRetry{"transaction changed while rescheduling"}
		}
		return err
	}
	p.log.InfoContext(ctx, "delivery rescheduled", "deliveryId", r.DeliveryID)
	return nil
}

// checkpoint writes tx if the stored ETag is still etag, then returns the
// record as stored now with its new ETag. The state API does not return the
// new ETag, so it is read back; if another writer slipped in between, the
// caller sees their change rather than overwriting it later.
func (p *processor) checkpoint(ctx context.Context, tx Transaction, etag string) (Transaction, string, error) {
	tx.UpdatedAt = p.now().UTC()
	if err := p.store.Replace(ctx, txKey(tx.DeliveryID), tx, etag); err != nil {
		return tx, "", err
	}
	if tx.Status.Final() && tx.UndoPending == nil && tx.Compensation == "" {
		// Reaching an end (not bookkeeping after it) takes it off the
		// in-progress list.
		p.index.ended(ctx, tx.DeliveryID, tx.Status, tx.UpdatedAt)
	}
	return p.reload(ctx, tx.DeliveryID)
}
