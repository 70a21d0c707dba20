package main

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sort"
	"time"

	"github.com/fabrikam/dronedelivery/internal/sidecar"
)

// bucket is one slice of an index: delivery id → when it entered the index.
type bucket map[string]time.Time

// index lets operators and the supervisor list transactions by status
// without a query API, which not every state store has. Ids are spread over
// a few keys so concurrent transactions rarely contend for one ETag. It is a
// hint, not the truth: readers check each transaction's own record.
type index struct {
	log     *slog.Logger
	store   sidecar.Versioned[bucket]
	buckets int
	// maxFinal bounds a bucket of ended transactions; older ones drop out.
	maxFinal int
}

func (ix *index) key(status Status, id string) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(id))
	return fmt.Sprintf("index:%s:%d", status, int(h.Sum32())%ix.buckets)
}

func (ix *index) keys(status Status) []string {
	out := make([]string, ix.buckets)
	for i := range out {
		out[i] = fmt.Sprintf("index:%s:%d", status, i)
	}
	return out
}

// A nil *index indexes nothing, for tests that do not list.

// started records a new in-progress transaction.
func (ix *index) started(ctx context.Context, id string, at time.Time) {
	if ix == nil {
		return
	}
	ix.update(ctx, ix.key(StatusInProgress, id), func(b bucket) bool {
		if _, ok := b[id]; ok {
			return false
		}
		b[id] = at
		return true
	})
}

// ended moves a transaction out of the in-progress index, and into the
// failed one when it failed.
func (ix *index) ended(ctx context.Context, id string, status Status, at time.Time) {
	if ix == nil {
		return
	}
	ix.update(ctx, ix.key(StatusInProgress, id), func(b bucket) bool {
		if _, ok := b[id]; !ok {
			return false
		}
		delete(b, id)
		return true
	})
	if status != StatusFailed {
		return
	}
	ix.update(ctx, ix.key(StatusFailed, id), func(b bucket) bool {
		if _, ok := b[id]; ok {
			return false
		}
		b[id] = at
		for len(b) > ix.maxFinal {
			oldest, when := "", time.Time{}
			for k, t := range b {
				if oldest == "" || t.Before(when) {
					oldest, when = k, t
				}
			}
			delete(b, oldest)
		}
		return true
	})
}

// update applies fn to one bucket. Index writes are best effort: a failure
// is logged and the transaction goes on; listings re-check every entry.
func (ix *index) update(ctx context.Context, key string, fn func(bucket) bool) {
	_, err := sidecar.UpdateKey[bucket](ctx, ix.store, key, func(b *bucket, _ bool) (bool, error) {
		if *b == nil {
			*b = bucket{}
		}
		return fn(*b), nil
	})
	if err != nil {
		ix.log.WarnContext(ctx, "update transaction index", "key", key, "err", err)
	}
}

// list returns the ids indexed under status, oldest first.
func (ix *index) list(ctx context.Context, status Status) ([]string, error) {
	type entry struct {
		id string
		at time.Time
	}
	var all []entry
	for _, k := range ix.keys(status) {
		b, _, _, err := ix.store.Get(ctx, k)
		if err != nil {
			return nil, err
		}
		for id, at := range b {
			all = append(all, entry{id, at})
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].at.Before(all[j].at) })
	ids := make([]string, len(all))
	for i, e := range all {
		ids[i] = e.id
	}
	return ids, nil
}
