package web_test

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fabrikam/dronedelivery/internal/web"
)

var discard = slog.New(slog.DiscardHandler)

type inner struct {
	Weight float64 `json:"weight"`
}

// stamp has a custom UnmarshalJSON that names its field, as the services'
// enum and time types do.
type stamp struct{ time.Time }

func (s *stamp) UnmarshalJSON(b []byte) error {
	var str string
	if err := json.Unmarshal(b, &str); err != nil {
		return err
	}
	t, err := time.Parse(time.RFC3339, str)
	if err != nil {
		return &web.FieldDecodeError{Field: "when", Err: errors.New("must be RFC 3339")}
	}
	s.Time = t
	return nil
}

type target struct {
	Name  string  `json:"name"`
	Count int     `json:"count"`
	Ok    bool    `json:"ok"`
	Inner inner   `json:"inner"`
	List  []int   `json:"list"`
	When  *stamp  `json:"when"`
	Ptr   *string `json:"ptr"`
}

func decodeRequest(contentType, body string) (*web.Problem, target) {
	req := httptest.NewRequest(http.MethodPost, "/x", strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	var dst target
	return web.DecodeJSON(httptest.NewRecorder(), req, &dst), dst
}

func TestDecodeJSONContentType(t *testing.T) {
	t.Parallel()
	tests := []struct {
		contentType string
		ok          bool
	}{
		{"application/json", true},
		{"application/json; charset=utf-8", true},
		{"application/json;charset=UTF-8", true},
		{"Application/JSON", true},
		{"application/merge-patch+json", true},
		{"application/problem+json", true},
		{"application/vnd.fabrikam.delivery+json; version=1", true},
		{"", false},
		{"text/plain", false},
		{"text/json", false},
		{"application/jsonp", false},
		{"application/x-www-form-urlencoded", false},
		{"multipart/form-data; boundary=x", false},
		{"application/json; charset", false}, // malformed parameter
		{"/json", false},
	}
	for _, tt := range tests {
		t.Run(tt.contentType, func(t *testing.T) {
			t.Parallel()
			p, got := decodeRequest(tt.contentType, `{"name":"a"}`)
			if tt.ok {
				if p != nil {
					t.Fatalf("got problem %+v, want nil", p)
				}
				if got.Name != "a" {
					t.Errorf("got name %q, want %q", got.Name, "a")
				}
				return
			}
			if p == nil {
				t.Fatal("got nil problem, want 415")
			}
			if p.Status != http.StatusUnsupportedMediaType || p.Code != web.CodeUnsupportedMediaType {
				t.Errorf("got %d %q, want %d %q", p.Status, p.Code, http.StatusUnsupportedMediaType, web.CodeUnsupportedMediaType)
			}
		})
	}
}

func TestDecodeJSONSuccess(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body string
		want target
	}{
		{"object", `{"name":"a","count":2,"ok":true}`, target{Name: "a", Count: 2, Ok: true}},
		{"trailing whitespace", "{\"name\":\"a\"}  \n\t\r\n", target{Name: "a"}},
		{"leading whitespace", "\n  {\"name\":\"a\"}", target{Name: "a"}},
		{"nested", `{"inner":{"weight":2.5},"list":[1,2]}`, target{Inner: inner{Weight: 2.5}, List: []int{1, 2}}},
		{"empty object", `{}`, target{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, got := decodeRequest("application/json", tt.body)
			if p != nil {
				t.Fatalf("got problem %+v, want nil", p)
			}
			if got.Name != tt.want.Name || got.Count != tt.want.Count || got.Ok != tt.want.Ok ||
				got.Inner != tt.want.Inner || len(got.List) != len(tt.want.List) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestDecodeJSONProblems(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		body        string
		status      int
		code        string
		field       string // for validation problems: the field named
		errContains string // in the field error, or else in the detail
	}{
		{"empty body", ``, 400, web.CodeMalformedJSON, "", "the body is empty"},
		{"only whitespace", "  \n ", 400, web.CodeMalformedJSON, "", "the body is empty"},
		{"truncated", `{"name":`, 400, web.CodeMalformedJSON, "", "ends before the JSON value does"},
		{"truncated string", `{"name":"ab`, 400, web.CodeMalformedJSON, "", "ends before the JSON value does"},
		{"syntax error", `{"name" "a"}`, 400, web.CodeMalformedJSON, "", "syntax error at byte"},
		{"single quotes", `{'name':'a'}`, 400, web.CodeMalformedJSON, "", "syntax error at byte 2"},
		{"trailing comma", `{"name":"a",}`, 400, web.CodeMalformedJSON, "", "syntax error"},
		{"second object", `{"name":"a"} {"name":"b"}`, 400, web.CodeMalformedJSON, "", "single JSON object"},
		{"trailing garbage", `{"name":"a"} x`, 400, web.CodeMalformedJSON, "", "single JSON object"},
		{"trailing brace", `{"name":"a"}}`, 400, web.CodeMalformedJSON, "", "single JSON object"},
		{"trailing number", `{"name":"a"}1`, 400, web.CodeMalformedJSON, "", "single JSON object"},
		{"unknown field", `{"name":"a","colour":"red"}`, 400, web.CodeInvalidRequest, "colour", "unknown field"},
		{"unknown field only", `{"x-y_z":1}`, 400, web.CodeInvalidRequest, "x-y_z", "unknown field"},
		{"string for number", `{"count":"2"}`, 400, web.CodeInvalidRequest, "count", "must be a number, not a JSON string"},
		{"fraction for int", `{"count":2.5}`, 400, web.CodeInvalidRequest, "count", "must be a number"},
		{"number for string", `{"name":1}`, 400, web.CodeInvalidRequest, "name", "must be a string, not a JSON number"},
		{"string for bool", `{"ok":"yes"}`, 400, web.CodeInvalidRequest, "ok", "must be a boolean, not a JSON string"},
		{"nested type error", `{"inner":{"weight":true}}`, 400, web.CodeInvalidRequest, "inner.weight", "must be a number, not a JSON bool"},
		{"string for object", `{"inner":"heavy"}`, 400, web.CodeInvalidRequest, "inner", "not a JSON string"},
		{"object for array", `{"list":{}}`, 400, web.CodeInvalidRequest, "list", "not a JSON object"},
		{"array element type", `{"list":[1,"2"]}`, 400, web.CodeInvalidRequest, "list", "must be a number, not a JSON string"},
		{"array body", `[]`, 400, web.CodeInvalidRequest, "(body)", "not a JSON array"},
		{"string body", `"hello"`, 400, web.CodeInvalidRequest, "(body)", "not a JSON string"},
		{"custom unmarshaler field error", `{"when":"yesterday"}`, 400, web.CodeInvalidRequest, "when", "must be RFC 3339"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, _ := decodeRequest("application/json", tt.body)
			if p == nil {
				t.Fatalf("got nil problem for %q, want %d %s", tt.body, tt.status, tt.code)
			}
			if p.Status != tt.status || p.Code != tt.code {
				t.Fatalf("got %d %q (%s), want %d %q", p.Status, p.Code, p.Detail, tt.status, tt.code)
			}
			if tt.field == "" {
				if !strings.Contains(p.Detail, tt.errContains) {
					t.Errorf("got detail %q, want it to contain %q", p.Detail, tt.errContains)
				}
				return
			}
			if len(p.Errors) != 1 {
				t.Fatalf("got errors %+v, want exactly one naming %q", p.Errors, tt.field)
			}
			if got := p.Errors[0]; got.Field != tt.field || !strings.Contains(got.Error, tt.errContains) {
				t.Errorf("got field error %+v, want field %q with %q", got, tt.field, tt.errContains)
			}
			if want := tt.field + ": "; !strings.HasPrefix(p.Detail, want) {
				t.Errorf("got detail %q, want prefix %q", p.Detail, want)
			}
		})
	}
}

func TestDecodeJSONTypeErrorWording(t *testing.T) {
	t.Parallel()
	p, _ := decodeRequest("application/json", `{"inner":"heavy"}`)
	if p == nil || len(p.Errors) != 1 {
		t.Fatalf("got %+v, want one field error", p)
	}
	if got, want := p.Errors[0].Error, "must be an object, not a JSON string"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestDecodeJSONMaxSize(t *testing.T) {
	t.Parallel()
	// {"name":"xxxx…"} is 11 bytes plus the x's.
	body := func(size int) string { return `{"name":"` + strings.Repeat("x", size-11) + `"}` }
	tests := []struct {
		name   string
		body   string
		status int // 0: accepted
	}{
		{"exactly the limit", body(web.MaxBodyBytes), 0},
		{"one byte over", body(web.MaxBodyBytes + 1), http.StatusRequestEntityTooLarge},
		{"far over", body(4 * web.MaxBodyBytes), http.StatusRequestEntityTooLarge},
		{"object within, trailing space past the limit", `{"name":"a"}` + strings.Repeat(" ", web.MaxBodyBytes), http.StatusRequestEntityTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, _ := decodeRequest("application/json", tt.body)
			switch {
			case tt.status == 0 && p != nil:
				t.Fatalf("got problem %d %q, want nil", p.Status, p.Code)
			case tt.status == 0:
			case p == nil:
				t.Fatalf("got nil problem, want %d", tt.status)
			case p.Status != tt.status || p.Code != web.CodeBodyTooLarge:
				t.Fatalf("got %d %q, want %d %q", p.Status, p.Code, tt.status, web.CodeBodyTooLarge)
			}
		})
	}
}

func TestWriteProblem(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		problem      *web.Problem
		wantStatus   int
		wantRetry    string
		wantInstance string
	}{
		{"unavailable sets Retry-After", web.Unavailable("down", 7), 503, "7", "/api/things/1"},
		{"no Retry-After when zero", web.NotFound("gone"), 404, "", "/api/things/1"},
		{"explicit instance kept", &web.Problem{Type: "/problems/x", Title: "X", Status: 409, Code: "x", Instance: "/elsewhere"}, 409, "", "/elsewhere"},
		{"internal", web.Internal(), 500, "", "/api/things/1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := httptest.NewRequest(http.MethodGet, "/api/things/1?x=1", nil)
			rec := httptest.NewRecorder()
			web.WriteProblem(rec, req, tt.problem)
			if rec.Code != tt.wantStatus {
				t.Errorf("got status %d, want %d", rec.Code, tt.wantStatus)
			}
			if got := rec.Header().Get("Content-Type"); got != web.ProblemContentType {
				t.Errorf("got Content-Type %q, want %q", got, web.ProblemContentType)
			}
			if got := rec.Header().Get("Retry-After"); got != tt.wantRetry {
				t.Errorf("got Retry-After %q, want %q", got, tt.wantRetry)
			}
			if got, want := rec.Header().Get("Content-Length"), strconv.Itoa(rec.Body.Len()); got != want {
				t.Errorf("got Content-Length %q, want %q", got, want)
			}
			var p web.Problem
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
				t.Fatalf("body %q: %v", rec.Body, err)
			}
			if p.Instance != tt.wantInstance {
				t.Errorf("got instance %q, want %q", p.Instance, tt.wantInstance)
			}
			if p.Status != tt.wantStatus || p.Code != tt.problem.Code || p.Type != tt.problem.Type {
				t.Errorf("got body %+v, want status %d code %q type %q", p, tt.wantStatus, tt.problem.Code, tt.problem.Type)
			}
			if strings.Contains(rec.Body.String(), "RetryAfter") {
				t.Errorf("body %s leaks RetryAfter", rec.Body)
			}
		})
	}
}

func TestWriteProblemNilRequest(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	web.WriteProblem(rec, nil, web.NotFound("x"))
	if rec.Code != http.StatusNotFound {
		t.Errorf("got status %d, want 404", rec.Code)
	}
}

func TestValidation(t *testing.T) {
	t.Parallel()
	p := web.Validation([]web.FieldError{{Field: "a", Error: "is required"}, {Field: "b", Error: "is bad"}})
	if p.Status != http.StatusBadRequest || p.Code != web.CodeInvalidRequest {
		t.Errorf("got %d %q, want 400 %q", p.Status, p.Code, web.CodeInvalidRequest)
	}
	if got, want := p.Detail, "a: is required"; got != want {
		t.Errorf("got detail %q, want %q", got, want)
	}
	if got := len(p.Errors); got != 2 {
		t.Errorf("got %d errors, want 2", got)
	}
	if got, want := p.Error(), "The request is invalid: a: is required"; got != want {
		t.Errorf("got Error() %q, want %q", got, want)
	}
}

func TestWriteJSON(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	web.WriteJSON(rec, http.StatusCreated, map[string]int{"n": 1})
	if rec.Code != http.StatusCreated {
		t.Errorf("got status %d, want 201", rec.Code)
	}
	if got := rec.Header().Get("Content-Type"); got != "application/json" {
		t.Errorf("got Content-Type %q, want application/json", got)
	}
	if got, want := rec.Body.String(), "{\"n\":1}\n"; got != want {
		t.Errorf("got body %q, want %q", got, want)
	}

	// A value that cannot be encoded is a 500 problem, never a half body.
	rec = httptest.NewRecorder()
	web.WriteJSON(rec, http.StatusOK, map[string]any{"f": func() {}})
	if rec.Code != http.StatusInternalServerError {
		t.Errorf("unencodable: got status %d, want 500", rec.Code)
	}
	if got := rec.Header().Get("Content-Type"); got != web.ProblemContentType {
		t.Errorf("unencodable: got Content-Type %q, want %q", got, web.ProblemContentType)
	}
}

func newTestRouter() http.Handler {
	r := web.NewRouter(discard)
	r.HandleFunc("/items/{id}", func(w http.ResponseWriter, _ *http.Request) {
		web.WriteJSON(w, http.StatusOK, map[string]string{"ok": "yes"})
	}).Methods(http.MethodGet)
	r.HandleFunc("/panic", func(http.ResponseWriter, *http.Request) {
		panic("boom")
	}).Methods(http.MethodGet)
	r.HandleFunc("/abort", func(http.ResponseWriter, *http.Request) {
		panic(http.ErrAbortHandler)
	}).Methods(http.MethodGet)
	return r
}

func TestRouter(t *testing.T) {
	t.Parallel()
	h := newTestRouter()
	tests := []struct {
		name, method, path string
		status             int
		code               string // problem code; "" for a JSON success
	}{
		{"healthz", http.MethodGet, "/healthz", 200, ""},
		{"registered route", http.MethodGet, "/items/1", 200, ""},
		{"unknown path", http.MethodGet, "/nope", 404, web.CodeNotFound},
		{"unknown nested path", http.MethodGet, "/items/1/extra", 404, web.CodeNotFound},
		{"wrong method on route", http.MethodDelete, "/items/1", 405, web.CodeMethodNotAllowed},
		{"wrong method on healthz", http.MethodPost, "/healthz", 405, web.CodeMethodNotAllowed},
		{"panic", http.MethodGet, "/panic", 500, web.CodeInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, nil))
			if rec.Code != tt.status {
				t.Fatalf("got status %d, want %d; body %s", rec.Code, tt.status, rec.Body)
			}
			if tt.code == "" {
				if got := rec.Header().Get("Content-Type"); got != "application/json" {
					t.Errorf("got Content-Type %q, want application/json", got)
				}
				return
			}
			if got := rec.Header().Get("Content-Type"); got != web.ProblemContentType {
				t.Errorf("got Content-Type %q, want %q", got, web.ProblemContentType)
			}
			var p web.Problem
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
				t.Fatalf("body %q: %v", rec.Body, err)
			}
			if p.Code != tt.code || p.Status != tt.status {
				t.Errorf("got problem %q %d, want %q %d", p.Code, p.Status, tt.code, tt.status)
			}
			if p.Instance != tt.path {
				t.Errorf("got instance %q, want %q", p.Instance, tt.path)
			}
			if tt.status == 500 && strings.Contains(rec.Body.String(), "boom") {
				t.Errorf("500 body %s discloses the panic value", rec.Body)
			}
		})
	}
}

func TestRouterHealthzBody(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	newTestRouter().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	if got, want := rec.Body.String(), "{\"status\":\"ok\"}\n"; got != want {
		t.Errorf("got body %q, want %q", got, want)
	}
}

func TestRouterMethodNotAllowedHasAllow(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	newTestRouter().ServeHTTP(rec, httptest.NewRequest(http.MethodDelete, "/items/1", nil))
	if got := rec.Header().Get("Allow"); got == "" {
		t.Errorf("got no Allow header on 405, want one listing GET")
	}
}

func TestRecoverOverRealServer(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(newTestRouter())
	defer srv.Close()

	resp, err := srv.Client().Get(srv.URL + "/panic")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError {
		t.Errorf("got status %d, want 500", resp.StatusCode)
	}
	if got := resp.Header.Get("Content-Type"); got != web.ProblemContentType {
		t.Errorf("got Content-Type %q, want %q", got, web.ProblemContentType)
	}
	if !strings.Contains(string(body), `"code":"internal"`) {
		t.Errorf("got body %s, want an internal problem", body)
	}

	// The server is still up after the panic.
	resp, err = srv.Client().Get(srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("after panic: got status %d, want 200", resp.StatusCode)
	}

	// ErrAbortHandler is re-panicked so net/http aborts the response.
	resp, err = srv.Client().Get(srv.URL + "/abort")
	if err == nil {
		resp.Body.Close()
		t.Errorf("abort: got status %d, want the connection aborted", resp.StatusCode)
	}
}

func TestRecoverRepanicsAbortHandler(t *testing.T) {
	t.Parallel()
	defer func() {
		if v := recover(); v != http.ErrAbortHandler {
			t.Errorf("got panic %v, want http.ErrAbortHandler", v)
		}
	}()
	newTestRouter().ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/abort", nil))
}

func TestRouteTemplate(t *testing.T) {
	t.Parallel()
	r := web.NewRouter(discard)
	var got string
	r.HandleFunc("/things/{id}", func(w http.ResponseWriter, req *http.Request) {
		got = web.RouteTemplate(req)
	}).Methods(http.MethodGet)
	r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/things/42", nil))
	if want := "/things/{id}"; got != want {
		t.Errorf("got template %q, want %q", got, want)
	}
	if got, want := web.RouteTemplate(httptest.NewRequest(http.MethodGet, "/raw/path", nil)), "/raw/path"; got != want {
		t.Errorf("no route: got %q, want %q", got, want)
	}
}
