package sidecar

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	dapr "github.com/dapr/go-sdk/client"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrConflict reports a write that lost an optimistic-concurrency race: the
// ETag no longer matches, or a create found the key already there.
var ErrConflict = errors.New("state changed concurrently")

// Store keeps values of type T as JSON in one Dapr state store.
type Store[T any] struct {
	client dapr.Client
	name   string
	meta   map[string]string
}

// NewStore returns a typed view of the named state store. A positive ttl makes
// every write expire after that long (the store's own TTL support).
func NewStore[T any](c dapr.Client, name string, ttl time.Duration) *Store[T] {
	s := &Store[T]{client: c, name: name}
	if ttl > 0 {
		s.meta = map[string]string{"ttlInSeconds": strconv.Itoa(int(ttl.Seconds()))}
	}
	return s
}

// Get returns the value at key and its ETag; found is false when there is none.
func (s *Store[T]) Get(ctx context.Context, key string) (v T, etag string, found bool, err error) {
	item, err := s.client.GetStateWithConsistency(ctx, s.name, key, nil, dapr.StateConsistencyStrong)
	if err != nil {
		return v, "", false, fmt.Errorf("get state %s: %w", key, err)
	}
	if item == nil || len(item.Value) == 0 {
		return v, "", false, nil
	}
	if err := json.Unmarshal(item.Value, &v); err != nil {
		return v, "", false, fmt.Errorf("decode state %s: %w", key, err)
	}
	return v, item.Etag, true, nil
}

// Create writes v at key only if the key does not exist yet; otherwise it
// returns ErrConflict.
func (s *Store[T]) Create(ctx context.Context, key string, v T) error {
	return s.save(ctx, key, v, "")
}

// Replace writes v at key only if the stored ETag is still etag; otherwise it
// returns ErrConflict.
func (s *Store[T]) Replace(ctx context.Context, key string, v T, etag string) error {
	if etag == "" {
		return fmt.Errorf("replace state %s: empty etag", key)
	}
	return s.save(ctx, key, v, etag)
}

func (s *Store[T]) save(ctx context.Context, key string, v T, etag string) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode state %s: %w", key, err)
	}
	err = s.client.SaveStateWithETag(ctx, s.name, key, b, etag, s.meta,
		dapr.WithConcurrency(dapr.StateConcurrencyFirstWrite),
		dapr.WithConsistency(dapr.StateConsistencyStrong))
	if err != nil {
		err = classify(err)
		if etag == "" && !errors.Is(err, ErrConflict) && s.exists(ctx, key) {
			// Stores differ in how they refuse a first write to an existing
			// key: SQLite says the ETag mismatched, Redis fails its script
			// with a plain error. The key being there is what matters.
			err = fmt.Errorf("%w: %w", ErrConflict, err)
		}
		return fmt.Errorf("save state %s: %w", key, err)
	}
	return nil
}

func (s *Store[T]) exists(ctx context.Context, key string) bool {
	item, err := s.client.GetStateWithConsistency(ctx, s.name, key, nil, dapr.StateConsistencyStrong)
	return err == nil && item != nil && len(item.Value) > 0
}

// Delete removes key if its ETag is still etag (any ETag when etag is empty).
// Deleting a missing key succeeds.
func (s *Store[T]) Delete(ctx context.Context, key, etag string) error {
	var tag *dapr.ETag
	opts := &dapr.StateOptions{Consistency: dapr.StateConsistencyStrong}
	if etag != "" {
		tag = &dapr.ETag{Value: etag}
		opts.Concurrency = dapr.StateConcurrencyFirstWrite
	}
	if err := s.client.DeleteStateWithETag(ctx, s.name, key, tag, nil, opts); err != nil {
		return fmt.Errorf("delete state %s: %w", key, classify(err))
	}
	return nil
}

// Update is UpdateKey on this store.
func (s *Store[T]) Update(ctx context.Context, key string, fn func(v *T, found bool) (changed bool, err error)) (T, error) {
	return UpdateKey[T](ctx, s, key, fn)
}

// Versioned is a key-value store with optimistic concurrency: Store, and the
// in-memory fake the unit tests use.
type Versioned[T any] interface {
	Get(ctx context.Context, key string) (v T, etag string, found bool, err error)
	Create(ctx context.Context, key string, v T) error
	Replace(ctx context.Context, key string, v T, etag string) error
}

// UpdateKey applies fn to the current value at key (the zero T and
// found=false when absent) and writes the result with optimistic concurrency,
// re-reading and re-applying fn when another writer got there first. fn
// returns changed=false to leave the stored value as it is. UpdateKey returns
// the value as stored after the call.
func UpdateKey[T any](ctx context.Context, s Versioned[T], key string, fn func(v *T, found bool) (changed bool, err error)) (T, error) {
	for attempt := 0; ; attempt++ {
		v, etag, found, err := s.Get(ctx, key)
		if err != nil {
			return v, err
		}
		changed, err := fn(&v, found)
		if err != nil || !changed {
			return v, err
		}
		if found {
			err = s.Replace(ctx, key, v, etag)
		} else {
			err = s.Create(ctx, key, v)
		}
		if err == nil {
			return v, nil
		}
		if !errors.Is(err, ErrConflict) || attempt >= 50 {
			return v, err
		}
		if err := ctx.Err(); err != nil {
			return v, err
		}
	}
}

// GetBulk returns the values stored at keys, with their ETags, skipping keys
// that hold nothing.
func (s *Store[T]) GetBulk(ctx context.Context, keys []string) (map[string]Item[T], error) {
	items, err := s.client.GetBulkState(ctx, s.name, keys, nil, 0)
	if err != nil {
		return nil, fmt.Errorf("get bulk state: %w", err)
	}
	out := make(map[string]Item[T], len(items))
	for _, it := range items {
		if it.Error != "" {
			return nil, fmt.Errorf("get bulk state %s: %s", it.Key, it.Error)
		}
		if len(it.Value) == 0 {
			continue
		}
		var v T
		if err := json.Unmarshal(it.Value, &v); err != nil {
			return nil, fmt.Errorf("decode state %s: %w", it.Key, err)
		}
		out[it.Key] = Item[T]{Value: v, ETag: it.Etag}
	}
	return out, nil
}

// Item is a value with its ETag.
type Item[T any] struct {
	Value T
	ETag  string
}

// classify maps the sidecar's concurrency failures to ErrConflict. Dapr
// reports an ETag mismatch as Aborted; some stores report a first-write
// collision on a new key as an invalid ETag or as a failed precondition.
func classify(err error) error {
	switch status.Code(err) {
	case codes.Aborted, codes.FailedPrecondition:
		return fmt.Errorf("%w: %w", ErrConflict, err)
	case codes.InvalidArgument:
		if st, ok := status.FromError(err); ok && strings.Contains(strings.ToLower(st.Message()), "etag") {
			return fmt.Errorf("%w: %w", ErrConflict, err)
		}
	}
	return err
}
