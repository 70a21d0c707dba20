package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/fabrikam/dronedelivery/internal/messages"
	"github.com/fabrikam/dronedelivery/internal/sidecar"
	"github.com/fabrikam/dronedelivery/internal/telemetry"
	"github.com/fabrikam/dronedelivery/internal/web"
)

// A broker's acknowledgement is not always the end of the story: the JetStream
// component acknowledges a message in "parallel" mode before the app has seen
// it, so a sidecar that dies then loses it, and a Redis that restarts without
// persistence loses whole streams. Ingestion promised the client an outcome
// with its 202, so it keeps that promise itself: every message it accepts is
// tracked until the scheduler shows its effect (a transaction that ended, a
// cancel received), and published again (the same message, same delivery id;
// the scheduler is idempotent by id) when that has not happened after
// redriveConfig.After.

// What a pending entry waits for.
const (
	pendingRequest    = "request"
	pendingCancel     = "cancel"
	pendingReschedule = "reschedule"
)

// pendingEntry is one accepted message whose effect the scheduler has not
// yet shown.
type pendingEntry struct {
	Kind        string     `json:"kind"`
	DeliveryID  string     `json:"deliveryId"`
	AcceptedAt  time.Time  `json:"acceptedAt"`
	Redriven    int        `json:"redriven,omitempty"`
	LastRedrive *time.Time `json:"lastRedrive,omitempty"`
	// Reschedule is the accepted change, to publish again; a request is
	// read back from its record instead.
	Reschedule *messages.DeliveryRescheduled `json:"reschedule,omitempty"`
}

// pendingBatch is the entries one flush wrote, keyed by pendingKey.
type pendingBatch map[string]pendingEntry

// cursor is a batch number: the head is the next one to claim, the tail the
// lowest that may still hold entries.
type cursor struct {
	N int64 `json:"n"`
	// GapSince is when a sweep first found batch N missing at the tail: a
	// batch claimed by a flush that then failed, skipped once it is old.
	GapSince *time.Time `json:"gapSince,omitempty"`
}

// batchStore holds the batches; sidecar.Store is one.
type batchStore interface {
	sidecar.Versioned[pendingBatch]
	Delete(ctx context.Context, key, etag string) error
}

// transactionsLookup answers which of a batch of deliveries the scheduler
// has a record of.
type transactionsLookup interface {
	Transactions(ctx context.Context, ids []string) (map[string]transactionView, error)
}

type redriveConfig struct {
	// Settle is how old an entry must be before the scheduler is asked about
	// it; younger ones are still on their normal way.
	Settle time.Duration `envconfig:"REDRIVE_SETTLE" default:"2s"`
	// After is how long an accepted message may go without its effect
	// showing before it is published again, and the spacing between
	// repeats. Longer than the broker's own redelivery (Redis
	// processingTimeout 90s) and a drone wait (60s); a backlog only costs
	// copies the scheduler ignores.
	After time.Duration `envconfig:"REDRIVE_AFTER" default:"2m"`
	// Limit is how many times one message is published again before it is
	// given up as an error for operators.
	Limit int `envconfig:"REDRIVE_LIMIT" default:"10"`
	// Batch bounds the entries one sweep reads, oldest batches first, so a
	// sweep stays short after a long scheduler outage.
	Batch int `envconfig:"REDRIVE_BATCH" default:"2000"`
}

const (
	lookupChunk = 100 // the scheduler's maxQueryIDs
	// maxFlush bounds the entries one flush writes.
	maxFlush = 500
	// gapAge is how long a claimed batch may stay missing before the sweep
	// takes its flush for failed; flushes take milliseconds.
	gapAge = 30 * time.Second
	// flushTimeout bounds one flush, so a hung sidecar fails the requests
	// waiting on it (they are answered 202 all the same) instead of holding
	// them.
	flushTimeout = 5 * time.Second
	headKey      = "redrive:head"
	tailKey      = "redrive:tail"
)

// redriver tracks accepted messages in append-only batches: each flush
// claims the next batch number and writes a new key, so the cost of
// accepting a request does not grow with how many are pending (a backlog
// behind a slow scheduler made rewriting shared buckets halve throughput).
// Requests are grouped: every handler waits for the flush that carries its
// entry, so an entry is stored before its 202.
type redriver struct {
	log       *slog.Logger
	cfg       redriveConfig
	batches   batchStore
	cursors   sidecar.Versioned[cursor]
	requests  store[requestRecord]
	pub       publisher
	scheduler transactionsLookup
	now       func() time.Time
	biz       *telemetry.Business
	queue     chan trackRequest
}

type trackRequest struct {
	entry pendingEntry
	done  chan error
}

func newRedriver(r redriver) *redriver {
	r.queue = make(chan trackRequest, maxFlush)
	return &r
}

func pendingKey(kind, id string) string { return kind + ":" + id }

func batchKey(n int64) string { return fmt.Sprintf("redrive:batch:%d", n) }

// track remembers an accepted message until the scheduler shows its effect,
// returning once it is stored. A nil *redriver tracks nothing. A failure is
// logged, not returned: the message is already with the broker and the
// client is owed its 202.
func (r *redriver) track(ctx context.Context, e pendingEntry) {
	if r == nil {
		return
	}
	e.AcceptedAt = e.AcceptedAt.UTC()
	kind, id := e.Kind, e.DeliveryID
	req := trackRequest{entry: e, done: make(chan error, 1)}
	var err error
	select {
	case r.queue <- req:
		select {
		case err = <-req.done:
		case <-ctx.Done():
			err = ctx.Err()
		}
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		r.log.WarnContext(ctx, "accepted message not tracked for redrive", "deliveryId", id, "kind", kind, "err", err)
	}
}

// run writes queued entries, one batch per flush, until ctx ends. Give it a
// context that outlives the HTTP server's shutdown, so the handlers still
// draining get their entries written.
func (r *redriver) run(ctx context.Context) {
	for {
		var first trackRequest
		select {
		case first = <-r.queue:
		case <-ctx.Done():
			return
		}
		reqs := []trackRequest{first}
	drain:
		for len(reqs) < maxFlush {
			select {
			case q := <-r.queue:
				reqs = append(reqs, q)
			default:
				break drain
			}
		}
		fctx, cancel := context.WithTimeout(ctx, flushTimeout)
		err := r.flush(fctx, reqs)
		cancel()
		for _, q := range reqs {
			q.done <- err
		}
	}
}

func (r *redriver) flush(ctx context.Context, reqs []trackRequest) error {
	head, err := sidecar.UpdateKey(ctx, r.cursors, headKey, func(c *cursor, _ bool) (bool, error) {
		c.N++
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("claim batch: %w", err)
	}
	b := make(pendingBatch, len(reqs))
	for _, q := range reqs {
		b[pendingKey(q.entry.Kind, q.entry.DeliveryID)] = q.entry
	}
	// head.N is the next to claim, so this flush's batch is head.N-1.
	if err := r.batches.Create(ctx, batchKey(head.N-1), b); err != nil {
		return fmt.Errorf("write batch %d: %w", head.N-1, err)
	}
	return nil
}

// redriveReport is what one sweep did.
type redriveReport struct {
	Checked   int `json:"checked"`
	Confirmed int `json:"confirmed"`
	Redriven  int `json:"redriven"`
	GivenUp   int `json:"givenUp"`
}

// sweep reads the batches from the tail, oldest first, asks the scheduler
// about every settled entry, forgets the confirmed ones, publishes the
// overdue ones again, and moves the tail past the batches left empty.
func (r *redriver) sweep(ctx context.Context) (redriveReport, error) {
	var rep redriveReport
	now := r.now()
	head, _, _, err := r.cursors.Get(ctx, headKey)
	if err != nil {
		return rep, err
	}
	tail, _, _, err := r.cursors.Get(ctx, tailKey)
	if err != nil {
		return rep, err
	}

	// left counts the entries each batch read keeps; a batch not read
	// (missing, or beyond the examined ones) has no count.
	left := map[int64]int{}
	var due []heldEntry
	read := 0
	for n := tail.N; n < head.N && read < r.cfg.Batch; n++ {
		b, _, found, err := r.batches.Get(ctx, batchKey(n))
		if err != nil {
			return rep, err
		}
		if !found {
			continue
		}
		left[n] = len(b)
		read += len(b)
		for _, e := range b {
			if now.Sub(e.AcceptedAt) >= r.cfg.Settle {
				due = append(due, heldEntry{batch: n, entry: e})
			}
		}
	}
	rep.Checked = len(due)

	// drop: entries to forget; redriven: entries published again.
	drop := map[string]bool{}
	redriven := map[string]bool{}
	var errs []error
	for start := 0; start < len(due); start += lookupChunk {
		chunk := due[start:min(start+lookupChunk, len(due))]
		ids := make([]string, len(chunk))
		for i, h := range chunk {
			ids[i] = h.entry.DeliveryID
		}
		known, err := r.scheduler.Transactions(ctx, ids)
		if err != nil {
			// Without an answer nothing is known to be lost; try next sweep.
			errs = append(errs, fmt.Errorf("ask scheduler: %w", err))
			break
		}
		for _, h := range chunk {
			e := h.entry
			k := pendingKey(e.Kind, e.DeliveryID)
			if tx, ok := known[e.DeliveryID]; ok && confirms(e, tx) {
				drop[k] = true
				left[h.batch]--
				rep.Confirmed++
				continue
			}
			if !overdue(e, now, r.cfg.After) {
				continue
			}
			if e.Redriven >= r.cfg.Limit {
				r.log.ErrorContext(ctx, "accepted message never took effect at the scheduler; giving up on it",
					"deliveryId", e.DeliveryID, "kind", e.Kind, "acceptedAt", e.AcceptedAt, "redriven", e.Redriven)
				drop[k] = true
				left[h.batch]--
				rep.GivenUp++
				continue
			}
			if err := r.republish(ctx, e); err != nil {
				if errors.Is(err, errNoRecord) {
					r.log.ErrorContext(ctx, "cannot redrive: the request record is gone", "deliveryId", e.DeliveryID)
					drop[k] = true
					left[h.batch]--
					rep.GivenUp++
					continue
				}
				errs = append(errs, err)
				continue
			}
			r.log.WarnContext(ctx, "accepted message has not taken effect at the scheduler; published again",
				"deliveryId", e.DeliveryID, "kind", e.Kind, "acceptedAt", e.AcceptedAt, "redriven", e.Redriven+1)
			redriven[k] = true
			rep.Redriven++
			r.biz.Redriven(ctx)
		}
	}
	if err := r.apply(ctx, due, drop, redriven, now); err != nil {
		return rep, errors.Join(append(errs, err)...)
	}
	if err := r.advance(ctx, tail, head, left, now); err != nil {
		errs = append(errs, err)
	}
	return rep, errors.Join(errs...)
}

// heldEntry is an entry with the batch it is in.
type heldEntry struct {
	batch int64
	entry pendingEntry
}

// advance moves the tail past the batches that hold nothing any more, and
// past a batch whose flush failed (claimed, never written, for gapAge), then
// deletes what it passed.
func (r *redriver) advance(ctx context.Context, tail, head cursor, left map[int64]int, now time.Time) error {
	low, gapSince := tail.N, tail.GapSince
	for low < head.N {
		n, read := left[low]
		if read && n <= 0 {
			low, gapSince = low+1, nil
			continue
		}
		if read {
			break
		}
		// Not found. A flush in progress writes it within milliseconds.
		if low == tail.N && tail.GapSince != nil && now.Sub(*tail.GapSince) >= gapAge {
			low, gapSince = low+1, nil
			continue
		}
		if low != tail.N || gapSince == nil {
			t := now.UTC()
			gapSince = &t
		}
		break
	}
	if low == tail.N && equalTimes(gapSince, tail.GapSince) {
		return nil
	}
	_, err := sidecar.UpdateKey(ctx, r.cursors, tailKey, func(c *cursor, _ bool) (bool, error) {
		if c.N > low || (c.N == low && equalTimes(c.GapSince, gapSince)) {
			return false, nil // another sweep moved it further
		}
		c.N, c.GapSince = low, gapSince
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("move tail: %w", err)
	}
	for n := tail.N; n < low; n++ {
		if err := r.batches.Delete(ctx, batchKey(n), ""); err != nil {
			r.log.WarnContext(ctx, "delete resolved batch", "batch", n, "err", err)
		}
	}
	return nil
}

func equalTimes(a, b *time.Time) bool {
	return (a == nil) == (b == nil) && (a == nil || a.Equal(*b))
}

// confirms reports whether tx shows the full effect of an accepted message.
// For a request that is a transaction that ended: one that exists but stays
// in progress may have lost its message mid-way (a scheduler sidecar killed
// between writing the record and indexing it leaves a record no sweep
// lists), and publishing the request again resumes it. For a cancel it is
// the cancel having arrived (or been refused), or an end that a cancel cannot
// change.
//
// For a reschedule it is the scheduler having handled that one or a newer
// one (applied or refused), or an end that a reschedule cannot change.
func confirms(e pendingEntry, tx transactionView) bool {
	switch e.Kind {
	case pendingCancel, pendingReschedule:
		switch tx.Status {
		case "Canceled", "Rejected", "Failed":
			return true
		}
		if e.Kind == pendingReschedule {
			return tx.LastReschedule != nil && !tx.LastReschedule.RequestedAt.Before(e.AcceptedAt)
		}
		return tx.CancelRequested || tx.CancelRefused != ""
	default:
		return tx.Status != "" && tx.Status != "InProgress"
	}
}

func overdue(e pendingEntry, now time.Time, after time.Duration) bool {
	last := e.AcceptedAt
	if e.LastRedrive != nil {
		last = *e.LastRedrive
	}
	return now.Sub(last) >= after
}

var errNoRecord = errors.New("no request record")

func (r *redriver) republish(ctx context.Context, e pendingEntry) error {
	switch e.Kind {
	case pendingCancel:
		msg := messages.DeliveryCanceled{DeliveryID: e.DeliveryID, RequestedAt: e.AcceptedAt}
		return r.pub.Publish(ctx, messages.TopicDeliveryRequests, messages.TypeDeliveryCanceled, e.DeliveryID, msg)
	case pendingReschedule:
		if e.Reschedule == nil {
			return errNoRecord
		}
		return r.pub.Publish(ctx, messages.TopicDeliveryRequests, messages.TypeDeliveryRescheduled, e.DeliveryID, *e.Reschedule)
	default:
		rec, _, found, err := r.requests.Get(ctx, recordKey(e.DeliveryID))
		if err != nil {
			return err
		}
		if !found {
			return errNoRecord
		}
		return r.pub.Publish(ctx, messages.TopicDeliveryRequests, messages.TypeDeliveryRequested, e.DeliveryID, rec.Request)
	}
}

// apply writes the sweep's decisions back, batch by batch, without
// touching entries that changed meanwhile.
func (r *redriver) apply(ctx context.Context, due []heldEntry, drop, redriven map[string]bool, now time.Time) error {
	byBatch := map[int64][]pendingEntry{}
	for _, h := range due {
		k := pendingKey(h.entry.Kind, h.entry.DeliveryID)
		if drop[k] || redriven[k] {
			byBatch[h.batch] = append(byBatch[h.batch], h.entry)
		}
	}
	var errs []error
	for n, entries := range byBatch {
		_, err := sidecar.UpdateKey(ctx, r.batches, batchKey(n), func(b *pendingBatch, found bool) (bool, error) {
			if !found {
				return false, nil
			}
			changed := false
			for _, e := range entries {
				k := pendingKey(e.Kind, e.DeliveryID)
				cur, ok := (*b)[k]
				if !ok || cur.Redriven != e.Redriven {
					continue // another sweep got there first
				}
				if drop[k] {
					delete(*b, k)
				} else {
					t := now.UTC()
					cur.Redriven++
					cur.LastRedrive = &t
					(*b)[k] = cur
				}
				changed = true
			}
			return changed, nil
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("update batch %d: %w", n, err))
		}
	}
	return errors.Join(errs...)
}

// handleRedrive is called by the cron input binding named "redrive".
func (r *redriver) handleRedrive() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		ctx := req.Context()
		rep, err := r.sweep(ctx)
		if err != nil {
			r.log.WarnContext(ctx, "redrive sweep incomplete", "err", err, "checked", rep.Checked, "redriven", rep.Redriven)
			web.WriteProblem(w, req, web.Unavailable("redrive incomplete: "+err.Error(), 10))
			return
		}
		if rep.Redriven+rep.GivenUp > 0 {
			r.log.InfoContext(ctx, "redrive sweep", "checked", rep.Checked, "confirmed", rep.Confirmed, "redriven", rep.Redriven, "givenUp", rep.GivenUp)
		}
		web.WriteJSON(w, http.StatusOK, rep)
	})
}
