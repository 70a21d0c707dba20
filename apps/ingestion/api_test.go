package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fabrikam/dronedelivery/internal/geo"
	"github.com/fabrikam/dronedelivery/internal/messages"
	"github.com/fabrikam/dronedelivery/internal/sidecar/sidecartest"
	"github.com/fabrikam/dronedelivery/internal/web"
)

var (
	errDown = errors.New("sidecar unavailable")
	t0      = time.Date(2026, 5, 14, 9, 0, 0, 0, time.UTC)
)

// fakeScheduler answers Transaction from a map, or fails with err.
type fakeScheduler struct {
	mu    sync.Mutex
	tx    map[string]*transactionView
	err   error
	asked []string
}

func (s *fakeScheduler) Transaction(_ context.Context, id string) (*transactionView, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.asked = append(s.asked, id)
	if s.err != nil {
		return nil, false, s.err
	}
	v, ok := s.tx[id]
	return v, ok, nil
}

func (s *fakeScheduler) set(id string, v *transactionView) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tx[id] = v
}

func (s *fakeScheduler) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = err
}

type fixture struct {
	pub      *sidecartest.Publisher
	requests *sidecartest.Store[requestRecord]
	keys     *sidecartest.Store[idempotencyRecord]
	sched    *fakeScheduler
	handler  http.Handler
	ids      atomic.Int64
}

// idN is the n-th id the fixture hands out (from 1).
func idN(n int64) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", n) }

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{
		pub:      &sidecartest.Publisher{},
		requests: sidecartest.NewStore[requestRecord](),
		keys:     sidecartest.NewStore[idempotencyRecord](),
		sched:    &fakeScheduler{tx: map[string]*transactionView{}},
	}
	log := slog.New(slog.DiscardHandler)
	a := &api{
		log:       log,
		pub:       f.pub,
		requests:  f.requests,
		keys:      f.keys,
		scheduler: f.sched,
		places:    geo.DefaultGazetteer(),
		now:       func() time.Time { return t0 },
		newID:     func() string { return idN(f.ids.Add(1)) },
	}
	router := web.NewRouter(log)
	a.routes(router)
	f.handler = router
	return f
}

func (f *fixture) send(t *testing.T, method, path, body string, header map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	f.handler.ServeHTTP(rec, req)
	return rec
}

func (f *fixture) post(t *testing.T, body string) *httptest.ResponseRecorder {
	t.Helper()
	return f.send(t, http.MethodPost, "/api/deliveryrequests", body, nil)
}

func (f *fixture) postWithKey(t *testing.T, key, body string) *httptest.ResponseRecorder {
	t.Helper()
	return f.send(t, http.MethodPost, "/api/deliveryrequests", body, map[string]string{"Idempotency-Key": key})
}

// accept POSTs body and fails the test unless it is accepted; it returns the
// delivery id.
func (f *fixture) accept(t *testing.T, body string) string {
	t.Helper()
	rec := f.post(t, body)
	if rec.Code != http.StatusAccepted {
		t.Fatalf("POST: got status %d, want 202; body %s", rec.Code, rec.Body)
	}
	return decode[acceptedResponse](t, rec).DeliveryID
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

// body returns a valid request body after mod has changed it.
func body(t *testing.T, mod func(m map[string]any)) string {
	t.Helper()
	m := map[string]any{
		"ownerId":              "owner-1",
		"pickupLocation":       "Seattle",
		"dropoffLocation":      "Bellevue",
		"pickupTime":           "2026-05-14T11:00:00Z",
		"deadline":             "2026-05-14T13:00:00Z",
		"expedited":            true,
		"confirmationRequired": "fingerprint",
		"packageInfo": map[string]any{
			"packageId": "pkg-1",
			"size":      "small",
			"weight":    2.5,
			"tag":       "fragile",
		},
	}
	if mod != nil {
		mod(m)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func pkg(m map[string]any) map[string]any { return m["packageInfo"].(map[string]any) }

var (
	seattle  = geo.Location{Name: "Seattle", Latitude: 47.6062, Longitude: -122.3321}
	bellevue = geo.Location{Name: "Bellevue", Latitude: 47.6101, Longitude: -122.2015}
	redmond  = geo.Location{Name: "Redmond", Latitude: 47.6740, Longitude: -122.1215}
)

func ptime(t time.Time) *time.Time { return &t }

// wantRequest is the message the valid body() becomes.
func wantRequest(id string) messages.DeliveryRequested {
	return messages.DeliveryRequested{
		DeliveryID: id, OwnerID: "owner-1", Pickup: seattle, Dropoff: bellevue,
		PickupTime: t0.Add(2 * time.Hour), Deadline: ptime(t0.Add(4 * time.Hour)),
		Expedited: true, ConfirmationRequired: "FingerPrint",
		PackageInfo: messages.PackageInfo{PackageID: "pkg-1", Size: "Small", Weight: 2.5, Tag: "fragile"},
		RequestedAt: t0,
	}
}

// sameJSON compares two values by their JSON encodings, which is how every
// consumer sees them.
func sameJSON(t *testing.T, got, want any) bool {
	t.Helper()
	g, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	w, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	return string(g) == string(w)
}

// onlyPublished checks that exactly one message was published and returns it.
func onlyPublished(t *testing.T, pub *sidecartest.Publisher) sidecartest.Published {
	t.Helper()
	msgs := pub.Messages()
	if len(msgs) != 1 {
		t.Fatalf("got %d messages published, want 1: %+v", len(msgs), msgs)
	}
	return msgs[0]
}

func TestCreateAccepted(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	rec := f.post(t, body(t, nil))
	if rec.Code != http.StatusAccepted {
		t.Fatalf("got status %d, want 202; body %s", rec.Code, rec.Body)
	}
	id := idN(1)
	if got, want := rec.Header().Get("Location"), "/api/deliveryrequests/"+id; got != want {
		t.Errorf("got Location %q, want %q", got, want)
	}
	if got := rec.Header().Get("Content-Type"); got != "application/json" {
		t.Errorf("got Content-Type %q, want application/json", got)
	}
	resp := decode[acceptedResponse](t, rec)
	if resp.DeliveryID != id || resp.Status != "Accepted" {
		t.Errorf("got deliveryId %q status %q, want %q Accepted", resp.DeliveryID, resp.Status, id)
	}
	want := wantRequest(id)
	if !sameJSON(t, resp.DeliveryRequested, want) {
		t.Errorf("got body %+v, want %+v", resp.DeliveryRequested, want)
	}

	m := onlyPublished(t, f.pub)
	if m.Topic != messages.TopicDeliveryRequests || m.Type != messages.TypeDeliveryRequested || m.Key != id {
		t.Errorf("got published topic %q type %q key %q, want %q %q %q",
			m.Topic, m.Type, m.Key, messages.TopicDeliveryRequests, messages.TypeDeliveryRequested, id)
	}
	if !sameJSON(t, m.Data, want) {
		t.Errorf("got published data %+v, want %+v", m.Data, want)
	}

	rr, _, found, err := f.requests.Get(context.Background(), recordKey(id))
	if err != nil || !found {
		t.Fatalf("got record found=%v err=%v, want it stored", found, err)
	}
	if rr.DeliveryID != id || !rr.AcceptedAt.Equal(t0) || !sameJSON(t, rr.Request, want) {
		t.Errorf("got record %+v, want id %s accepted at %v with the request", rr, id, t0)
	}
	if n := f.keys.Len(); n != 0 {
		t.Errorf("got %d idempotency records without a key, want 0", n)
	}
}

func TestCreateDefaultsAndSpellings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		mod   func(m map[string]any)
		check func(t *testing.T, got messages.DeliveryRequested)
	}{
		{"confirmation defaults to None", func(m map[string]any) { delete(m, "confirmationRequired") },
			func(t *testing.T, got messages.DeliveryRequested) {
				if got.ConfirmationRequired != "None" {
					t.Errorf("got confirmationRequired %q, want None", got.ConfirmationRequired)
				}
			}},
		{"confirmation case-insensitive", func(m map[string]any) { m["confirmationRequired"] = "PICTURE" },
			func(t *testing.T, got messages.DeliveryRequested) {
				if got.ConfirmationRequired != "Picture" {
					t.Errorf("got confirmationRequired %q, want Picture", got.ConfirmationRequired)
				}
			}},
		{"size case-insensitive", func(m map[string]any) { pkg(m)["size"] = "LaRgE" },
			func(t *testing.T, got messages.DeliveryRequested) {
				if got.PackageInfo.Size != "Large" {
					t.Errorf("got size %q, want Large", got.PackageInfo.Size)
				}
			}},
		{"deadline optional", func(m map[string]any) { delete(m, "deadline") },
			func(t *testing.T, got messages.DeliveryRequested) {
				if got.Deadline != nil {
					t.Errorf("got deadline %v, want none", got.Deadline)
				}
			}},
		{"empty deadline is none", func(m map[string]any) { m["deadline"] = "" },
			func(t *testing.T, got messages.DeliveryRequested) {
				if got.Deadline != nil {
					t.Errorf("got deadline %v, want none", got.Deadline)
				}
			}},
		{"offset converted to UTC", func(m map[string]any) { m["pickupTime"] = "2026-05-14T13:00:00+02:00" },
			func(t *testing.T, got messages.DeliveryRequested) {
				if want := t0.Add(2 * time.Hour); !got.PickupTime.Equal(want) || got.PickupTime.Location() != time.UTC {
					t.Errorf("got pickupTime %v, want %v in UTC", got.PickupTime, want)
				}
			}},
		{"expedited defaults to false", func(m map[string]any) { delete(m, "expedited") },
			func(t *testing.T, got messages.DeliveryRequested) {
				if got.Expedited {
					t.Error("got expedited true, want false")
				}
			}},
		{"tag optional", func(m map[string]any) { delete(pkg(m), "tag") },
			func(t *testing.T, got messages.DeliveryRequested) {
				if got.PackageInfo.Tag != "" {
					t.Errorf("got tag %q, want empty", got.PackageInfo.Tag)
				}
			}},
		{"limits accepted", func(m map[string]any) {
			m["ownerId"] = "o" + strings.Repeat("x", web.MaxIDLen-1)
			m["pickupTime"] = t0.Add(-maxPickupBehind).Format(time.RFC3339)
			delete(m, "deadline")
			pkg(m)["weight"] = maxWeightKg
			pkg(m)["tag"] = strings.Repeat("t", maxTagLen)
		}, func(t *testing.T, got messages.DeliveryRequested) {
			if got.PackageInfo.Weight != maxWeightKg || len(got.OwnerID) != web.MaxIDLen {
				t.Errorf("got weight %v owner length %d, want %v and %d", got.PackageInfo.Weight, len(got.OwnerID), maxWeightKg, web.MaxIDLen)
			}
		}},
		{"pickup a year ahead accepted", func(m map[string]any) {
			m["pickupTime"] = t0.Add(maxPickupAhead).Format(time.RFC3339)
			delete(m, "deadline")
		}, func(t *testing.T, got messages.DeliveryRequested) {
			if want := t0.Add(maxPickupAhead); !got.PickupTime.Equal(want) {
				t.Errorf("got pickupTime %v, want %v", got.PickupTime, want)
			}
		}},
		{"id characters", func(m map[string]any) { m["ownerId"] = "a0.b_c:d@e-f"; pkg(m)["packageId"] = "9Z" },
			func(t *testing.T, got messages.DeliveryRequested) {
				if got.OwnerID != "a0.b_c:d@e-f" || got.PackageInfo.PackageID != "9Z" {
					t.Errorf("got owner %q package %q", got.OwnerID, got.PackageInfo.PackageID)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			f.accept(t, body(t, tt.mod))
			tt.check(t, onlyPublished(t, f.pub).Data.(messages.DeliveryRequested))
		})
	}
}

func TestCreateResolvesLocations(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		field string // JSON field the value goes in
		value any
		want  geo.Location
		dropF bool // the location is the drop-off
	}{
		{"gazetteer name", "pickupLocation", "Redmond", redmond, false},
		{"name any case and spacing", "pickupLocation", "  sea-tac   AIRPORT ", geo.Location{Name: "Sea-Tac Airport", Latitude: 47.4502, Longitude: -122.3088}, false},
		{"lat,lon string", "pickupLocation", "47.61,-122.2", geo.Location{Latitude: 47.61, Longitude: -122.2}, false},
		{"object", "pickupLocation", map[string]any{"latitude": 47.5, "longitude": -122.1},
			geo.Location{Latitude: 47.5, Longitude: -122.1}, false},
		{"object with name and altitude", "dropoffLocation", map[string]any{"name": "Roof", "latitude": 47.5, "longitude": -122.1, "altitude": 30},
			geo.Location{Name: "Roof", Latitude: 47.5, Longitude: -122.1, Altitude: 30}, true},
		{"dropOffLocation alias", "dropOffLocation", "Redmond", redmond, true},
		{"dropOffLocation alias object", "dropOffLocation", map[string]any{"latitude": 1, "longitude": 2},
			geo.Location{Latitude: 1, Longitude: 2}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			f.accept(t, body(t, func(m map[string]any) {
				if tt.field == "dropOffLocation" {
					delete(m, "dropoffLocation")
				}
				m[tt.field] = tt.value
			}))
			msg := onlyPublished(t, f.pub).Data.(messages.DeliveryRequested)
			got := msg.Pickup
			if tt.dropF {
				got = msg.Dropoff
			}
			if got != tt.want {
				t.Errorf("got location %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestCreateValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		mod   func(m map[string]any)
		field string
	}{
		{"ownerId missing", func(m map[string]any) { delete(m, "ownerId") }, "ownerId"},
		{"ownerId null", func(m map[string]any) { m["ownerId"] = nil }, "ownerId"},
		{"ownerId blank", func(m map[string]any) { m["ownerId"] = "  " }, "ownerId"},
		{"ownerId too long", func(m map[string]any) { m["ownerId"] = strings.Repeat("o", web.MaxIDLen+1) }, "ownerId"},
		{"ownerId with space", func(m map[string]any) { m["ownerId"] = "owner 1" }, "ownerId"},
		{"ownerId with slash", func(m map[string]any) { m["ownerId"] = "owner/1" }, "ownerId"},
		{"ownerId starts with dash", func(m map[string]any) { m["ownerId"] = "-owner" }, "ownerId"},
		{"ownerId not a string", func(m map[string]any) { m["ownerId"] = 42 }, "ownerId"},
		{"pickupLocation missing", func(m map[string]any) { delete(m, "pickupLocation") }, "pickupLocation"},
		{"pickupLocation null", func(m map[string]any) { m["pickupLocation"] = nil }, "pickupLocation"},
		{"pickupLocation unknown place", func(m map[string]any) { m["pickupLocation"] = "Atlantis" }, "pickupLocation"},
		{"pickupLocation name with comma", func(m map[string]any) { m["pickupLocation"] = "Seattle, WA" }, "pickupLocation"},
		{"pickupLocation out of range", func(m map[string]any) { m["pickupLocation"] = "91,0" }, "pickupLocation"},
		{"pickupLocation number", func(m map[string]any) { m["pickupLocation"] = 42 }, "pickupLocation"},
		{"pickupLocation object missing longitude", func(m map[string]any) { m["pickupLocation"] = map[string]any{"latitude": 47.5} }, "pickupLocation"},
		{"pickupLocation object unknown field", func(m map[string]any) { m["pickupLocation"] = map[string]any{"lat": 1, "lon": 2} }, "pickupLocation"},
		{"dropoffLocation missing", func(m map[string]any) { delete(m, "dropoffLocation") }, "dropoffLocation"},
		{"dropoffLocation unknown place", func(m map[string]any) { m["dropoffLocation"] = "Narnia" }, "dropoffLocation"},
		{"dropOffLocation unknown place", func(m map[string]any) { delete(m, "dropoffLocation"); m["dropOffLocation"] = "Narnia" }, "dropoffLocation"},
		{"both drop-off spellings", func(m map[string]any) { m["dropOffLocation"] = "Bellevue" }, "dropoffLocation"},
		{"pickupTime missing", func(m map[string]any) { delete(m, "pickupTime") }, "pickupTime"},
		{"pickupTime empty", func(m map[string]any) { m["pickupTime"] = "" }, "pickupTime"},
		{"pickupTime not RFC 3339", func(m map[string]any) { m["pickupTime"] = "2026-05-14 11:00" }, "pickupTime"},
		{"pickupTime without zone", func(m map[string]any) { m["pickupTime"] = "2026-05-14T11:00:00" }, "pickupTime"},
		{"pickupTime a number", func(m map[string]any) { m["pickupTime"] = 1715677200 }, "pickupTime"},
		{"pickupTime too far in the past", func(m map[string]any) {
			m["pickupTime"] = t0.Add(-maxPickupBehind - time.Second).Format(time.RFC3339)
		}, "pickupTime"},
		{"pickupTime over a year ahead", func(m map[string]any) {
			m["pickupTime"] = t0.Add(maxPickupAhead + time.Second).Format(time.RFC3339)
			m["deadline"] = t0.Add(maxPickupAhead + time.Hour).Format(time.RFC3339)
		}, "pickupTime"},
		{"deadline not RFC 3339", func(m map[string]any) { m["deadline"] = "tomorrow" }, "deadline"},
		{"deadline before pickup", func(m map[string]any) { m["deadline"] = "2026-05-14T10:59:59Z" }, "deadline"},
		{"deadline equal to pickup", func(m map[string]any) { m["deadline"] = "2026-05-14T11:00:00Z" }, "deadline"},
		{"confirmationRequired unknown", func(m map[string]any) { m["confirmationRequired"] = "retina" }, "confirmationRequired"},
		{"confirmationRequired empty", func(m map[string]any) { m["confirmationRequired"] = "" }, "confirmationRequired"},
		{"packageInfo missing", func(m map[string]any) { delete(m, "packageInfo") }, "packageInfo"},
		{"packageInfo null", func(m map[string]any) { m["packageInfo"] = nil }, "packageInfo"},
		{"packageInfo a string", func(m map[string]any) { m["packageInfo"] = "box" }, "packageInfo"},
		{"packageId missing", func(m map[string]any) { delete(pkg(m), "packageId") }, "packageInfo.packageId"},
		{"packageId bad characters", func(m map[string]any) { pkg(m)["packageId"] = "pkg#1" }, "packageInfo.packageId"},
		{"size missing", func(m map[string]any) { delete(pkg(m), "size") }, "packageInfo.size"},
		{"size unknown", func(m map[string]any) { pkg(m)["size"] = "huge" }, "packageInfo.size"},
		{"weight missing", func(m map[string]any) { delete(pkg(m), "weight") }, "packageInfo.weight"},
		{"weight zero", func(m map[string]any) { pkg(m)["weight"] = 0 }, "packageInfo.weight"},
		{"weight negative", func(m map[string]any) { pkg(m)["weight"] = -1 }, "packageInfo.weight"},
		{"weight over the limit", func(m map[string]any) { pkg(m)["weight"] = maxWeightKg + 0.5 }, "packageInfo.weight"},
		{"weight a string", func(m map[string]any) { pkg(m)["weight"] = "heavy" }, "packageInfo.weight"},
		{"tag too long", func(m map[string]any) { pkg(m)["tag"] = strings.Repeat("t", maxTagLen+1) }, "packageInfo.tag"},
		{"unknown top-level field", func(m map[string]any) { m["colour"] = "red" }, "colour"},
		{"expedited not a bool", func(m map[string]any) { m["expedited"] = "yes" }, "expedited"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			rec := f.post(t, body(t, tt.mod))
			checkProblem(t, rec, http.StatusBadRequest, web.CodeInvalidRequest, tt.field)
			if n := len(f.pub.Messages()); n != 0 {
				t.Errorf("got %d messages published, want 0", n)
			}
			if n := f.requests.Len(); n != 0 {
				t.Errorf("got %d request records, want 0", n)
			}
		})
	}
}

func TestCreateValidationNamesEveryField(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	rec := f.post(t, body(t, func(m map[string]any) {
		m["ownerId"] = ""
		m["pickupLocation"] = "Atlantis"
		m["confirmationRequired"] = "retina"
		pkg(m)["weight"] = 0
	}))
	p := checkProblem(t, rec, http.StatusBadRequest, web.CodeInvalidRequest, "")
	got := map[string]bool{}
	for _, fe := range p.Errors {
		got[fe.Field] = true
	}
	for _, want := range []string{"ownerId", "pickupLocation", "confirmationRequired", "packageInfo.weight"} {
		if !got[want] {
			t.Errorf("problem does not name %q: %s", want, rec.Body)
		}
	}
}

func TestCreateRequestProblems(t *testing.T) {
	t.Parallel()
	valid := body(t, nil)
	tests := []struct {
		name        string
		contentType string
		body        string
		status      int
		code        string
	}{
		{"over 64 KiB", "application/json", body(t, func(m map[string]any) { pkg(m)["tag"] = strings.Repeat("t", web.MaxBodyBytes) }),
			http.StatusRequestEntityTooLarge, web.CodeBodyTooLarge},
		{"no Content-Type", "", valid, http.StatusUnsupportedMediaType, web.CodeUnsupportedMediaType},
		{"text/plain", "text/plain", valid, http.StatusUnsupportedMediaType, web.CodeUnsupportedMediaType},
		{"form", "application/x-www-form-urlencoded", valid, http.StatusUnsupportedMediaType, web.CodeUnsupportedMediaType},
		{"trailing object", "application/json", valid + `{}`, http.StatusBadRequest, web.CodeMalformedJSON},
		{"trailing garbage", "application/json", valid + "\nx", http.StatusBadRequest, web.CodeMalformedJSON},
		{"empty body", "application/json", "", http.StatusBadRequest, web.CodeMalformedJSON},
		{"array", "application/json", "[" + valid + "]", http.StatusBadRequest, web.CodeInvalidRequest},
		{"syntax error", "application/json", `{"ownerId" "x"}`, http.StatusBadRequest, web.CodeMalformedJSON},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			req := httptest.NewRequest(http.MethodPost, "/api/deliveryrequests", strings.NewReader(tt.body))
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			rec := httptest.NewRecorder()
			f.handler.ServeHTTP(rec, req)
			checkProblem(t, rec, tt.status, tt.code, "")
			if n := len(f.pub.Messages()); n != 0 {
				t.Errorf("got %d messages published, want 0", n)
			}
		})
	}
}

func TestCreateCharsetAccepted(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	rec := f.send(t, http.MethodPost, "/api/deliveryrequests", body(t, nil),
		map[string]string{"Content-Type": "application/json; charset=utf-8"})
	if rec.Code != http.StatusAccepted {
		t.Fatalf("got status %d, want 202; body %s", rec.Code, rec.Body)
	}
}

func TestCreatePublishFails(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.pub.Err = errDown
	rec := f.post(t, body(t, nil))
	checkProblem(t, rec, http.StatusServiceUnavailable, web.CodeUnavailable, "")
	if got := rec.Header().Get("Retry-After"); got != "1" {
		t.Errorf("got Retry-After %q, want %q", got, "1")
	}
	if got := rec.Header().Get("Location"); got != "" {
		t.Errorf("got Location %q, want none", got)
	}
	if n := f.requests.Len(); n != 0 {
		t.Errorf("got %d request records, want 0", n)
	}
	if n := f.keys.Len(); n != 0 {
		t.Errorf("got %d idempotency records, want 0", n)
	}
}

// The record is only a convenience: when it cannot be saved, the request is
// still with the broker and the 202 stands.
func TestCreateRecordStoreDownStillAccepted(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.requests.Err = errDown
	rec := f.post(t, body(t, nil))
	if rec.Code != http.StatusAccepted {
		t.Fatalf("got status %d, want 202; body %s", rec.Code, rec.Body)
	}
	onlyPublished(t, f.pub)
}

func TestIdempotentRetry(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	first := f.postWithKey(t, "key-1", body(t, nil))
	if first.Code != http.StatusAccepted {
		t.Fatalf("first: got status %d, want 202; body %s", first.Code, first.Body)
	}
	// The same request, reformatted and with its fields in another order.
	reordered := `{ "packageInfo": {"weight": 2.5, "tag": "fragile", "size": "small", "packageId": "pkg-1"},
		"confirmationRequired": "fingerprint", "expedited": true, "deadline": "2026-05-14T13:00:00Z",
		"pickupTime": "2026-05-14T11:00:00Z", "dropoffLocation": "Bellevue", "pickupLocation": "Seattle", "ownerId": "owner-1" }`
	for i, b := range []string{body(t, nil), reordered} {
		again := f.postWithKey(t, "key-1", b)
		if again.Code != http.StatusAccepted {
			t.Fatalf("retry %d: got status %d, want 202; body %s", i, again.Code, again.Body)
		}
		if got, want := decode[acceptedResponse](t, again).DeliveryID, idN(1); got != want {
			t.Errorf("retry %d: got deliveryId %q, want the first one %q", i, got, want)
		}
		if got, want := again.Header().Get("Location"), "/api/deliveryrequests/"+idN(1); got != want {
			t.Errorf("retry %d: got Location %q, want %q", i, got, want)
		}
	}
	if m := onlyPublished(t, f.pub); m.Key != idN(1) {
		t.Errorf("got published key %q, want %q", m.Key, idN(1))
	}
	if n := f.requests.Len(); n != 1 {
		t.Errorf("got %d request records, want 1", n)
	}
	rec, _, _, err := f.keys.Get(context.Background(), idemKey("key-1"))
	if err != nil || rec.DeliveryID != idN(1) || !rec.Published {
		t.Errorf("got idempotency record %+v (err %v), want %s published", rec, err, idN(1))
	}
}

func TestIdempotencyKeysAreIndependent(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	a := decode[acceptedResponse](t, f.postWithKey(t, "key-a", body(t, nil))).DeliveryID
	b := decode[acceptedResponse](t, f.postWithKey(t, "key-b", body(t, nil))).DeliveryID
	c := f.accept(t, body(t, nil)) // no key: a new request every time
	d := f.accept(t, body(t, nil))
	if a == b || c == d || a == c {
		t.Errorf("got ids %s %s %s %s, want all distinct", a, b, c, d)
	}
	if n := len(f.pub.Messages()); n != 4 {
		t.Errorf("got %d messages published, want 4", n)
	}
}

func TestIdempotencyKeyReusedWithOtherBody(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.postWithKey(t, "key-1", body(t, nil))
	rec := f.postWithKey(t, "key-1", body(t, func(m map[string]any) { pkg(m)["weight"] = 3 }))
	p := checkProblem(t, rec, http.StatusUnprocessableEntity, codeIdempotencyMismatch, "")
	if !strings.Contains(p.Detail, idN(1)) {
		t.Errorf("got detail %q, want it to name the first delivery %s", p.Detail, idN(1))
	}
	onlyPublished(t, f.pub)
}

func TestIdempotencyKeyLength(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		key    string
		status int
	}{
		{"at the limit", strings.Repeat("k", maxIdempotencyKeyLen), http.StatusAccepted},
		{"over the limit", strings.Repeat("k", maxIdempotencyKeyLen+1), http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			rec := f.postWithKey(t, tt.key, body(t, nil))
			if tt.status == http.StatusAccepted {
				if rec.Code != tt.status {
					t.Fatalf("got status %d, want %d; body %s", rec.Code, tt.status, rec.Body)
				}
				return
			}
			checkProblem(t, rec, tt.status, codeInvalidKey, "")
			if n := len(f.pub.Messages()); n != 0 {
				t.Errorf("got %d messages published, want 0", n)
			}
			if n := f.keys.Len(); n != 0 {
				t.Errorf("got %d idempotency records, want 0", n)
			}
		})
	}
}

func TestIdempotentRetryAfterPublishFailed(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.pub.Err = errDown
	first := f.postWithKey(t, "key-1", body(t, nil))
	checkProblem(t, first, http.StatusServiceUnavailable, web.CodeUnavailable, "")
	if n := f.requests.Len(); n != 0 {
		t.Fatalf("got %d request records after the failed publish, want 0", n)
	}

	f.pub.Err = nil
	for i := range 2 {
		rec := f.postWithKey(t, "key-1", body(t, nil))
		if rec.Code != http.StatusAccepted {
			t.Fatalf("retry %d: got status %d, want 202; body %s", i, rec.Code, rec.Body)
		}
		if got, want := decode[acceptedResponse](t, rec).DeliveryID, idN(1); got != want {
			t.Errorf("retry %d: got deliveryId %q, want the first attempt's %q", i, got, want)
		}
	}
	m := onlyPublished(t, f.pub)
	if m.Key != idN(1) || m.Data.(messages.DeliveryRequested).DeliveryID != idN(1) {
		t.Errorf("got published key %q data id %q, want %q", m.Key, m.Data.(messages.DeliveryRequested).DeliveryID, idN(1))
	}
	if _, _, found, _ := f.requests.Get(context.Background(), recordKey(idN(1))); !found {
		t.Errorf("got no record for %s, want one", idN(1))
	}
}

// A body whose location objects list latitude and longitude in another order
// is the same request; bodyHash's comment promises field order does not
// matter.
func TestIdempotencyKeyLocationFieldOrder(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.postWithKey(t, "key-1", body(t, func(m map[string]any) {
		m["pickupLocation"] = json.RawMessage(`{"latitude":47.5,"longitude":-122.1}`)
	}))
	rec := f.postWithKey(t, "key-1", body(t, func(m map[string]any) {
		m["pickupLocation"] = json.RawMessage(`{"longitude":-122.1,"latitude":47.5}`)
	}))
	if rec.Code != http.StatusAccepted {
		t.Fatalf("got status %d, want 202; body %s", rec.Code, rec.Body)
	}
	if got := decode[acceptedResponse](t, rec).DeliveryID; got != idN(1) {
		t.Errorf("got deliveryId %q, want %q", got, idN(1))
	}
}

func TestIdempotencyStoreDown(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.keys.Err = errDown
	rec := f.postWithKey(t, "key-1", body(t, nil))
	checkProblem(t, rec, http.StatusServiceUnavailable, web.CodeUnavailable, "")
	if rec.Header().Get("Retry-After") == "" {
		t.Error("got no Retry-After, want one")
	}
	if n := len(f.pub.Messages()); n != 0 {
		t.Errorf("got %d messages published, want 0", n)
	}
}

func TestGetStatus(t *testing.T) {
	t.Parallel()
	updated := t0.Add(10 * time.Minute)
	tests := []struct {
		name       string
		accepted   bool // POST first, and ask for its id
		tx         *transactionView
		schedErr   error
		reqErr     error
		status     int
		wantStatus string
		wantReason string
		wantSched  string
	}{
		{"unknown", false, nil, nil, nil, http.StatusNotFound, "", "", ""},
		{"accepted, scheduler does not know yet", true, nil, nil, nil, http.StatusOK, "Accepted", "", ""},
		{"accepted, scheduler down", true, nil, errDown, nil, http.StatusOK, "Accepted", "", ""},
		{"scheduler knows", true, &transactionView{Status: "Scheduled", UpdatedAt: updated, Schedule: json.RawMessage(`{"droneId":"drone-7"}`)},
			nil, nil, http.StatusOK, "Scheduled", "", `{"droneId":"drone-7"}`},
		{"scheduler failed it", true, &transactionView{Status: "Failed", Reason: "no drone available", UpdatedAt: updated},
			nil, nil, http.StatusOK, "Failed", "no drone available", ""},
		{"cancel came too late", true, &transactionView{Status: "Scheduled", CancelRefused: "too late to cancel: the delivery is already Completed", UpdatedAt: updated},
			nil, nil, http.StatusOK, "Scheduled", "", ""},
		{"reschedule refused", true, &transactionView{Status: "Scheduled", LastReschedule: &rescheduleOutcome{RequestedAt: updated, Refused: "the drone has taken off"}, UpdatedAt: updated},
			nil, nil, http.StatusOK, "Scheduled", "", ""},
		{"only the scheduler knows", false, &transactionView{Status: "Completed", UpdatedAt: updated},
			nil, nil, http.StatusOK, "Completed", "", ""},
		{"scheduler down, no record", false, nil, errDown, nil, http.StatusServiceUnavailable, "", "", ""},
		{"record store down", false, nil, nil, errDown, http.StatusServiceUnavailable, "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			id := idN(99)
			if tt.accepted {
				id = f.accept(t, body(t, nil))
			}
			if tt.tx != nil {
				f.sched.set(id, tt.tx)
			}
			f.sched.fail(tt.schedErr)
			f.requests.Err = tt.reqErr
			rec := f.send(t, http.MethodGet, "/api/deliveryrequests/"+id, "", nil)
			switch tt.status {
			case http.StatusNotFound:
				checkProblem(t, rec, tt.status, web.CodeNotFound, "")
				return
			case http.StatusServiceUnavailable:
				checkProblem(t, rec, tt.status, web.CodeUnavailable, "")
				if rec.Header().Get("Retry-After") == "" {
					t.Error("got no Retry-After, want one")
				}
				return
			}
			if rec.Code != tt.status {
				t.Fatalf("got status %d, want %d; body %s", rec.Code, tt.status, rec.Body)
			}
			got := decode[statusResponse](t, rec)
			if tt.tx != nil && got.CancelRefused != tt.tx.CancelRefused {
				t.Errorf("got cancelRefused %q, want %q", got.CancelRefused, tt.tx.CancelRefused)
			}
			if tt.tx != nil && !sameJSON(t, got.LastReschedule, tt.tx.LastReschedule) {
				t.Errorf("got lastReschedule %+v, want %+v", got.LastReschedule, tt.tx.LastReschedule)
			}
			if got.DeliveryID != id || got.Status != tt.wantStatus || got.Reason != tt.wantReason || string(got.Schedule) != tt.wantSched {
				t.Errorf("got id %q status %q reason %q schedule %s, want %q %q %q %s",
					got.DeliveryID, got.Status, got.Reason, got.Schedule, id, tt.wantStatus, tt.wantReason, tt.wantSched)
			}
			if tt.accepted {
				if got.AcceptedAt == nil || !got.AcceptedAt.Equal(t0) || got.Request == nil || !sameJSON(t, *got.Request, wantRequest(id)) {
					t.Errorf("got acceptedAt %v request %+v, want %v and the request", got.AcceptedAt, got.Request, t0)
				}
			} else if got.AcceptedAt != nil || got.Request != nil {
				t.Errorf("got acceptedAt %v request %+v, want neither without a record", got.AcceptedAt, got.Request)
			}
			if tt.tx != nil {
				if got.UpdatedAt == nil || !got.UpdatedAt.Equal(updated) {
					t.Errorf("got updatedAt %v, want %v", got.UpdatedAt, updated)
				}
			} else if got.UpdatedAt != nil {
				t.Errorf("got updatedAt %v, want none", got.UpdatedAt)
			}
			wantLinks := map[string]string{
				"self":     "/api/deliveryrequests/" + id,
				"delivery": "/api/deliveries/" + id + "/status",
			}
			if len(got.Links) != len(wantLinks) || got.Links["self"] != wantLinks["self"] || got.Links["delivery"] != wantLinks["delivery"] {
				t.Errorf("got links %v, want %v", got.Links, wantLinks)
			}
		})
	}
}

func TestRescheduleAndCancel(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		method   string
		body     string
		wantType string
	}{
		{"reschedule pickup time", http.MethodPatch, `{"pickupTime":"2026-05-14T12:00:00Z"}`, messages.TypeDeliveryRescheduled},
		{"reschedule drop-off", http.MethodPatch, `{"dropoffLocation":"Redmond"}`, messages.TypeDeliveryRescheduled},
		{"reschedule drop-off alias", http.MethodPatch, `{"dropOffLocation":"Redmond"}`, messages.TypeDeliveryRescheduled},
		{"reschedule deadline only", http.MethodPatch, `{"deadline":"2026-05-14T15:00:00Z"}`, messages.TypeDeliveryRescheduled},
		{"cancel", http.MethodDelete, "", messages.TypeDeliveryCanceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			id := f.accept(t, body(t, nil))
			rec := f.send(t, tt.method, "/api/deliveryrequests/"+id, tt.body, nil)
			if rec.Code != http.StatusAccepted {
				t.Fatalf("got status %d, want 202; body %s", rec.Code, rec.Body)
			}
			if got, want := rec.Header().Get("Location"), "/api/deliveryrequests/"+id; got != want {
				t.Errorf("got Location %q, want %q", got, want)
			}
			msgs := f.pub.Messages()
			if len(msgs) != 2 {
				t.Fatalf("got %d messages, want the request and one more: %+v", len(msgs), msgs)
			}
			m := msgs[1]
			if m.Topic != messages.TopicDeliveryRequests || m.Type != tt.wantType || m.Key != id {
				t.Errorf("got topic %q type %q key %q, want %q %q %q", m.Topic, m.Type, m.Key, messages.TopicDeliveryRequests, tt.wantType, id)
			}
		})
	}
}

func TestRescheduleMessage(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	id := f.accept(t, body(t, nil))
	rec := f.send(t, http.MethodPatch, "/api/deliveryrequests/"+id,
		`{"pickupLocation":"47.61,-122.2","dropoffLocation":"Redmond","pickupTime":"2026-05-14T12:00:00Z","deadline":"2026-05-14T15:00:00Z"}`, nil)
	if rec.Code != http.StatusAccepted {
		t.Fatalf("got status %d, want 202; body %s", rec.Code, rec.Body)
	}
	want := messages.DeliveryRescheduled{
		DeliveryID: id, Pickup: &geo.Location{Latitude: 47.61, Longitude: -122.2}, Dropoff: &redmond,
		PickupTime: ptime(t0.Add(3 * time.Hour)), Deadline: ptime(t0.Add(6 * time.Hour)), RequestedAt: t0,
	}
	got := f.pub.Messages()[1].Data.(messages.DeliveryRescheduled)
	if !sameJSON(t, got, want) {
		t.Errorf("got message %+v, want %+v", got, want)
	}
	if resp := decode[messages.DeliveryRescheduled](t, rec); !sameJSON(t, resp, want) {
		t.Errorf("got response %+v, want %+v", resp, want)
	}
}

func TestCancelMessage(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	id := f.accept(t, body(t, nil))
	rec := f.send(t, http.MethodDelete, "/api/deliveryrequests/"+id, "", nil)
	if rec.Code != http.StatusAccepted {
		t.Fatalf("got status %d, want 202; body %s", rec.Code, rec.Body)
	}
	want := messages.DeliveryCanceled{DeliveryID: id, RequestedAt: t0}
	if got := f.pub.Messages()[1].Data.(messages.DeliveryCanceled); got != want {
		t.Errorf("got message %+v, want %+v", got, want)
	}
}

// A delivery the scheduler knows, but whose ingestion record has expired, can
// still be changed.
func TestRescheduleKnownOnlyToScheduler(t *testing.T) {
	t.Parallel()
	for _, method := range []string{http.MethodPatch, http.MethodDelete} {
		t.Run(method, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			id := idN(42)
			f.sched.set(id, &transactionView{Status: "Scheduled"})
			b := ""
			if method == http.MethodPatch {
				b = `{"pickupTime":"2026-05-14T12:00:00Z"}`
			}
			rec := f.send(t, method, "/api/deliveryrequests/"+id, b, nil)
			if rec.Code != http.StatusAccepted {
				t.Fatalf("got status %d, want 202; body %s", rec.Code, rec.Body)
			}
			if m := onlyPublished(t, f.pub); m.Key != id {
				t.Errorf("got key %q, want %q", m.Key, id)
			}
		})
	}
}

func TestRescheduleAndCancelUnknown(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, method, id, body string
	}{
		{"patch, not a uuid", http.MethodPatch, "not-a-uuid", `{"pickupTime":"2026-05-14T12:00:00Z"}`},
		{"patch, uuid not stored", http.MethodPatch, idN(77), `{"pickupTime":"2026-05-14T12:00:00Z"}`},
		{"delete, not a uuid", http.MethodDelete, "not-a-uuid", ""},
		{"delete, uuid not stored", http.MethodDelete, idN(77), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			rec := f.send(t, tt.method, "/api/deliveryrequests/"+tt.id, tt.body, nil)
			checkProblem(t, rec, http.StatusNotFound, web.CodeNotFound, "")
			if n := len(f.pub.Messages()); n != 0 {
				t.Errorf("got %d messages published, want 0", n)
			}
		})
	}
}

func TestRescheduleAndCancelUnavailable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, method, body string
		breakIt            func(f *fixture)
	}{
		{"patch, record store down", http.MethodPatch, `{"pickupTime":"2026-05-14T12:00:00Z"}`, func(f *fixture) { f.requests.Err = errDown }},
		{"delete, record store down", http.MethodDelete, "", func(f *fixture) { f.requests.Err = errDown }},
		{"patch, publish fails", http.MethodPatch, `{"pickupTime":"2026-05-14T12:00:00Z"}`, func(f *fixture) { f.pub.Err = errDown }},
		{"delete, publish fails", http.MethodDelete, "", func(f *fixture) { f.pub.Err = errDown }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			id := f.accept(t, body(t, nil))
			tt.breakIt(f)
			rec := f.send(t, tt.method, "/api/deliveryrequests/"+id, tt.body, nil)
			checkProblem(t, rec, http.StatusServiceUnavailable, web.CodeUnavailable, "")
			if n := len(f.pub.Messages()); n != 1 {
				t.Errorf("got %d messages published, want only the original request", n)
			}
		})
	}
}

func TestRescheduleValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, body, field, code string
	}{
		{"empty object", `{}`, "(body)", web.CodeInvalidRequest},
		{"only empty times", `{"pickupTime":"","deadline":""}`, "(body)", web.CodeInvalidRequest},
		{"unknown place", `{"pickupLocation":"Atlantis"}`, "pickupLocation", web.CodeInvalidRequest},
		{"null location", `{"dropoffLocation":null}`, "dropoffLocation", web.CodeInvalidRequest},
		{"both drop-off spellings", `{"dropoffLocation":"Redmond","dropOffLocation":"Redmond"}`, "dropoffLocation", web.CodeInvalidRequest},
		{"pickupTime not RFC 3339", `{"pickupTime":"noon"}`, "pickupTime", web.CodeInvalidRequest},
		{"pickupTime too far in the past", `{"pickupTime":"2026-05-14T07:00:00Z"}`, "pickupTime", web.CodeInvalidRequest},
		{"pickupTime over a year ahead", `{"pickupTime":"2027-06-01T00:00:00Z"}`, "pickupTime", web.CodeInvalidRequest},
		{"deadline not RFC 3339", `{"deadline":"later"}`, "deadline", web.CodeInvalidRequest},
		{"unknown field", `{"ownerId":"owner-2"}`, "ownerId", web.CodeInvalidRequest},
		{"empty body", ``, "", web.CodeMalformedJSON},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			id := f.accept(t, body(t, nil))
			req := httptest.NewRequest(http.MethodPatch, "/api/deliveryrequests/"+id, strings.NewReader(tt.body))
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			f.handler.ServeHTTP(rec, req)
			checkProblem(t, rec, http.StatusBadRequest, tt.code, tt.field)
			if n := len(f.pub.Messages()); n != 1 {
				t.Errorf("got %d messages published, want only the original request", n)
			}
		})
	}
}

func TestRescheduleDeadlineAfterPickup(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	id := f.accept(t, body(t, nil))
	rec := f.send(t, http.MethodPatch, "/api/deliveryrequests/"+id,
		`{"pickupTime":"2026-05-14T12:00:00Z","deadline":"2026-05-14T11:00:00Z"}`, nil)
	checkProblem(t, rec, http.StatusBadRequest, web.CodeInvalidRequest, "deadline")
}

func TestRescheduleWrongContentType(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	id := f.accept(t, body(t, nil))
	rec := f.send(t, http.MethodPatch, "/api/deliveryrequests/"+id, `{"pickupTime":"2026-05-14T12:00:00Z"}`,
		map[string]string{"Content-Type": "text/plain"})
	checkProblem(t, rec, http.StatusUnsupportedMediaType, web.CodeUnsupportedMediaType, "")

	rec = f.send(t, http.MethodPatch, "/api/deliveryrequests/"+id, `{"pickupTime":"2026-05-14T12:00:00Z"}`,
		map[string]string{"Content-Type": "application/merge-patch+json"})
	if rec.Code != http.StatusAccepted {
		t.Errorf("merge-patch: got status %d, want 202; body %s", rec.Code, rec.Body)
	}
}

func TestRoutes(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tests := []struct {
		method, path string
		status       int
	}{
		{http.MethodGet, "/api/probe", http.StatusOK},
		{http.MethodGet, "/healthz", http.StatusOK},
		{http.MethodGet, "/api/deliveryrequests", http.StatusMethodNotAllowed},
		{http.MethodPut, "/api/deliveryrequests/" + idN(1), http.StatusMethodNotAllowed},
		{http.MethodGet, "/api/nothing", http.StatusNotFound},
	}
	for _, tt := range tests {
		if rec := f.send(t, tt.method, tt.path, "", nil); rec.Code != tt.status {
			t.Errorf("%s %s: got status %d, want %d", tt.method, tt.path, rec.Code, tt.status)
		}
	}
}
