package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"time"

	"github.com/fabrikam/dronedelivery/internal/messages"
	"github.com/fabrikam/dronedelivery/internal/sidecar"
	"github.com/fabrikam/dronedelivery/internal/telemetry"
	"github.com/fabrikam/dronedelivery/internal/workflow"
)

// Compensation statuses.
const (
	statusCompensating = "compensating"
	statusCompensated  = "compensated"
)

// compensation is the supervisor's record of undoing one failed delivery.
type compensation struct {
	DeliveryID  string                     `json:"deliveryId"`
	Status      string                     `json:"status"`
	Reason      string                     `json:"reason"`
	FailedStep  string                     `json:"failedStep"`
	ReachedStep string                     `json:"reachedStep"`
	Request     messages.DeliveryRequested `json:"request"`
	Attempts    int                        `json:"attempts"`
	LastError   string                     `json:"lastError,omitempty"`
	StartedAt   time.Time                  `json:"startedAt"`
	CompletedAt *time.Time                 `json:"completedAt,omitempty"`
}

// undoer reverses the transaction's steps; workflow.Client is one.
type undoer interface {
	Undo(ctx context.Context, upTo workflow.Step, req messages.DeliveryRequested, o workflow.Outcome) error
}

// invoker calls other apps through the sidecar.
type invoker interface {
	Invoke(ctx context.Context, app, method, path string, body any) (*sidecar.Response, error)
}

// supervisor compensates failed transactions and keeps the records that let
// operators see it happen.
type supervisor struct {
	log         *slog.Logger
	comps       sidecar.Versioned[compensation]
	index       sidecar.Versioned[listIndex]
	undo        undoer
	inv         invoker
	schedulerID string
	now         func() time.Time
	// biz counts compensations; nil counts nothing.
	biz *telemetry.Business
}

func compKey(id string) string { return "compensation:" + id }

// compensate undoes every step the failed transaction may have taken, in
// reverse order, and records the outcome in its own record and in the
// scheduler's. Every undo is idempotent, so a retry after a partial run
// (redelivery of the failure message, or the sweep) is safe. An error asks
// for the work to be retried.
func (s *supervisor) compensate(ctx context.Context, f messages.DeliveryFailed) error {
	reached := workflow.StepDone
	if err := reached.UnmarshalText([]byte(f.ReachedStep)); err != nil {
		return sidecar.Drop(fmt.Errorf("failure message with unknown step %q", f.ReachedStep))
	}
	rec, err := sidecar.UpdateKey(ctx, s.comps, compKey(f.DeliveryID), func(c *compensation, found bool) (bool, error) {
		if found {
			if c.Status == statusCompensated {
				return false, nil
			}
			c.Attempts++
			return true, nil
		}
		*c = compensation{
			DeliveryID: f.DeliveryID, Status: statusCompensating, Reason: f.Reason, FailedStep: f.FailedStep,
			ReachedStep: f.ReachedStep, Request: f.Request, Attempts: 1, StartedAt: s.now().UTC(),
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	if rec.Status == statusCompensated {
		return nil
	}
	s.remember(ctx, f.DeliveryID, rec.StartedAt)
	s.tellScheduler(ctx, f.DeliveryID, statusCompensating)

	if err := s.undo.Undo(ctx, reached, f.Request, workflow.Outcome{Failed: true, Reason: f.Reason}); err != nil {
		s.note(ctx, f.DeliveryID, err)
		return fmt.Errorf("compensate %s: %w", f.DeliveryID, err)
	}
	if err := s.tellScheduler(ctx, f.DeliveryID, statusCompensated); err != nil {
		return err
	}
	_, err = sidecar.UpdateKey(ctx, s.comps, compKey(f.DeliveryID), func(c *compensation, found bool) (bool, error) {
		if !found || c.Status == statusCompensated {
			return false, nil
		}
		now := s.now().UTC()
		c.Status, c.CompletedAt, c.LastError = statusCompensated, &now, ""
		return true, nil
	})
	if err != nil {
		return err
	}
	s.log.InfoContext(ctx, "delivery compensated", "deliveryId", f.DeliveryID, "reason", f.Reason, "undone_from", f.ReachedStep)
	s.biz.Compensated(ctx)
	return nil
}

// note records why an attempt failed, for operators.
func (s *supervisor) note(ctx context.Context, id string, cause error) {
	_, err := sidecar.UpdateKey(ctx, s.comps, compKey(id), func(c *compensation, found bool) (bool, error) {
		if !found {
			return false, nil
		}
		c.LastError = cause.Error()
		return true, nil
	})
	if err != nil {
		s.log.WarnContext(ctx, "record compensation error", "deliveryId", id, "err", err)
	}
}

// tellScheduler records the compensation's progress on the transaction, so
// the delivery request's public status shows it.
func (s *supervisor) tellScheduler(ctx context.Context, id, status string) error {
	resp, err := s.inv.Invoke(ctx, s.schedulerID, http.MethodPut, "/api/transactions/"+id+"/compensation", map[string]string{"status": status})
	if err == nil && !resp.OK() && resp.Status != http.StatusNotFound {
		err = errors.New("scheduler answered " + resp.Detail())
	}
	if err != nil {
		s.log.WarnContext(ctx, "tell scheduler about compensation", "deliveryId", id, "status", status, "err", err)
	}
	return err
}

// listIndex is a bounded list of ids with times, newest kept, so operators
// can list records without a state query API.
type listIndex map[string]time.Time

const (
	compensationsIndex = "index:compensations"
	deadLettersIndex   = "index:deadletters"
	maxIndexed         = 2000
)

func (s *supervisor) remember(ctx context.Context, id string, at time.Time) {
	addToIndex(ctx, s.log, s.index, compensationsIndex, id, at)
}

func addToIndex(ctx context.Context, log *slog.Logger, store sidecar.Versioned[listIndex], key, id string, at time.Time) {
	_, err := sidecar.UpdateKey(ctx, store, key, func(ix *listIndex, _ bool) (bool, error) {
		if *ix == nil {
			*ix = listIndex{}
		}
		if _, ok := (*ix)[id]; ok {
			return false, nil
		}
		(*ix)[id] = at
		for len(*ix) > maxIndexed {
			oldest, when := "", time.Time{}
			for k, t := range *ix {
				if oldest == "" || t.Before(when) {
					oldest, when = k, t
				}
			}
			delete(*ix, oldest)
		}
		return true, nil
	})
	if err != nil {
		log.WarnContext(ctx, "update index", "key", key, "err", err)
	}
}

// newestFirst returns the index's ids, newest first.
func newestFirst(ix listIndex) []string {
	ids := make([]string, 0, len(ix))
	for id := range ix {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ix[ids[i]].After(ix[ids[j]]) })
	return ids
}
