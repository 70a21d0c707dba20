package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gorilla/mux"

	"github.com/fabrikam/dronedelivery/internal/sidecar"
	"github.com/fabrikam/dronedelivery/internal/web"
)

type store[T any] interface {
	Get(ctx context.Context, key string) (T, string, bool, error)
	Create(ctx context.Context, key string, v T) error
	Update(ctx context.Context, key string, fn func(v *T, found bool) (bool, error)) (T, error)
	GetBulk(ctx context.Context, keys []string) (map[string]sidecar.Item[T], error)
}

// accountIndex lists the id of every account ever written. The state store
// API cannot enumerate keys without the query API, which not every store
// supports, so listing goes through this one record instead.
type accountIndex struct {
	IDs []string `json:"ids"`
}

// indexKey cannot collide with an account key: those start "account:".
const indexKey = "accounts-index"

type api struct {
	log      *slog.Logger
	accounts store[Account]
	index    store[accountIndex]
	// seeded is set once the seed accounts are known to be stored. Until
	// then an absent account may just not be written yet, so reads that
	// would say "unknown" answer 503 instead.
	seeded atomic.Bool
}

func key(id string) string { return "account:" + id }

func (a *api) routes(r *mux.Router) {
	r.Use(a.healthGate)
	// The scheduler looks owners up with a query on the collection: Dapr
	// keys its circuit breakers by app and method path (an id in the path
	// would give every owner a breaker of its own), and counts every non-2xx
	// answer as a failure, so an unknown owner is an empty result (200), not
	// a 404 that a burst of bad requests could turn into an open breaker.
	r.Handle("/api/accounts", a.handleQuery()).Methods(http.MethodGet).Queries("id", "{id}")
	r.Handle("/api/accounts", a.handleList()).Methods(http.MethodGet)
	r.Handle("/api/accounts/{id}", a.handleGet()).Methods(http.MethodGet)
	r.Handle("/api/accounts/{id}", a.handlePut()).Methods(http.MethodPut)
}

// healthGate makes the router's /healthz answer 503 until seeding is done.
// Seeding cannot finish before serving starts, because the Dapr sidecar waits
// for the app port to open before it serves the state API; so the app serves
// at once, seeds in the background, and reports not-ready meanwhile. The
// route is web.NewRouter's own; mux matches the first route registered, so a
// second /healthz route would never be reached, whereas middleware applies to
// it.
func (a *api) healthGate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" && !a.seeded.Load() {
			web.WriteProblem(w, r, web.Unavailable("the seed accounts are not stored yet", 1))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (a *api) handleGet() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := mux.Vars(r)["id"]
		acc, _, found, err := a.accounts.Get(r.Context(), key(id))
		switch {
		case err != nil:
			a.storeFailed(w, r, err)
		case !found && !a.seeded.Load():
			a.notSeeded(w, r)
		case !found:
			web.WriteProblem(w, r, web.NotFound("no account "+id))
		default:
			web.WriteJSON(w, http.StatusOK, acc)
		}
	})
}

// listBody is the account list, sorted by id.
type listBody struct {
	Accounts []Account `json:"accounts"`
}

func (a *api) handleList() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.seeded.Load() {
			a.notSeeded(w, r)
			return
		}
		idx, _, _, err := a.index.Get(r.Context(), indexKey)
		if err != nil {
			a.storeFailed(w, r, err)
			return
		}
		keys := make([]string, len(idx.IDs))
		for i, id := range idx.IDs {
			keys[i] = key(id)
		}
		items, err := a.accounts.GetBulk(r.Context(), keys)
		if err != nil {
			a.storeFailed(w, r, err)
			return
		}
		// An id in the index without an account is a PUT that failed after
		// indexing; it is skipped rather than shown half-made.
		out := listBody{Accounts: make([]Account, 0, len(items))}
		for _, id := range idx.IDs {
			if it, ok := items[key(id)]; ok {
				out.Accounts = append(out.Accounts, it.Value)
			}
		}
		web.WriteJSON(w, http.StatusOK, out)
	})
}

// putBody creates or changes an account. It is an internal call: owners are
// not self-service.
type putBody struct {
	Name   string `json:"name"`
	Status Status `json:"status"`
}

// handlePut creates the account (201) or replaces its name and status (200).
func (a *api) handlePut() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := mux.Vars(r)["id"]
		var b putBody
		if p := web.DecodeJSON(w, r, &b); p != nil {
			web.WriteProblem(w, r, p)
			return
		}
		want := Account{ID: id, Name: strings.TrimSpace(b.Name), Status: b.Status}
		if errs := want.validate(); len(errs) > 0 {
			web.WriteProblem(w, r, web.Validation(errs))
			return
		}
		// Indexed first, so that an account that exists is always listed.
		if err := a.addToIndex(r.Context(), id); err != nil {
			a.storeFailed(w, r, err)
			return
		}
		var created bool
		acc, err := a.accounts.Update(r.Context(), key(id), func(v *Account, found bool) (bool, error) {
			created = !found
			if found && *v == want {
				return false, nil
			}
			*v = want
			return true, nil
		})
		switch {
		case err != nil:
			a.storeFailed(w, r, err)
		case created:
			w.Header().Set("Location", "/api/accounts/"+id)
			web.WriteJSON(w, http.StatusCreated, acc)
		default:
			web.WriteJSON(w, http.StatusOK, acc)
		}
	})
}

// addToIndex records ids in the account index, keeping it sorted.
func (a *api) addToIndex(ctx context.Context, ids ...string) error {
	_, err := a.index.Update(ctx, indexKey, func(idx *accountIndex, _ bool) (bool, error) {
		changed := false
		for _, id := range ids {
			if i, found := slices.BinarySearch(idx.IDs, id); !found {
				idx.IDs = slices.Insert(idx.IDs, i, id)
				changed = true
			}
		}
		return changed, nil
	})
	return err
}

// seed stores the seed accounts that are not stored yet, retrying with
// backoff until it succeeds or ctx ends; the sidecar is usually not up when
// the app starts. An account already there is left alone: it may have been
// changed through PUT since an earlier start.
func (a *api) seed(ctx context.Context, accounts []Account, minDelay, maxDelay time.Duration) {
	delay := minDelay
	for attempt := 1; ; attempt++ {
		err := a.seedOnce(ctx, accounts)
		if err == nil {
			a.seeded.Store(true)
			a.log.Info("seed accounts stored", "count", len(accounts), "attempts", attempt)
			return
		}
		if ctx.Err() != nil {
			return
		}
		// The first failures are the sidecar starting; only a long run of
		// them is worth a warning.
		level := slog.LevelInfo
		if attempt >= 10 {
			level = slog.LevelWarn
		}
		a.log.Log(ctx, level, "storing seed accounts failed, will retry", "attempt", attempt, "retry_in", delay.String(), "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(delay*2, maxDelay)
	}
}

func (a *api) seedOnce(ctx context.Context, accounts []Account) error {
	ids := make([]string, len(accounts))
	for i, acc := range accounts {
		ids[i] = acc.ID
	}
	if err := a.addToIndex(ctx, ids...); err != nil {
		return err
	}
	for _, acc := range accounts {
		if err := a.accounts.Create(ctx, key(acc.ID), acc); err != nil && !errors.Is(err, sidecar.ErrConflict) {
			return err
		}
	}
	return nil
}

func (a *api) notSeeded(w http.ResponseWriter, r *http.Request) {
	web.WriteProblem(w, r, web.Unavailable("accounts are still being loaded", 1))
}

func (a *api) storeFailed(w http.ResponseWriter, r *http.Request, err error) {
	a.log.WarnContext(r.Context(), "state store call failed", "err", err)
	web.WriteProblem(w, r, web.Unavailable("the account store is unavailable", 1))
}

// handleQuery answers GET /api/accounts?id=X with the matching accounts: one,
// or none when the owner is unknown.
func (a *api) handleQuery() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := mux.Vars(r)["id"]
		acct, _, found, err := a.accounts.Get(r.Context(), key(id))
		switch {
		case err != nil:
			a.storeFailed(w, r, err)
		case !found && !a.seeded.Load():
			web.WriteProblem(w, r, web.Unavailable("accounts are still being loaded", 1))
		case !found:
			web.WriteJSON(w, http.StatusOK, map[string][]Account{"accounts": {}})
		default:
			web.WriteJSON(w, http.StatusOK, map[string][]Account{"accounts": {acct}})
		}
	})
}
