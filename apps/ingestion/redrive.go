package main

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
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
	pendingRequest = "request"
	pendingCancel  = "cancel"
)

// pendingEntry is one accepted message whose effect the scheduler has not
// yet shown.
type pendingEntry struct {
	Kind        string     `json:"kind"`
	DeliveryID  string     `json:"deliveryId"`
	AcceptedAt  time.Time  `json:"acceptedAt"`
	Redriven    int        `json:"redriven,omitempty"`
	LastRedrive *time.Time `json:"lastRedrive,omitempty"`
}

// pendingBucket is one slice of the pending set; ids are spread over a few
// keys so concurrent requests rarely contend for one ETag.
type pendingBucket map[string]pendingEntry

// transactionsLookup answers which of a batch of deliveries the scheduler
// has a record of.
type transactionsLookup interface {
	Transactions(ctx context.Context, ids []string) (map[string]transactionView, error)
}

type redriveConfig struct {
	// Settle is how old an entry must be before the scheduler is asked about
	// it; younger ones are still on their normal way.
	Settle time.Duration `envconfig:"REDRIVE_SETTLE" default:"2s"`
	// After is how long an accepted message may go unseen by the scheduler
	// before it is published again, and the spacing between repeats. Longer
	// than the broker's own redelivery (Redis processingTimeout 90s would
	// redeliver first; a backlog only costs duplicates the scheduler ignores).
	After time.Duration `envconfig:"REDRIVE_AFTER" default:"2m"`
	// Limit is how many times one message is published again before it is
	// given up as an error for operators.
	Limit int `envconfig:"REDRIVE_LIMIT" default:"10"`
	// Batch bounds the entries one sweep examines, so a sweep stays short
	// after a long scheduler outage.
	Batch int `envconfig:"REDRIVE_BATCH" default:"2000"`
}

const (
	pendingBuckets = 16
	lookupChunk    = 100 // the scheduler's maxQueryIDs
)

type redriver struct {
	log       *slog.Logger
	cfg       redriveConfig
	pending   sidecar.Versioned[pendingBucket]
	requests  store[requestRecord]
	pub       publisher
	scheduler transactionsLookup
	now       func() time.Time
	biz       *telemetry.Business
}

func pendingKey(kind, id string) string { return kind + ":" + id }

func bucketKey(i int) string { return fmt.Sprintf("pending:%d", i) }

func bucketOf(id string) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(id))
	return bucketKey(int(h.Sum32() % pendingBuckets))
}

// track remembers an accepted message until the scheduler shows its effect.
// A nil *redriver tracks nothing. A failure is logged, not returned: the
// message is already with the broker and the client is owed its 202.
func (r *redriver) track(ctx context.Context, kind, id string, at time.Time) {
	if r == nil {
		return
	}
	_, err := sidecar.UpdateKey(ctx, r.pending, bucketOf(id), func(b *pendingBucket, _ bool) (bool, error) {
		if *b == nil {
			*b = pendingBucket{}
		}
		k := pendingKey(kind, id)
		if _, ok := (*b)[k]; ok {
			return false, nil
		}
		(*b)[k] = pendingEntry{Kind: kind, DeliveryID: id, AcceptedAt: at.UTC()}
		return true, nil
	})
	if err != nil {
		r.log.WarnContext(ctx, "accepted message not tracked for redrive", "deliveryId", id, "kind", kind, "err", err)
	}
}

// redriveReport is what one sweep did.
type redriveReport struct {
	Checked   int `json:"checked"`
	Confirmed int `json:"confirmed"`
	Redriven  int `json:"redriven"`
	GivenUp   int `json:"givenUp"`
}

// sweep asks the scheduler about every settled entry, forgets the confirmed
// ones and publishes the overdue ones again.
func (r *redriver) sweep(ctx context.Context) (redriveReport, error) {
	var rep redriveReport
	now := r.now()
	var due []pendingEntry
	for i := range pendingBuckets {
		b, _, _, err := r.pending.Get(ctx, bucketKey(i))
		if err != nil {
			return rep, err
		}
		for _, e := range b {
			if now.Sub(e.AcceptedAt) >= r.cfg.Settle && len(due) < r.cfg.Batch {
				due = append(due, e)
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
		for i, e := range chunk {
			ids[i] = e.DeliveryID
		}
		known, err := r.scheduler.Transactions(ctx, ids)
		if err != nil {
			// Without an answer nothing is known to be lost; try next sweep.
			return rep, fmt.Errorf("ask scheduler: %w", err)
		}
		for _, e := range chunk {
			k := pendingKey(e.Kind, e.DeliveryID)
			if tx, ok := known[e.DeliveryID]; ok && confirms(e.Kind, tx) {
				drop[k] = true
				rep.Confirmed++
				continue
			}
			if !overdue(e, now, r.cfg.After) {
				continue
			}
			if e.Redriven >= r.cfg.Limit {
				r.log.ErrorContext(ctx, "accepted message never reached the scheduler; giving up on it",
					"deliveryId", e.DeliveryID, "kind", e.Kind, "acceptedAt", e.AcceptedAt, "redriven", e.Redriven)
				drop[k] = true
				rep.GivenUp++
				continue
			}
			if err := r.republish(ctx, e); err != nil {
				if errors.Is(err, errNoRecord) {
					r.log.ErrorContext(ctx, "cannot redrive: the request record is gone", "deliveryId", e.DeliveryID)
					drop[k] = true
					rep.GivenUp++
					continue
				}
				errs = append(errs, err)
				continue
			}
			r.log.WarnContext(ctx, "accepted message not seen by the scheduler; published again",
				"deliveryId", e.DeliveryID, "kind", e.Kind, "acceptedAt", e.AcceptedAt, "redriven", e.Redriven+1)
			redriven[k] = true
			rep.Redriven++
			r.biz.Redriven(ctx)
		}
	}
	if err := r.apply(ctx, due, drop, redriven, now); err != nil {
		errs = append(errs, err)
	}
	return rep, errors.Join(errs...)
}

// confirms reports whether tx shows the full effect of an accepted message.
// For a request that is a transaction that ended: one that exists but stays
// in progress may have lost its message mid-way (a scheduler sidecar killed
// between writing the record and indexing it leaves a record no sweep
// lists), and publishing the request again resumes it. For a cancel it is
// the cancel having arrived (or been refused), or an end that a cancel cannot
// change.
func confirms(kind string, tx transactionView) bool {
	if kind != pendingCancel {
		return tx.Status != "" && tx.Status != "InProgress"
	}
	switch tx.Status {
	case "Canceled", "Rejected", "Failed":
		return true
	}
	return tx.CancelRequested || tx.CancelRefused != ""
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

// apply writes the sweep's decisions back, bucket by bucket, without
// touching entries that changed meanwhile.
func (r *redriver) apply(ctx context.Context, due []pendingEntry, drop, redriven map[string]bool, now time.Time) error {
	if len(drop)+len(redriven) == 0 {
		return nil
	}
	byBucket := map[string][]pendingEntry{}
	for _, e := range due {
		k := pendingKey(e.Kind, e.DeliveryID)
		if drop[k] || redriven[k] {
			byBucket[bucketOf(e.DeliveryID)] = append(byBucket[bucketOf(e.DeliveryID)], e)
		}
	}
	var errs []error
	for key, entries := range byBucket {
		_, err := sidecar.UpdateKey(ctx, r.pending, key, func(b *pendingBucket, found bool) (bool, error) {
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
			errs = append(errs, fmt.Errorf("update %s: %w", key, err))
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
