// Package sidecartest provides in-memory stand-ins for the sidecar adapters,
// for unit tests of handlers. End-to-end tests use the real sidecar.
package sidecartest

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"

	"github.com/fabrikam/dronedelivery/internal/sidecar"
)

// Store is an in-memory sidecar.Store with the same concurrency semantics:
// Create fails on an existing key, Replace on a stale ETag. Values are stored
// as JSON so tests see what a real store would round-trip.
type Store[T any] struct {
	mu      sync.Mutex
	data    map[string][]byte
	version map[string]int
	// Err, when set, is returned by every call: a store that is down.
	Err error
}

var _ sidecar.Versioned[int] = (*Store[int])(nil)

// NewStore returns an empty store.
func NewStore[T any]() *Store[T] {
	return &Store[T]{data: map[string][]byte{}, version: map[string]int{}}
}

// Get returns the value at key.
func (s *Store[T]) Get(_ context.Context, key string) (v T, etag string, found bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Err != nil {
		return v, "", false, s.Err
	}
	b, ok := s.data[key]
	if !ok {
		return v, "", false, nil
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return v, "", false, err
	}
	return v, strconv.Itoa(s.version[key]), true, nil
}

// Create stores v if key is absent.
func (s *Store[T]) Create(_ context.Context, key string, v T) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Err != nil {
		return s.Err
	}
	if _, ok := s.data[key]; ok {
		return sidecar.ErrConflict
	}
	return s.put(key, v)
}

// Replace stores v if the ETag matches.
func (s *Store[T]) Replace(_ context.Context, key string, v T, etag string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Err != nil {
		return s.Err
	}
	if _, ok := s.data[key]; !ok || strconv.Itoa(s.version[key]) != etag {
		return sidecar.ErrConflict
	}
	return s.put(key, v)
}

// Delete removes key if the ETag matches (any ETag when empty).
func (s *Store[T]) Delete(_ context.Context, key, etag string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Err != nil {
		return s.Err
	}
	if etag != "" && strconv.Itoa(s.version[key]) != etag {
		return sidecar.ErrConflict
	}
	delete(s.data, key)
	return nil
}

// Update applies fn with optimistic concurrency, like sidecar.Store.Update.
func (s *Store[T]) Update(ctx context.Context, key string, fn func(v *T, found bool) (bool, error)) (T, error) {
	return sidecar.UpdateKey[T](ctx, s, key, fn)
}

// GetBulk returns the stored values among keys.
func (s *Store[T]) GetBulk(ctx context.Context, keys []string) (map[string]sidecar.Item[T], error) {
	out := map[string]sidecar.Item[T]{}
	for _, k := range keys {
		v, etag, found, err := s.Get(ctx, k)
		if err != nil {
			return nil, err
		}
		if found {
			out[k] = sidecar.Item[T]{Value: v, ETag: etag}
		}
	}
	return out, nil
}

// Len reports how many keys are stored.
func (s *Store[T]) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.data)
}

func (s *Store[T]) put(key string, v T) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	s.data[key] = b
	s.version[key]++
	return nil
}
