package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fabrikam/dronedelivery/internal/geo"
	"github.com/fabrikam/dronedelivery/internal/sidecar/sidecartest"
	"github.com/fabrikam/dronedelivery/internal/web"
)

var (
	errStoreDown = errors.New("state store unavailable")
	t0           = time.Date(2026, 5, 14, 9, 0, 0, 0, time.UTC)
)

// putD1 is a valid PUT body for delivery d1.
const putD1 = `{
	"ownerId": "owner-1",
	"pickup": {"name": "Seattle", "latitude": 47.6062, "longitude": -122.3321},
	"dropoff": {"latitude": 47.6101, "longitude": -122.2015},
	"pickupTime": "2026-05-14T11:00:00Z",
	"deadline": "2026-05-14T13:00:00Z",
	"expedited": true,
	"confirmationRequired": "FingerPrint",
	"packageId": "pkg-1",
	"droneId": "drone-7",
	"pickupEta": "2026-05-14T10:50:00Z",
	"deliveryEta": "2026-05-14T11:20:00Z"
}`

type fixture struct {
	store   *sidecartest.Store[Delivery]
	pub     *fakePublisher
	api     *api
	handler http.Handler

	mu  sync.Mutex
	now time.Time
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{store: sidecartest.NewStore[Delivery](), pub: &fakePublisher{}, now: t0}
	log := slog.New(slog.DiscardHandler)
	a := &api{log: log, store: f.store, pub: f.pub, now: f.clock, stop: t.Context().Done()}
	router := web.NewRouter(log)
	a.routes(router)
	f.api, f.handler = a, router
	return f
}

func (f *fixture) clock() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fixture) advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
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

// create PUTs putD1 as delivery id and fails the test unless it is created.
func (f *fixture) create(t *testing.T, id string) Delivery {
	t.Helper()
	rec := f.do(t, http.MethodPut, "/api/deliveries/"+id, putD1)
	if rec.Code != http.StatusCreated {
		t.Fatalf("create %s: got %d, want 201; body %s", id, rec.Code, rec.Body)
	}
	return decode[Delivery](t, rec)
}

// seed stores d directly, for stages the API cannot reach.
func (f *fixture) seed(t *testing.T, d Delivery) {
	t.Helper()
	if err := f.store.Create(context.Background(), key(d.ID), d); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) stored(t *testing.T, id string) (Delivery, bool) {
	t.Helper()
	d, _, found, err := f.store.Get(context.Background(), key(id))
	if err != nil {
		t.Fatal(err)
	}
	return d, found
}

func decode[T any](t *testing.T, rec *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("decode %q: %v", rec.Body, err)
	}
	return v
}

func checkProblem(t *testing.T, rec *httptest.ResponseRecorder, status int, code, field string) web.Problem {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("got status %d, want %d; body %s", rec.Code, status, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != web.ProblemContentType {
		t.Fatalf("got Content-Type %q, want %q", ct, web.ProblemContentType)
	}
	p := decode[web.Problem](t, rec)
	if p.Code != code {
		t.Fatalf("got code %q, want %q; body %s", p.Code, code, rec.Body)
	}
	if field == "" {
		return p
	}
	for _, fe := range p.Errors {
		if fe.Field == field {
			return p
		}
	}
	t.Fatalf("problem does not name field %q: %s", field, rec.Body)
	return p
}

// withField returns putD1 with one top-level field replaced (or removed when
// value is nil).
func withField(t *testing.T, name string, value any) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(putD1), &m); err != nil {
		t.Fatal(err)
	}
	if value == nil {
		delete(m, name)
	} else {
		m[name] = value
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func ts(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func tp(s string) *time.Time { t := ts(s); return &t }

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

func TestPutCreates(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	rec := f.do(t, http.MethodPut, "/api/deliveries/d1", putD1)
	if rec.Code != http.StatusCreated {
		t.Fatalf("got status %d, want 201; body %s", rec.Code, rec.Body)
	}
	if got, want := rec.Header().Get("Location"), "/api/deliveries/d1"; got != want {
		t.Errorf("got Location %q, want %q", got, want)
	}
	got := decode[Delivery](t, rec)
	want := Delivery{
		ID: "d1", OwnerID: "owner-1",
		Pickup:     geo.Location{Name: "Seattle", Latitude: 47.6062, Longitude: -122.3321},
		Dropoff:    geo.Location{Latitude: 47.6101, Longitude: -122.2015},
		PickupTime: ts("2026-05-14T11:00:00Z"), Deadline: tp("2026-05-14T13:00:00Z"),
		Expedited: true, ConfirmationRequired: "FingerPrint", PackageID: "pkg-1", DroneID: "drone-7",
		PickupETA: tp("2026-05-14T10:50:00Z"), DeliveryETA: tp("2026-05-14T11:20:00Z"),
		Stage: StageCreated, CreatedAt: t0, UpdatedAt: t0,
	}
	checkDelivery(t, "response", got, want)
	stored, found := f.stored(t, "d1")
	if !found {
		t.Fatal("got nothing stored, want d1")
	}
	checkDelivery(t, "stored", stored, want)
}

func checkDelivery(t *testing.T, what string, got, want Delivery) {
	t.Helper()
	if !sameBooking(got, want) || got.Stage != want.Stage || got.Reason != want.Reason ||
		!sameTime(got.PickupETA, want.PickupETA) || !sameTime(got.DeliveryETA, want.DeliveryETA) ||
		!got.CreatedAt.Equal(want.CreatedAt) || !got.UpdatedAt.Equal(want.UpdatedAt) {
		t.Errorf("%s: got %+v, want %+v", what, got, want)
	}
}

func TestPutCarrierInsteadOfDrone(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	body := withField(t, "droneId", nil)
	body = strings.Replace(body, `"confirmationRequired"`, `"carrier":"thirdparty-1","confirmationRequired"`, 1)
	rec := f.do(t, http.MethodPut, "/api/deliveries/d1", body)
	if rec.Code != http.StatusCreated {
		t.Fatalf("got status %d, want 201; body %s", rec.Code, rec.Body)
	}
	if got := decode[Delivery](t, rec); got.Carrier != "thirdparty-1" || got.DroneID != "" {
		t.Errorf("got carrier %q drone %q, want carrier thirdparty-1 and no drone", got.Carrier, got.DroneID)
	}
}

func TestPutRepeatIsIdempotent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body func(t *testing.T) string
	}{
		{"identical", func(*testing.T) string { return putD1 }},
		{"other ETAs", func(t *testing.T) string { return withField(t, "pickupEta", "2026-05-14T10:55:00Z") }},
		{"same instant in another zone", func(t *testing.T) string { return withField(t, "pickupTime", "2026-05-14T13:00:00+02:00") }},
		{"compact formatting", func(t *testing.T) string { return withField(t, "ownerId", "owner-1") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			first := f.create(t, "d1")
			f.advance(time.Minute)
			rec := f.do(t, http.MethodPut, "/api/deliveries/d1", tt.body(t))
			if rec.Code != http.StatusOK {
				t.Fatalf("got status %d, want 200; body %s", rec.Code, rec.Body)
			}
			got := decode[Delivery](t, rec)
			checkDelivery(t, "repeat", got, first)
			if n := f.store.Len(); n != 1 {
				t.Errorf("got %d records, want 1", n)
			}
		})
	}
}

func TestPutConflict(t *testing.T) {
	t.Parallel()
	tests := []struct {
		field string
		value any
	}{
		{"ownerId", "owner-2"},
		{"pickup", map[string]any{"latitude": 47.6, "longitude": -122.3}},
		{"dropoff", map[string]any{"latitude": 47.6740, "longitude": -122.1215}},
		{"pickupTime", "2026-05-14T11:30:00Z"},
		{"deadline", "2026-05-14T14:00:00Z"},
		{"expedited", false},
		{"confirmationRequired", "None"},
		{"packageId", "pkg-2"},
		{"droneId", "drone-8"},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			first := f.create(t, "d1")
			rec := f.do(t, http.MethodPut, "/api/deliveries/d1", withField(t, tt.field, tt.value))
			checkProblem(t, rec, http.StatusConflict, codeDeliveryConflict, "")
			stored, _ := f.stored(t, "d1")
			checkDelivery(t, "stored after conflict", stored, first)
		})
	}
	t.Run("deadline removed", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		f.create(t, "d1")
		rec := f.do(t, http.MethodPut, "/api/deliveries/d1", withField(t, "deadline", nil))
		checkProblem(t, rec, http.StatusConflict, codeDeliveryConflict, "")
	})
}

func TestPutValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		field string // the field to replace; value nil removes it
		value any
		code  string
		named string // the field the problem must name; "" to not check
	}{
		{"ownerId missing", "ownerId", nil, web.CodeInvalidRequest, "ownerId"},
		{"ownerId blank", "ownerId", "   ", web.CodeInvalidRequest, "ownerId"},
		{"ownerId not a string", "ownerId", 7, web.CodeInvalidRequest, "ownerId"},
		{"pickup latitude out of range", "pickup", map[string]any{"latitude": 91, "longitude": 0}, web.CodeInvalidRequest, "pickup"},
		{"dropoff longitude out of range", "dropoff", map[string]any{"latitude": 0, "longitude": 181}, web.CodeInvalidRequest, "dropoff"},
		{"pickup unknown field", "pickup", map[string]any{"lat": 1, "lon": 2}, web.CodeInvalidRequest, "lat"},
		{"pickup as a name", "pickup", "Seattle", web.CodeInvalidRequest, "pickup"},
		{"pickupTime missing", "pickupTime", nil, web.CodeInvalidRequest, "pickupTime"},
		{"pickupTime not a time", "pickupTime", "tomorrow", web.CodeMalformedJSON, ""},
		{"packageId missing", "packageId", nil, web.CodeInvalidRequest, "packageId"},
		{"packageId blank", "packageId", " ", web.CodeInvalidRequest, "packageId"},
		{"neither drone nor carrier", "droneId", nil, web.CodeInvalidRequest, "droneId"},
		{"unknown field", "colour", "red", web.CodeInvalidRequest, "colour"},
		{"expedited not a bool", "expedited", "yes", web.CodeInvalidRequest, "expedited"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			rec := f.do(t, http.MethodPut, "/api/deliveries/d1", withField(t, tt.field, tt.value))
			checkProblem(t, rec, http.StatusBadRequest, tt.code, tt.named)
			if n := f.store.Len(); n != 0 {
				t.Errorf("got %d records stored, want 0", n)
			}
		})
	}
}

func TestPutRequestProblems(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		contentType string
		body        string
		status      int
		code        string
	}{
		{"no content type", "", putD1, http.StatusUnsupportedMediaType, web.CodeUnsupportedMediaType},
		{"text content type", "text/plain", putD1, http.StatusUnsupportedMediaType, web.CodeUnsupportedMediaType},
		{"empty body", "application/json", "", http.StatusBadRequest, web.CodeMalformedJSON},
		{"trailing data", "application/json", putD1 + "{}", http.StatusBadRequest, web.CodeMalformedJSON},
		{"too large", "application/json", `{"ownerId":"` + strings.Repeat("x", web.MaxBodyBytes) + `"}`, http.StatusRequestEntityTooLarge, web.CodeBodyTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			req := httptest.NewRequest(http.MethodPut, "/api/deliveries/d1", strings.NewReader(tt.body))
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			rec := httptest.NewRecorder()
			f.handler.ServeHTTP(rec, req)
			checkProblem(t, rec, tt.status, tt.code, "")
			if n := f.store.Len(); n != 0 {
				t.Errorf("got %d records stored, want 0", n)
			}
		})
	}
}

func TestPutRequiresLocations(t *testing.T) {
	t.Parallel()
	for _, field := range []string{"pickup", "dropoff"} {
		t.Run(field, func(t *testing.T) {
			f := newFixture(t)
			rec := f.do(t, http.MethodPut, "/api/deliveries/d1", withField(t, field, nil))
			checkProblem(t, rec, http.StatusBadRequest, web.CodeInvalidRequest, field)
		})
	}
}

func TestGet(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	created := f.create(t, "d1")

	rec := f.do(t, http.MethodGet, "/api/deliveries/d1", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("got status %d, want 200; body %s", rec.Code, rec.Body)
	}
	checkDelivery(t, "get", decode[Delivery](t, rec), created)

	rec = f.do(t, http.MethodGet, "/api/deliveries/nope", "")
	p := checkProblem(t, rec, http.StatusNotFound, web.CodeNotFound, "")
	if p.Instance != "/api/deliveries/nope" {
		t.Errorf("got instance %q, want /api/deliveries/nope", p.Instance)
	}
}

func TestStatus(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.create(t, "d1")
	here := geo.Location{Latitude: 47.61, Longitude: -122.25}
	if _, err := f.store.Update(context.Background(), key("d1"), func(d *Delivery, _ bool) (bool, error) {
		d.Stage, d.LastKnownLocation = StageHeadedToPickup, &here
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}

	rec := f.do(t, http.MethodGet, "/api/deliveries/d1/status", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("got status %d, want 200; body %s", rec.Code, rec.Body)
	}
	got := decode[statusBody](t, rec)
	want := statusBody{
		ID: "d1", Stage: StageHeadedToPickup, DroneID: "drone-7", LastKnownLocation: &here,
		PickupETA: tp("2026-05-14T10:50:00Z"), DeliveryETA: tp("2026-05-14T11:20:00Z"), UpdatedAt: t0,
	}
	if got.ID != want.ID || got.Stage != want.Stage || got.DroneID != want.DroneID || got.Reason != "" ||
		got.LastKnownLocation == nil || *got.LastKnownLocation != here ||
		!sameTime(got.PickupETA, want.PickupETA) || !sameTime(got.DeliveryETA, want.DeliveryETA) ||
		!got.UpdatedAt.Equal(want.UpdatedAt) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	// The status does not disclose the booking.
	var raw map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"ownerId", "packageId", "pickup", "dropoff"} {
		if _, ok := raw[k]; ok {
			t.Errorf("status body has %q, want only status fields: %s", k, rec.Body)
		}
	}

	rec = f.do(t, http.MethodGet, "/api/deliveries/nope/status", "")
	checkProblem(t, rec, http.StatusNotFound, web.CodeNotFound, "")
}

func TestPatch(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	created := f.create(t, "d1")
	f.advance(5 * time.Minute)

	rec := f.do(t, http.MethodPatch, "/api/deliveries/d1",
		`{"dropoff":{"latitude":47.674,"longitude":-122.1215},"pickupTime":"2026-05-14T12:00:00Z","droneId":"drone-9","deliveryEta":"2026-05-14T12:30:00Z"}`)
	if rec.Code != http.StatusOK {
		t.Fatalf("got status %d, want 200; body %s", rec.Code, rec.Body)
	}
	want := created
	want.Dropoff = geo.Location{Latitude: 47.674, Longitude: -122.1215}
	want.PickupTime = ts("2026-05-14T12:00:00Z")
	want.DroneID = "drone-9"
	want.DeliveryETA = tp("2026-05-14T12:30:00Z")
	want.Stage = StageRescheduled
	want.UpdatedAt = t0.Add(5 * time.Minute)
	checkDelivery(t, "patched", decode[Delivery](t, rec), want)
	stored, _ := f.stored(t, "d1")
	checkDelivery(t, "stored", stored, want)
	if !stored.CreatedAt.Equal(t0) {
		t.Errorf("got CreatedAt %v, want %v", stored.CreatedAt, t0)
	}
}

func TestPatchMergePatchContentType(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.create(t, "d1")
	req := httptest.NewRequest(http.MethodPatch, "/api/deliveries/d1", strings.NewReader(`{"deadline":"2026-05-14T15:00:00Z"}`))
	req.Header.Set("Content-Type", "application/merge-patch+json")
	rec := httptest.NewRecorder()
	f.handler.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("got status %d, want 200; body %s", rec.Code, rec.Body)
	}
	if got := decode[Delivery](t, rec); !sameTime(got.Deadline, tp("2026-05-14T15:00:00Z")) {
		t.Errorf("got deadline %v, want 15:00Z", got.Deadline)
	}
}

func TestPatchProblems(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		stage  Stage // "" for no delivery
		body   string
		status int
		code   string
	}{
		{"unknown delivery", "", `{"droneId":"drone-9"}`, http.StatusNotFound, web.CodeNotFound},
		{"canceled", StageCanceled, `{"droneId":"drone-9"}`, http.StatusConflict, codeDeliveryFinal},
		{"failed", StageFailed, `{"droneId":"drone-9"}`, http.StatusConflict, codeDeliveryFinal},
		{"completed", StageCompleted, `{"droneId":"drone-9"}`, http.StatusConflict, codeDeliveryFinal},
		{"unknown field", StageCreated, `{"colour":"red"}`, http.StatusBadRequest, web.CodeInvalidRequest},
		{"wrong type", StageCreated, `{"droneId":9}`, http.StatusBadRequest, web.CodeInvalidRequest},
		{"malformed", StageCreated, `{"droneId":`, http.StatusBadRequest, web.CodeMalformedJSON},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			if tt.stage != "" {
				f.seed(t, Delivery{ID: "d1", OwnerID: "owner-1", DroneID: "drone-7", Stage: tt.stage, UpdatedAt: t0})
			}
			f.advance(time.Minute)
			rec := f.do(t, http.MethodPatch, "/api/deliveries/d1", tt.body)
			checkProblem(t, rec, tt.status, tt.code, "")
			if d, found := f.stored(t, "d1"); found && (d.Stage != tt.stage || d.DroneID != "drone-7" || !d.UpdatedAt.Equal(t0)) {
				t.Errorf("got stored %+v, want it unchanged", d)
			}
		})
	}
}

func TestPatchValidatesLocations(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.create(t, "d1")
	rec := f.do(t, http.MethodPatch, "/api/deliveries/d1", `{"pickup":{"latitude":200,"longitude":0}}`)
	checkProblem(t, rec, http.StatusBadRequest, web.CodeInvalidRequest, "pickup")
}

func TestCancel(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.create(t, "d1")
	f.advance(time.Minute)

	rec := f.do(t, http.MethodDelete, "/api/deliveries/d1", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("got status %d, want 200; body %s", rec.Code, rec.Body)
	}
	got := decode[Delivery](t, rec)
	if got.Stage != StageCanceled || got.Reason != "canceled by the client" || !got.UpdatedAt.Equal(t0.Add(time.Minute)) {
		t.Errorf("got stage %q reason %q updated %v, want Canceled, %q, %v",
			got.Stage, got.Reason, got.UpdatedAt, "canceled by the client", t0.Add(time.Minute))
	}

	// Canceling again succeeds and changes nothing.
	f.advance(time.Minute)
	rec = f.do(t, http.MethodDelete, "/api/deliveries/d1", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("second cancel: got status %d, want 200; body %s", rec.Code, rec.Body)
	}
	if again := decode[Delivery](t, rec); again.Stage != StageCanceled || !again.UpdatedAt.Equal(got.UpdatedAt) {
		t.Errorf("second cancel: got stage %q updated %v, want Canceled, %v", again.Stage, again.UpdatedAt, got.UpdatedAt)
	}

	// And the canceled delivery can no longer be rescheduled.
	rec = f.do(t, http.MethodPatch, "/api/deliveries/d1", `{"droneId":"drone-9"}`)
	checkProblem(t, rec, http.StatusConflict, codeDeliveryFinal, "")
}

func TestCancelProblems(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		stage  Stage
		status int
		code   string
	}{
		{"unknown", "", http.StatusNotFound, web.CodeNotFound},
		{"failed", StageFailed, http.StatusConflict, codeDeliveryFinal},
		{"completed", StageCompleted, http.StatusConflict, codeDeliveryFinal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			if tt.stage != "" {
				f.seed(t, Delivery{ID: "d1", Stage: tt.stage, Reason: "before", UpdatedAt: t0})
			}
			rec := f.do(t, http.MethodDelete, "/api/deliveries/d1", "")
			checkProblem(t, rec, tt.status, tt.code, "")
			if d, found := f.stored(t, "d1"); found && (d.Stage != tt.stage || d.Reason != "before") {
				t.Errorf("got stored stage %q reason %q, want unchanged %q", d.Stage, d.Reason, tt.stage)
			}
		})
	}
}

// The scheduler cancels through the query form and must learn how an ended
// delivery ended: the record, with a 2xx so its breaker is not fed.
func TestCancelQueryFormOnEndedDelivery(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.seed(t, Delivery{ID: "d1", Stage: StageCompleted, Reason: "before", UpdatedAt: t0})
	rec := f.do(t, http.MethodDelete, "/api/deliveries?id=d1", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("got status %d, want 200; body %s", rec.Code, rec.Body)
	}
	if got := decode[Delivery](t, rec); got.Stage != StageCompleted {
		t.Errorf("answered stage %q, want Completed", got.Stage)
	}
	if d, _ := f.stored(t, "d1"); d.Stage != StageCompleted || d.Reason != "before" {
		t.Errorf("stored %q %q, want unchanged", d.Stage, d.Reason)
	}
	if rec := f.do(t, http.MethodDelete, "/api/deliveries?id=nope", ""); rec.Code != http.StatusNoContent {
		t.Errorf("unknown delivery: got %d, want 204 (nothing to undo)", rec.Code)
	}
}

func TestCancelOtherStages(t *testing.T) {
	t.Parallel()
	for _, stage := range []Stage{StageCreated, StageRescheduled, StageHeadedToPickup, StageHeadedToDropoff} {
		t.Run(string(stage), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			f.seed(t, Delivery{ID: "d1", Stage: stage})
			rec := f.do(t, http.MethodDelete, "/api/deliveries/d1", "")
			if rec.Code != http.StatusOK {
				t.Fatalf("got status %d, want 200; body %s", rec.Code, rec.Body)
			}
			if d, _ := f.stored(t, "d1"); d.Stage != StageCanceled {
				t.Errorf("got stage %q, want Canceled", d.Stage)
			}
		})
	}
}

func TestFail(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		body       string
		wantReason string
	}{
		{"with reason", `{"reason":"no drone available"}`, "no drone available"},
		{"empty object", `{}`, ""},
		{"no body", ``, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			f.create(t, "d1")
			f.advance(time.Minute)
			rec := f.do(t, http.MethodPut, "/api/deliveries/d1/failure", tt.body)
			if rec.Code != http.StatusOK {
				t.Fatalf("got status %d, want 200; body %s", rec.Code, rec.Body)
			}
			d, _ := f.stored(t, "d1")
			if d.Stage != StageFailed || d.Reason != tt.wantReason || !d.UpdatedAt.Equal(t0.Add(time.Minute)) {
				t.Errorf("got stage %q reason %q updated %v, want Failed %q %v", d.Stage, d.Reason, d.UpdatedAt, tt.wantReason, t0.Add(time.Minute))
			}
			st := decode[statusBody](t, f.do(t, http.MethodGet, "/api/deliveries/d1/status", ""))
			if st.Stage != StageFailed || st.Reason != tt.wantReason {
				t.Errorf("status: got %q %q, want Failed %q", st.Stage, st.Reason, tt.wantReason)
			}
		})
	}
}

func TestFailProblems(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		stage  Stage
		body   string
		status int
		code   string
	}{
		{"unknown", "", `{"reason":"x"}`, http.StatusNotFound, web.CodeNotFound},
		{"canceled", StageCanceled, `{"reason":"x"}`, http.StatusConflict, codeDeliveryFinal},
		{"completed", StageCompleted, `{"reason":"x"}`, http.StatusConflict, codeDeliveryFinal},
		{"unknown field", StageCreated, `{"why":"x"}`, http.StatusBadRequest, web.CodeInvalidRequest},
		{"malformed", StageCreated, `{"reason":`, http.StatusBadRequest, web.CodeMalformedJSON},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			if tt.stage != "" {
				f.seed(t, Delivery{ID: "d1", Stage: tt.stage})
			}
			rec := f.do(t, http.MethodPut, "/api/deliveries/d1/failure", tt.body)
			checkProblem(t, rec, tt.status, tt.code, "")
			if d, found := f.stored(t, "d1"); found && d.Stage != tt.stage {
				t.Errorf("got stored stage %q, want unchanged %q", d.Stage, tt.stage)
			}
		})
	}
}

func TestFailTwiceKeepsFirstReason(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.create(t, "d1")
	if rec := f.do(t, http.MethodPut, "/api/deliveries/d1/failure", `{"reason":"first"}`); rec.Code != http.StatusOK {
		t.Fatalf("first: got status %d, want 200", rec.Code)
	}
	rec := f.do(t, http.MethodPut, "/api/deliveries/d1/failure", `{"reason":"second"}`)
	if rec.Code != http.StatusOK {
		t.Fatalf("second: got status %d, want 200; body %s", rec.Code, rec.Body)
	}
	if d, _ := f.stored(t, "d1"); d.Reason != "first" {
		t.Errorf("got reason %q, want %q", d.Reason, "first")
	}
}

func TestStoreDown(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, method, path, body string
	}{
		{"put", http.MethodPut, "/api/deliveries/d1", putD1},
		{"get", http.MethodGet, "/api/deliveries/d1", ""},
		{"status", http.MethodGet, "/api/deliveries/d1/status", ""},
		{"patch", http.MethodPatch, "/api/deliveries/d1", `{"droneId":"drone-9"}`},
		{"delete", http.MethodDelete, "/api/deliveries/d1", ""},
		{"failure", http.MethodPut, "/api/deliveries/d1/failure", `{"reason":"x"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			f.store.Err = errStoreDown
			rec := f.do(t, tt.method, tt.path, tt.body)
			checkProblem(t, rec, http.StatusServiceUnavailable, web.CodeUnavailable, "")
			if got := rec.Header().Get("Retry-After"); got != "1" {
				t.Errorf("got Retry-After %q, want %q", got, "1")
			}
			if strings.Contains(rec.Body.String(), errStoreDown.Error()) {
				t.Errorf("body %s discloses the store error", rec.Body)
			}
		})
	}
}

func TestRoutes(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tests := []struct {
		method, path string
		status       int
	}{
		{http.MethodPost, "/api/deliveries/d1", http.StatusMethodNotAllowed},
		{http.MethodGet, "/api/deliveries", http.StatusNotFound},
		{http.MethodDelete, "/api/deliveries/d1/status", http.StatusMethodNotAllowed},
		{http.MethodGet, "/healthz", http.StatusOK},
	}
	for _, tt := range tests {
		if rec := f.do(t, tt.method, tt.path, ""); rec.Code != tt.status {
			t.Errorf("%s %s: got status %d, want %d", tt.method, tt.path, rec.Code, tt.status)
		}
	}
}
