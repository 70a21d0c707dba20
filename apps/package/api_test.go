package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/fabrikam/dronedelivery/internal/sidecar"
	"github.com/fabrikam/dronedelivery/internal/sidecar/sidecartest"
	"github.com/fabrikam/dronedelivery/internal/web"
)

var (
	errDown = errors.New("sidecar unavailable")
	t0      = time.Date(2026, 5, 14, 9, 0, 0, 0, time.UTC)
)

const putP1 = `{"size":"small","weight":2.5,"tag":"fragile","deliveryId":"d1"}`

type fixture struct {
	store   *sidecartest.Store[Package]
	handler http.Handler
	now     time.Time
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{store: sidecartest.NewStore[Package](), now: t0}
	log := slog.New(slog.DiscardHandler)
	a := &api{log: log, store: f.store, now: func() time.Time { return f.now }}
	router := web.NewRouter(log)
	a.routes(router)
	f.handler = router
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

func (f *fixture) stored(t *testing.T, id string) (Package, bool) {
	t.Helper()
	p, _, found, err := f.store.Get(context.Background(), key(id))
	if err != nil {
		t.Fatal(err)
	}
	return p, found
}

func decode[T any](t *testing.T, rec *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("decode %q: %v", rec.Body.String(), err)
	}
	return v
}

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

func TestPutCreatesAndRepeats(t *testing.T) {
	f := newFixture(t)
	rec := f.do(t, http.MethodPut, "/api/packages/p1", putP1)
	if rec.Code != http.StatusCreated {
		t.Fatalf("create: %d %s", rec.Code, rec.Body)
	}
	if loc := rec.Header().Get("Location"); loc != "/api/packages/p1" {
		t.Fatalf("Location = %q", loc)
	}
	want := Package{ID: "p1", Size: "Small", Weight: 2.5, Tag: "fragile", DeliveryID: "d1", CreatedAt: t0, UpdatedAt: t0}
	if got := decode[Package](t, rec); got != want {
		t.Fatalf("created %+v, want %+v", got, want)
	}

	// A retry later, with the size spelt differently, is the same package.
	f.now = t0.Add(time.Minute)
	rec = f.do(t, http.MethodPut, "/api/packages/p1", `{"size":"SMALL","weight":2.5,"tag":"fragile","deliveryId":"d1"}`)
	if rec.Code != http.StatusOK {
		t.Fatalf("repeat: %d %s", rec.Code, rec.Body)
	}
	if got := decode[Package](t, rec); got != want {
		t.Fatalf("repeat gave %+v, want the stored %+v", got, want)
	}
	if n := f.store.Len(); n != 1 {
		t.Fatalf("store holds %d packages, want 1", n)
	}
}

func TestPutConflicts(t *testing.T) {
	tests := map[string]string{
		"other delivery": `{"size":"Small","weight":2.5,"tag":"fragile","deliveryId":"d2"}`,
		"other size":     `{"size":"Large","weight":2.5,"tag":"fragile","deliveryId":"d1"}`,
		"other weight":   `{"size":"Small","weight":3,"tag":"fragile","deliveryId":"d1"}`,
		"other tag":      `{"size":"Small","weight":2.5,"deliveryId":"d1"}`,
	}
	for name, body := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			f.do(t, http.MethodPut, "/api/packages/p1", putP1)
			before, _ := f.stored(t, "p1")
			checkProblem(t, f.do(t, http.MethodPut, "/api/packages/p1", body), http.StatusConflict, codePackageConflict, "")
			if after, _ := f.stored(t, "p1"); after != before {
				t.Fatalf("conflicting PUT changed the package: %+v", after)
			}
		})
	}
}

func TestPutInvalid(t *testing.T) {
	tests := []struct {
		name, path, body, code, field string
	}{
		{"bad size", "/api/packages/p1", `{"size":"Huge","weight":1,"deliveryId":"d1"}`, web.CodeInvalidRequest, "size"},
		{"no size", "/api/packages/p1", `{"weight":1,"deliveryId":"d1"}`, web.CodeInvalidRequest, "size"},
		{"zero weight", "/api/packages/p1", `{"size":"Small","weight":0,"deliveryId":"d1"}`, web.CodeInvalidRequest, "weight"},
		{"too heavy", "/api/packages/p1", `{"size":"Small","weight":1000.5,"deliveryId":"d1"}`, web.CodeInvalidRequest, "weight"},
		{"long tag", "/api/packages/p1", `{"size":"Small","weight":1,"tag":"` + strings.Repeat("x", maxTagLen+1) + `","deliveryId":"d1"}`, web.CodeInvalidRequest, "tag"},
		{"no delivery", "/api/packages/p1", `{"size":"Small","weight":1}`, web.CodeInvalidRequest, "deliveryId"},
		{"bad id", "/api/packages/.p1", `{"size":"Small","weight":1,"deliveryId":"d1"}`, web.CodeInvalidRequest, "id"},
		{"unknown field", "/api/packages/p1", `{"size":"Small","weight":1,"deliveryId":"d1","color":"red"}`, web.CodeInvalidRequest, "color"},
		{"wrong type", "/api/packages/p1", `{"size":"Small","weight":"heavy","deliveryId":"d1"}`, web.CodeInvalidRequest, "weight"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			checkProblem(t, f.do(t, http.MethodPut, tt.path, tt.body), http.StatusBadRequest, tt.code, tt.field)
			if f.store.Len() != 0 {
				t.Fatal("an invalid PUT stored a package")
			}
		})
	}
	// Weight exactly at the limit and a tag exactly at its length are fine.
	f := newFixture(t)
	body := `{"size":"Large","weight":1000,"tag":"` + strings.Repeat("é", maxTagLen) + `","deliveryId":"d1"}`
	if rec := f.do(t, http.MethodPut, "/api/packages/p1", body); rec.Code != http.StatusCreated {
		t.Fatalf("limits: %d %s", rec.Code, rec.Body)
	}
}

func TestGet(t *testing.T) {
	f := newFixture(t)
	f.do(t, http.MethodPut, "/api/packages/p1", putP1)
	rec := f.do(t, http.MethodGet, "/api/packages/p1", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("GET: %d %s", rec.Code, rec.Body)
	}
	if got := decode[Package](t, rec); got.ID != "p1" || got.DeliveryID != "d1" {
		t.Fatalf("got %+v", got)
	}
	checkProblem(t, f.do(t, http.MethodGet, "/api/packages/nope", ""), http.StatusNotFound, web.CodeNotFound, "")
}

func TestPatch(t *testing.T) {
	tests := []struct {
		name, body string
		status     int
		code       string
		field      string
		want       Package
	}{
		{name: "weight and size", body: `{"weight":4,"size":"medium"}`, status: 200,
			want: Package{ID: "p1", Size: "Medium", Weight: 4, Tag: "fragile", DeliveryID: "d1", CreatedAt: t0, UpdatedAt: t0.Add(time.Minute)}},
		{name: "clear tag", body: `{"tag":""}`, status: 200,
			want: Package{ID: "p1", Size: "Small", Weight: 2.5, DeliveryID: "d1", CreatedAt: t0, UpdatedAt: t0.Add(time.Minute)}},
		{name: "no change", body: `{"size":"Small"}`, status: 200,
			want: Package{ID: "p1", Size: "Small", Weight: 2.5, Tag: "fragile", DeliveryID: "d1", CreatedAt: t0, UpdatedAt: t0}},
		{name: "bad size", body: `{"size":"tiny"}`, status: 400, code: web.CodeInvalidRequest, field: "size"},
		{name: "bad weight", body: `{"weight":-2}`, status: 400, code: web.CodeInvalidRequest, field: "weight"},
		{name: "long tag", body: `{"tag":"` + strings.Repeat("x", maxTagLen+1) + `"}`, status: 400, code: web.CodeInvalidRequest, field: "tag"},
		{name: "delivery is not patchable", body: `{"deliveryId":"d2"}`, status: 400, code: web.CodeInvalidRequest, field: "deliveryId"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.do(t, http.MethodPut, "/api/packages/p1", putP1)
			before, _ := f.stored(t, "p1")
			f.now = t0.Add(time.Minute)
			rec := f.do(t, http.MethodPatch, "/api/packages/p1", tt.body)
			if tt.code != "" {
				checkProblem(t, rec, tt.status, tt.code, tt.field)
				if after, _ := f.stored(t, "p1"); after != before {
					t.Fatalf("invalid PATCH changed the package: %+v", after)
				}
				return
			}
			if rec.Code != tt.status {
				t.Fatalf("status = %d; body %s", rec.Code, rec.Body)
			}
			if got := decode[Package](t, rec); got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			if stored, _ := f.stored(t, "p1"); stored != tt.want {
				t.Fatalf("stored %+v, want %+v", stored, tt.want)
			}
		})
	}
}

func TestPatchUnknown(t *testing.T) {
	f := newFixture(t)
	checkProblem(t, f.do(t, http.MethodPatch, "/api/packages/nope", `{"weight":1}`), http.StatusNotFound, web.CodeNotFound, "")
	if f.store.Len() != 0 {
		t.Fatal("PATCH of an unknown package created one")
	}
}

func TestDelete(t *testing.T) {
	tests := []struct {
		name, path string
		remains    bool
	}{
		{"unconditional", "/api/packages/p1", false},
		{"owner", "/api/packages/p1?deliveryId=d1", false},
		{"other delivery", "/api/packages/p1?deliveryId=d2", true},
		{"absent", "/api/packages/nope", true},
		{"absent with owner", "/api/packages/nope?deliveryId=d1", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.do(t, http.MethodPut, "/api/packages/p1", putP1)
			for range 2 {
				if rec := f.do(t, http.MethodDelete, tt.path, ""); rec.Code != http.StatusNoContent {
					t.Fatalf("DELETE: %d %s", rec.Code, rec.Body)
				}
			}
			if _, found := f.stored(t, "p1"); found != tt.remains {
				t.Fatalf("p1 stored = %v, want %v", found, tt.remains)
			}
		})
	}
}

func TestDeleteEmptyOwner(t *testing.T) {
	f := newFixture(t)
	f.do(t, http.MethodPut, "/api/packages/p1", putP1)
	checkProblem(t, f.do(t, http.MethodDelete, "/api/packages/p1?deliveryId=", ""), http.StatusBadRequest, web.CodeInvalidRequest, "deliveryId")
	if _, found := f.stored(t, "p1"); !found {
		t.Fatal("p1 was deleted")
	}
}

func TestStoreDown(t *testing.T) {
	tests := []struct{ method, path, body string }{
		{http.MethodPut, "/api/packages/p1", putP1},
		{http.MethodGet, "/api/packages/p1", ""},
		{http.MethodPatch, "/api/packages/p1", `{"weight":1}`},
		{http.MethodDelete, "/api/packages/p1", ""},
		{http.MethodDelete, "/api/packages/p1?deliveryId=d1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			f := newFixture(t)
			f.store.Err = errDown
			checkProblem(t, f.do(t, tt.method, tt.path, tt.body), http.StatusServiceUnavailable, web.CodeUnavailable, "")
		})
	}
}

// racy runs hook once, on the first Create or Delete, in place of the call:
// another writer getting there first.
type racy struct {
	*sidecartest.Store[Package]
	hook func() error
}

func (s *racy) takeHook() func() error {
	h := s.hook
	s.hook = nil
	return h
}

func (s *racy) Create(ctx context.Context, k string, v Package) error {
	if h := s.takeHook(); h != nil {
		return h()
	}
	return s.Store.Create(ctx, k, v)
}

func (s *racy) Delete(ctx context.Context, k, etag string) error {
	if h := s.takeHook(); h != nil {
		return h()
	}
	return s.Store.Delete(ctx, k, etag)
}

func newRacyFixture(t *testing.T) (*fixture, *racy) {
	t.Helper()
	f := newFixture(t)
	rs := &racy{Store: f.store}
	log := slog.New(slog.DiscardHandler)
	a := &api{log: log, store: rs, now: func() time.Time { return t0 }}
	router := web.NewRouter(log)
	a.routes(router)
	f.handler = router
	return f, rs
}

func TestPutAfterConcurrentDelete(t *testing.T) {
	f, rs := newRacyFixture(t)
	// The package existed when Create ran and was gone by the Get.
	rs.hook = func() error { return sidecar.ErrConflict }
	if rec := f.do(t, http.MethodPut, "/api/packages/p1", putP1); rec.Code != http.StatusCreated {
		t.Fatalf("PUT: %d %s", rec.Code, rec.Body)
	}
	if _, found := f.stored(t, "p1"); !found {
		t.Fatal("p1 not stored")
	}
}

func TestDeleteLosesToRebooking(t *testing.T) {
	f, rs := newRacyFixture(t)
	f.do(t, http.MethodPut, "/api/packages/p1", putP1)
	// Between the read and the delete, p1 is deleted and booked for d2.
	rs.hook = func() error {
		_ = rs.Store.Delete(context.Background(), key("p1"), "")
		_ = rs.Store.Create(context.Background(), key("p1"), Package{ID: "p1", Size: "Small", Weight: 1, DeliveryID: "d2"})
		return sidecar.ErrConflict
	}
	if rec := f.do(t, http.MethodDelete, "/api/packages/p1?deliveryId=d1", ""); rec.Code != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", rec.Code, rec.Body)
	}
	if p, found := f.stored(t, "p1"); !found || p.DeliveryID != "d2" {
		t.Fatalf("d2's package was removed: %+v %v", p, found)
	}
}
