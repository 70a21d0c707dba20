package main

import (
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
	"github.com/fabrikam/dronedelivery/internal/sidecar/sidecartest"
	"github.com/fabrikam/dronedelivery/internal/web"
)

var (
	errDown = errors.New("sidecar unavailable")
	fixedAt = time.Date(2026, 5, 14, 9, 0, 0, 0, time.UTC)
)

// Bodies: Seattle to Bellevue is about 10 km, Seattle to Portland about 234.
const (
	seattle  = `{"latitude":47.6062,"longitude":-122.3321}`
	bellevue = `{"latitude":47.6101,"longitude":-122.2015}`
	portland = `{"latitude":45.5152,"longitude":-122.6784}`
)

func body(pickup, dropoff string, weight float64, size string) string {
	return fmt.Sprintf(`{"pickup":%s,"dropoff":%s,"packageWeight":%g,"packageSize":%q}`, pickup, dropoff, weight, size)
}

type fixture struct {
	store   *sidecartest.Store[Record]
	handler http.Handler
	ids     atomic.Int64
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{store: sidecartest.NewStore[Record]()}
	log := slog.New(slog.DiscardHandler)
	a := &api{
		log: log, store: f.store, limits: limits{RangeKm: 40, PayloadKg: 20}, carrier: "Contoso Freight",
		now:   func() time.Time { return fixedAt },
		newID: func() string { return fmt.Sprintf("booking-%d", f.ids.Add(1)) },
	}
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

func TestPutDecides(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		required bool
		reasons  []string
	}{
		{"within limits", body(seattle, bellevue, 2, "Small"), false,
			[]string{"within the 40 km drone range and 20 kg payload"}},
		{"too far", body(seattle, portland, 2, "small"), true,
			[]string{"km away, beyond the 40 km drone range"}},
		{"too heavy", body(seattle, bellevue, 35, "LARGE"), true,
			[]string{"package of 35 kg exceeds the 20 kg drone payload"}},
		{"both", body(seattle, portland, 35, "Medium"), true,
			[]string{"beyond the 40 km drone range", "package of 35 kg exceeds the 20 kg drone payload"}},
		{"exactly the payload", body(seattle, bellevue, 20, "Medium"), false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			rec := f.do(t, http.MethodPut, "/api/thirdpartydeliveries/d1", tt.body)
			if rec.Code != http.StatusOK {
				t.Fatalf("status = %d; body %s", rec.Code, rec.Body)
			}
			got := decode[Record](t, rec)
			if got.DeliveryID != "d1" || got.Required != tt.required || !got.CreatedAt.Equal(fixedAt) {
				t.Fatalf("got %+v", got)
			}
			for _, r := range tt.reasons {
				if !strings.Contains(got.Reason, r) {
					t.Errorf("reason %q lacks %q", got.Reason, r)
				}
			}
			if tt.required {
				if got.Status != StatusBooked || got.Carrier != "Contoso Freight" || got.BookingID != "booking-1" {
					t.Fatalf("not booked: %+v", got)
				}
			} else if got.Status != StatusNotRequired || got.Carrier != "" || got.BookingID != "" {
				t.Fatalf("booked although not required: %+v", got)
			}
			if stored, _, _, _ := f.store.Get(t.Context(), key("d1")); stored != got {
				t.Fatalf("stored %+v, answered %+v", stored, got)
			}
		})
	}
}

func TestPortlandReason(t *testing.T) {
	_, reason := limits{RangeKm: 40, PayloadKg: 20}.decide(
		mustLocation(t, seattle), mustLocation(t, portland), 2)
	if !strings.HasPrefix(reason, "drop-off 23") || !strings.HasSuffix(reason, " km away, beyond the 40 km drone range") {
		t.Fatalf("reason = %q", reason)
	}
}

func mustLocation(t *testing.T, s string) (l geo.Location) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), &l); err != nil {
		t.Fatal(err)
	}
	return l
}

func TestPutIdempotent(t *testing.T) {
	f := newFixture(t)
	first := f.do(t, http.MethodPut, "/api/thirdpartydeliveries/d1", body(seattle, portland, 2, "Small"))
	// A retry, even one with other details, gets the booking already made.
	for _, b := range []string{body(seattle, portland, 2, "Small"), body(seattle, bellevue, 1, "Small")} {
		again := f.do(t, http.MethodPut, "/api/thirdpartydeliveries/d1", b)
		if again.Code != http.StatusOK || again.Body.String() != first.Body.String() {
			t.Fatalf("repeat gave %d %s, first was %s", again.Code, again.Body, first.Body)
		}
	}
	if n := f.store.Len(); n != 1 {
		t.Fatalf("store holds %d records, want 1", n)
	}
}

func TestPutConcurrentBooksOnce(t *testing.T) {
	f := newFixture(t)
	const n = 16
	var wg sync.WaitGroup
	bookings := make([]string, n)
	for i := range n {
		wg.Go(func() {
			req := httptest.NewRequest(http.MethodPut, "/api/thirdpartydeliveries/d1",
				strings.NewReader(body(seattle, portland, 2, "Small")))
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			f.handler.ServeHTTP(rec, req)
			if rec.Code == http.StatusOK {
				var r Record
				_ = json.Unmarshal(rec.Body.Bytes(), &r)
				bookings[i] = r.BookingID
			}
		})
	}
	wg.Wait()
	for i, b := range bookings {
		if b == "" || b != bookings[0] {
			t.Fatalf("request %d got booking %q, request 0 got %q", i, b, bookings[0])
		}
	}
}

func TestCancel(t *testing.T) {
	f := newFixture(t)
	booked := decode[Record](t, f.do(t, http.MethodPut, "/api/thirdpartydeliveries/d1", body(seattle, portland, 2, "Small")))

	for range 2 {
		if rec := f.do(t, http.MethodDelete, "/api/thirdpartydeliveries/d1", ""); rec.Code != http.StatusNoContent {
			t.Fatalf("DELETE: %d %s", rec.Code, rec.Body)
		}
	}
	got := decode[Record](t, f.do(t, http.MethodGet, "/api/thirdpartydeliveries/d1", ""))
	want := booked
	want.Status = StatusCanceled
	if got != want {
		t.Fatalf("after cancel %+v, want %+v", got, want)
	}
	checkProblem(t, f.do(t, http.MethodPut, "/api/thirdpartydeliveries/d1", body(seattle, portland, 2, "Small")),
		http.StatusConflict, codeBookingCanceled, "")
}

func TestCancelBeforePut(t *testing.T) {
	f := newFixture(t)
	if rec := f.do(t, http.MethodDelete, "/api/thirdpartydeliveries/d1", ""); rec.Code != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", rec.Code, rec.Body)
	}
	checkProblem(t, f.do(t, http.MethodPut, "/api/thirdpartydeliveries/d1", body(seattle, portland, 2, "Small")),
		http.StatusConflict, codeBookingCanceled, "")
	got := decode[Record](t, f.do(t, http.MethodGet, "/api/thirdpartydeliveries/d1", ""))
	if got.Status != StatusCanceled || got.BookingID != "" || got.Required {
		t.Fatalf("tombstone %+v", got)
	}
	if f.ids.Load() > 1 || f.store.Len() != 1 {
		t.Fatalf("ids minted %d, records %d", f.ids.Load(), f.store.Len())
	}
}

func TestPutInvalid(t *testing.T) {
	tests := []struct {
		name, path, body, code, field string
	}{
		{"no pickup", "/api/thirdpartydeliveries/d1", `{"dropoff":` + seattle + `,"packageWeight":1,"packageSize":"Small"}`, web.CodeInvalidRequest, "pickup"},
		{"bad dropoff", "/api/thirdpartydeliveries/d1", body(seattle, `{"latitude":91,"longitude":0}`, 1, "Small"), web.CodeInvalidRequest, "dropoff"},
		{"zero weight", "/api/thirdpartydeliveries/d1", body(seattle, bellevue, 0, "Small"), web.CodeInvalidRequest, "packageWeight"},
		{"negative weight", "/api/thirdpartydeliveries/d1", body(seattle, bellevue, -1, "Small"), web.CodeInvalidRequest, "packageWeight"},
		{"bad size", "/api/thirdpartydeliveries/d1", body(seattle, bellevue, 1, "Huge"), web.CodeInvalidRequest, "packageSize"},
		{"no size", "/api/thirdpartydeliveries/d1", `{"pickup":` + seattle + `,"dropoff":` + bellevue + `,"packageWeight":1}`, web.CodeInvalidRequest, "packageSize"},
		{"unknown field", "/api/thirdpartydeliveries/d1", `{"pickup":` + seattle + `,"dropoff":` + bellevue + `,"packageWeight":1,"packageSize":"Small","rush":true}`, web.CodeInvalidRequest, "rush"},
		{"bad id", "/api/thirdpartydeliveries/-d1", body(seattle, bellevue, 1, "Small"), web.CodeInvalidRequest, "deliveryId"},
		{"empty body", "/api/thirdpartydeliveries/d1", " ", web.CodeMalformedJSON, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			checkProblem(t, f.do(t, http.MethodPut, tt.path, tt.body), http.StatusBadRequest, tt.code, tt.field)
			if f.store.Len() != 0 {
				t.Fatal("an invalid PUT stored a record")
			}
		})
	}
}

func TestGetUnknown(t *testing.T) {
	checkProblem(t, newFixture(t).do(t, http.MethodGet, "/api/thirdpartydeliveries/nope", ""),
		http.StatusNotFound, web.CodeNotFound, "")
}

func TestStoreDown(t *testing.T) {
	for _, tt := range []struct{ method, body string }{
		{http.MethodPut, body(seattle, portland, 2, "Small")},
		{http.MethodGet, ""},
		{http.MethodDelete, ""},
	} {
		t.Run(tt.method, func(t *testing.T) {
			f := newFixture(t)
			f.store.Err = errDown
			checkProblem(t, f.do(t, tt.method, "/api/thirdpartydeliveries/d1", tt.body),
				http.StatusServiceUnavailable, web.CodeUnavailable, "")
		})
	}
}
