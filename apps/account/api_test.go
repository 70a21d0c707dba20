package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fabrikam/dronedelivery/internal/sidecar/sidecartest"
	"github.com/fabrikam/dronedelivery/internal/web"
)

var errDown = errors.New("sidecar unavailable")

type fixture struct {
	api      *api
	accounts *sidecartest.Store[Account]
	index    *sidecartest.Store[accountIndex]
	handler  http.Handler
}

// newFixture returns the real router over in-memory stores, seeded with the
// built-in accounts unless seeded is false.
func newFixture(t *testing.T, seeded bool) *fixture {
	t.Helper()
	f := &fixture{accounts: sidecartest.NewStore[Account](), index: sidecartest.NewStore[accountIndex]()}
	log := slog.New(slog.DiscardHandler)
	f.api = &api{log: log, accounts: f.accounts, index: f.index}
	router := web.NewRouter(log)
	f.api.routes(router)
	f.handler = router
	if seeded {
		seed, err := parseSeed(defaultAccounts)
		if err != nil {
			t.Fatal(err)
		}
		f.api.seed(t.Context(), seed, time.Millisecond, time.Millisecond)
		if !f.api.seeded.Load() {
			t.Fatal("seeding did not finish")
		}
	}
	return f
}

func (f *fixture) do(t *testing.T, method, path, body string) *httptest.ResponseRecorder {
	t.Helper()
	var req *http.Request
	if body == "" {
		req = httptest.NewRequest(method, path, nil)
	} else {
		req = httptest.NewRequest(method, path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	f.handler.ServeHTTP(rec, req)
	return rec
}

func decode[T any](t *testing.T, rec *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("decode %q: %v", rec.Body.String(), err)
	}
	return v
}

// checkProblem asserts a problem response with the given status and code
// that, when field is set, names that field.
func checkProblem(t *testing.T, rec *httptest.ResponseRecorder, status int, code, field string) {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status = %d, want %d; body %s", rec.Code, status, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != web.ProblemContentType {
		t.Fatalf("Content-Type = %q, want %q", ct, web.ProblemContentType)
	}
	p := decode[web.Problem](t, rec)
	if p.Code != code {
		t.Fatalf("code = %q, want %q; body %s", p.Code, code, rec.Body)
	}
	if field == "" {
		return
	}
	for _, fe := range p.Errors {
		if fe.Field == field {
			return
		}
	}
	t.Fatalf("problem does not name field %q: %s", field, rec.Body)
}

func TestSeedFile(t *testing.T) {
	accounts, err := parseSeed(defaultAccounts)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Status{
		"contoso": StatusActive, "fabrikam": StatusActive, "northwind": StatusActive,
		"adventure-works": StatusActive, "tailspin": StatusActive, "wingtip": StatusSuspended,
	}
	if len(accounts) != len(want) {
		t.Fatalf("got %d seed accounts, want %d", len(accounts), len(want))
	}
	for _, acc := range accounts {
		if st, ok := want[acc.ID]; !ok || st != acc.Status || acc.Name == "" {
			t.Errorf("unexpected seed account %+v", acc)
		}
	}
}

func TestParseSeedRejects(t *testing.T) {
	tests := map[string]string{
		"not json":      `{`,
		"empty":         `[]`,
		"bad status":    `[{"id":"a","name":"A","status":"closed"}]`,
		"no name":       `[{"id":"a","name":" ","status":"active"}]`,
		"bad id":        `[{"id":"a/b","name":"A","status":"active"}]`,
		"duplicate":     `[{"id":"a","name":"A","status":"active"},{"id":"a","name":"B","status":"active"}]`,
		"unknown field": `[{"id":"a","name":"A","status":"active","owner":"x"}]`,
	}
	for name, data := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := parseSeed([]byte(data)); err == nil {
				t.Fatal("parseSeed accepted it")
			}
		})
	}
}

func TestGet(t *testing.T) {
	tests := []struct {
		name   string
		path   string
		down   bool
		status int
		code   string
		want   Account
	}{
		{name: "seeded active", path: "/api/accounts/contoso", status: 200,
			want: Account{ID: "contoso", Name: "Contoso, Ltd.", Status: StatusActive}},
		{name: "seeded suspended", path: "/api/accounts/wingtip", status: 200,
			want: Account{ID: "wingtip", Name: "Wingtip Toys", Status: StatusSuspended}},
		{name: "unknown", path: "/api/accounts/nobody", status: 404, code: web.CodeNotFound},
		{name: "store down", path: "/api/accounts/contoso", down: true, status: 503, code: web.CodeUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, true)
			if tt.down {
				f.accounts.Err = errDown
			}
			rec := f.do(t, http.MethodGet, tt.path, "")
			if tt.code != "" {
				checkProblem(t, rec, tt.status, tt.code, "")
				return
			}
			if rec.Code != tt.status {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, tt.status, rec.Body)
			}
			if got := decode[Account](t, rec); got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestPut(t *testing.T) {
	f := newFixture(t, true)
	before := f.accounts.Len()

	rec := f.do(t, http.MethodPut, "/api/accounts/litware", `{"name":" Litware, Inc. ","status":"active"}`)
	if rec.Code != http.StatusCreated {
		t.Fatalf("create: status = %d; body %s", rec.Code, rec.Body)
	}
	if loc := rec.Header().Get("Location"); loc != "/api/accounts/litware" {
		t.Fatalf("Location = %q", loc)
	}
	want := Account{ID: "litware", Name: "Litware, Inc.", Status: StatusActive}
	if got := decode[Account](t, rec); got != want {
		t.Fatalf("created %+v, want %+v", got, want)
	}

	rec = f.do(t, http.MethodPut, "/api/accounts/litware", `{"name":"Litware, Inc.","status":"active"}`)
	if rec.Code != http.StatusOK {
		t.Fatalf("repeat: status = %d; body %s", rec.Code, rec.Body)
	}
	if got := decode[Account](t, rec); got != want {
		t.Fatalf("repeat gave %+v, want %+v", got, want)
	}
	if n := f.accounts.Len(); n != before+1 {
		t.Fatalf("store holds %d accounts, want %d", n, before+1)
	}

	rec = f.do(t, http.MethodPut, "/api/accounts/contoso", `{"name":"Contoso","status":"suspended"}`)
	if rec.Code != http.StatusOK {
		t.Fatalf("update: status = %d; body %s", rec.Code, rec.Body)
	}
	got, _, _, _ := f.accounts.Get(t.Context(), key("contoso"))
	if want := (Account{ID: "contoso", Name: "Contoso", Status: StatusSuspended}); got != want {
		t.Fatalf("stored %+v, want %+v", got, want)
	}
}

func TestPutInvalid(t *testing.T) {
	tests := []struct {
		name, path, body, code, field string
		status                        int
	}{
		{"bad status", "/api/accounts/x", `{"name":"X","status":"closed"}`, web.CodeInvalidRequest, "status", 400},
		{"no status", "/api/accounts/x", `{"name":"X"}`, web.CodeInvalidRequest, "status", 400},
		{"blank name", "/api/accounts/x", `{"name":"  ","status":"active"}`, web.CodeInvalidRequest, "name", 400},
		{"long name", "/api/accounts/x", `{"name":"` + strings.Repeat("é", maxNameLen+1) + `","status":"active"}`, web.CodeInvalidRequest, "name", 400},
		{"bad id", "/api/accounts/-x", `{"name":"X","status":"active"}`, web.CodeInvalidRequest, "id", 400},
		{"long id", "/api/accounts/" + strings.Repeat("a", web.MaxIDLen+1), `{"name":"X","status":"active"}`, web.CodeInvalidRequest, "id", 400},
		{"unknown field", "/api/accounts/x", `{"name":"X","status":"active","plan":"gold"}`, web.CodeInvalidRequest, "plan", 400},
		{"wrong type", "/api/accounts/x", `{"name":7,"status":"active"}`, web.CodeInvalidRequest, "name", 400},
		{"not json", "/api/accounts/x", `{"name":`, web.CodeMalformedJSON, "", 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, true)
			before := f.accounts.Len()
			checkProblem(t, f.do(t, http.MethodPut, tt.path, tt.body), tt.status, tt.code, tt.field)
			if f.accounts.Len() != before {
				t.Fatal("an invalid PUT wrote an account")
			}
		})
	}
}

func TestPutStoreDown(t *testing.T) {
	for _, which := range []string{"accounts", "index"} {
		t.Run(which, func(t *testing.T) {
			f := newFixture(t, true)
			if which == "accounts" {
				f.accounts.Err = errDown
			} else {
				f.index.Err = errDown
			}
			checkProblem(t, f.do(t, http.MethodPut, "/api/accounts/x", `{"name":"X","status":"active"}`),
				http.StatusServiceUnavailable, web.CodeUnavailable, "")
		})
	}
}

func TestList(t *testing.T) {
	f := newFixture(t, true)
	if rec := f.do(t, http.MethodPut, "/api/accounts/bravo", `{"name":"Bravo","status":"active"}`); rec.Code != http.StatusCreated {
		t.Fatalf("create: %d %s", rec.Code, rec.Body)
	}
	// An indexed id whose account write failed must not be listed.
	if err := f.api.addToIndex(t.Context(), "ghost"); err != nil {
		t.Fatal(err)
	}
	rec := f.do(t, http.MethodGet, "/api/accounts", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("status = %d; body %s", rec.Code, rec.Body)
	}
	var ids []string
	for _, acc := range decode[listBody](t, rec).Accounts {
		ids = append(ids, acc.ID)
	}
	want := "adventure-works bravo contoso fabrikam northwind tailspin wingtip"
	if got := strings.Join(ids, " "); got != want {
		t.Fatalf("listed %q, want %q", got, want)
	}

	f.accounts.Err = errDown
	checkProblem(t, f.do(t, http.MethodGet, "/api/accounts", ""), http.StatusServiceUnavailable, web.CodeUnavailable, "")
}

func TestNotSeeded(t *testing.T) {
	f := newFixture(t, false)
	for _, path := range []string{"/healthz", "/api/accounts", "/api/accounts/contoso"} {
		checkProblem(t, f.do(t, http.MethodGet, path, ""), http.StatusServiceUnavailable, web.CodeUnavailable, "")
	}
	seed, _ := parseSeed(defaultAccounts)
	f.api.seed(t.Context(), seed, time.Millisecond, time.Millisecond)
	for _, path := range []string{"/healthz", "/api/accounts", "/api/accounts/contoso"} {
		if rec := f.do(t, http.MethodGet, path, ""); rec.Code != http.StatusOK {
			t.Errorf("GET %s after seeding: %d %s", path, rec.Code, rec.Body)
		}
	}
}

// flaky fails its first calls, like a sidecar that is still starting.
type flaky[T any] struct {
	*sidecartest.Store[T]
	failures atomic.Int32
}

func (s *flaky[T]) fail() error {
	if s.failures.Add(-1) >= 0 {
		return errDown
	}
	return nil
}

func (s *flaky[T]) Create(ctx context.Context, key string, v T) error {
	if err := s.fail(); err != nil {
		return err
	}
	return s.Store.Create(ctx, key, v)
}

func (s *flaky[T]) Update(ctx context.Context, key string, fn func(*T, bool) (bool, error)) (T, error) {
	if err := s.fail(); err != nil {
		var zero T
		return zero, err
	}
	return s.Store.Update(ctx, key, fn)
}

func TestSeedRetriesAndKeepsExisting(t *testing.T) {
	accounts := &flaky[Account]{Store: sidecartest.NewStore[Account]()}
	index := &flaky[accountIndex]{Store: sidecartest.NewStore[accountIndex]()}
	accounts.failures.Store(2)
	index.failures.Store(3)
	changed := Account{ID: "contoso", Name: "Contoso (renamed)", Status: StatusSuspended}
	if err := accounts.Store.Create(t.Context(), key("contoso"), changed); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	a := &api{log: log, accounts: accounts, index: index}
	router := web.NewRouter(log)
	a.routes(router)

	seed, _ := parseSeed(defaultAccounts)
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.seed(t.Context(), seed, time.Millisecond, 4*time.Millisecond)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("seeding did not finish")
	}

	rec := httptest.NewRecorder()
	router.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("/healthz after seeding: %d %s", rec.Code, rec.Body)
	}
	if n := accounts.Len(); n != len(seed) {
		t.Fatalf("store holds %d accounts, want %d", n, len(seed))
	}
	if got, _, _, _ := accounts.Get(t.Context(), key("contoso")); got != changed {
		t.Fatalf("seeding overwrote an existing account: %+v", got)
	}
}

func TestSeedStopsWithContext(t *testing.T) {
	f := newFixture(t, false)
	f.index.Err = errDown
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.api.seed(ctx, []Account{{ID: "a", Name: "A", Status: StatusActive}}, time.Millisecond, time.Millisecond)
	}()
	time.Sleep(10 * time.Millisecond)
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("seeding kept going after its context ended")
	}
	if f.api.seeded.Load() {
		t.Fatal("seeded although the store was down")
	}
}
