package sidecar_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/fabrikam/dronedelivery/internal/sidecar"
)

// seen is what the fake sidecar received.
type seen struct {
	Method, Path, RawQuery, ContentType string
	ContentLength                       int64
	TransferEncoding                    []string
	Body                                string
}

// fakeSidecar stands in for the sidecar's HTTP API: it records the request
// and answers with status and body.
func fakeSidecar(t *testing.T, status int, body string) (*sidecar.Invoker, func() seen) {
	t.Helper()
	var (
		mu  sync.Mutex
		got seen
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = seen{
			Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, ContentType: r.Header.Get("Content-Type"),
			ContentLength: r.ContentLength, TransferEncoding: r.TransferEncoding, Body: string(b),
		}
		mu.Unlock()
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	inv := sidecar.NewInvoker(strings.TrimPrefix(srv.URL, "http://"), srv.Client())
	return inv, func() seen {
		mu.Lock()
		defer mu.Unlock()
		return got
	}
}

func TestInvokeRequestShape(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		app      string
		method   string
		path     string
		body     any
		wantPath string
		wantQry  string
		wantBody string
	}{
		{"get with leading slash", "scheduler", http.MethodGet, "/api/transactions/d1", nil,
			"/v1.0/invoke/scheduler/method/api/transactions/d1", "", ""},
		{"get without leading slash", "scheduler", http.MethodGet, "api/transactions/d1", nil,
			"/v1.0/invoke/scheduler/method/api/transactions/d1", "", ""},
		{"query kept", "drone", http.MethodGet, "/api/drones?available=true", nil,
			"/v1.0/invoke/drone/method/api/drones", "available=true", ""},
		{"put with body", "delivery", http.MethodPut, "/api/deliveries/d1", map[string]any{"ownerId": "o1", "n": 2},
			"/v1.0/invoke/delivery/method/api/deliveries/d1", "", `{"n":2,"ownerId":"o1"}`},
		{"post struct body", "package", http.MethodPost, "/api/packages", struct {
			Size string `json:"size"`
		}{"Small"}, "/v1.0/invoke/package/method/api/packages", "", `{"size":"Small"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			inv, got := fakeSidecar(t, http.StatusOK, `{}`)
			if _, err := inv.Invoke(context.Background(), tt.app, tt.method, tt.path, tt.body); err != nil {
				t.Fatalf("Invoke: %v", err)
			}
			s := got()
			if s.Method != tt.method {
				t.Errorf("got method %q, want %q", s.Method, tt.method)
			}
			if s.Path != tt.wantPath {
				t.Errorf("got path %q, want %q", s.Path, tt.wantPath)
			}
			if s.RawQuery != tt.wantQry {
				t.Errorf("got query %q, want %q", s.RawQuery, tt.wantQry)
			}
			if s.Body != tt.wantBody {
				t.Errorf("got body %q, want %q", s.Body, tt.wantBody)
			}
			if tt.body == nil {
				if s.ContentType != "" {
					t.Errorf("no body: got Content-Type %q, want none", s.ContentType)
				}
				if s.ContentLength != 0 {
					t.Errorf("no body: got Content-Length %d, want 0", s.ContentLength)
				}
				return
			}
			if s.ContentType != "application/json" {
				t.Errorf("got Content-Type %q, want application/json", s.ContentType)
			}
			if s.ContentLength != int64(len(tt.wantBody)) {
				t.Errorf("got Content-Length %d, want %d", s.ContentLength, len(tt.wantBody))
			}
			if len(s.TransferEncoding) != 0 {
				t.Errorf("got Transfer-Encoding %v, want none (not chunked)", s.TransferEncoding)
			}
		})
	}
}

func TestInvokeResponsePassedBack(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status int
		body   string
		ok     bool
	}{
		{http.StatusOK, `{"status":"Scheduled"}`, true},
		{http.StatusCreated, `{"id":"p1"}`, true},
		{http.StatusNoContent, ``, true},
		{http.StatusNotFound, `{"title":"Not found","status":404,"code":"not-found"}`, false},
		{http.StatusConflict, `{"title":"Conflict","detail":"exists"}`, false},
		{http.StatusInternalServerError, `oops`, false},
		{http.StatusServiceUnavailable, ``, false},
	}
	for _, tt := range tests {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			t.Parallel()
			inv, _ := fakeSidecar(t, tt.status, tt.body)
			resp, err := inv.Invoke(context.Background(), "app", http.MethodGet, "/x", nil)
			if err != nil {
				t.Fatalf("Invoke: got error %v, want a response", err)
			}
			if resp.Status != tt.status {
				t.Errorf("got status %d, want %d", resp.Status, tt.status)
			}
			if string(resp.Body) != tt.body {
				t.Errorf("got body %q, want %q", resp.Body, tt.body)
			}
			if resp.OK() != tt.ok {
				t.Errorf("OK() = %v, want %v", resp.OK(), tt.ok)
			}
		})
	}
}

func TestInvokeErrors(t *testing.T) {
	t.Parallel()
	t.Run("unencodable body", func(t *testing.T) {
		t.Parallel()
		inv, _ := fakeSidecar(t, http.StatusOK, ``)
		if _, err := inv.Invoke(context.Background(), "app", http.MethodPost, "/x", func() {}); err == nil {
			t.Error("got nil error, want an encode error")
		}
	})
	t.Run("sidecar not listening", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.NotFoundHandler())
		addr := strings.TrimPrefix(srv.URL, "http://")
		srv.Close()
		inv := sidecar.NewInvoker(addr, nil)
		if _, err := inv.Invoke(context.Background(), "app", http.MethodGet, "/x", nil); err == nil {
			t.Error("got nil error, want a transport error")
		}
	})
	t.Run("canceled context", func(t *testing.T) {
		t.Parallel()
		inv, _ := fakeSidecar(t, http.StatusOK, ``)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := inv.Invoke(ctx, "app", http.MethodGet, "/x", nil); err == nil {
			t.Error("got nil error, want context canceled")
		}
	})
}

func TestResponseDecode(t *testing.T) {
	t.Parallel()
	var v struct {
		Status string `json:"status"`
	}
	r := &sidecar.Response{Status: 200, Body: []byte(`{"status":"Scheduled"}`)}
	if err := r.Decode(&v); err != nil || v.Status != "Scheduled" {
		t.Errorf("Decode = %v, %+v; want nil, Scheduled", err, v)
	}
	r = &sidecar.Response{Status: 502, Body: []byte(`<html>`)}
	err := r.Decode(&v)
	if err == nil || !strings.Contains(err.Error(), "status 502") {
		t.Errorf("Decode of HTML = %v, want an error naming status 502", err)
	}
	var se *json.SyntaxError
	if !errors.As(err, &se) {
		t.Errorf("Decode error %v does not wrap the json.SyntaxError", err)
	}
}

func TestResponseDetail(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", 250)
	tests := []struct {
		name string
		resp sidecar.Response
		want string
	}{
		{"problem with detail", sidecar.Response{Status: 404, Body: []byte(`{"type":"/problems/not-found","title":"Not found","status":404,"detail":"no delivery d1","code":"not-found"}`)},
			"404 Not found: no delivery d1"},
		{"problem title only", sidecar.Response{Status: 409, Body: []byte(`{"title":"Conflict","code":"conflict"}`)},
			"409 Conflict"},
		{"problem detail only", sidecar.Response{Status: 400, Body: []byte(`{"detail":"ownerId: is required"}`)},
			"400 : ownerId: is required"},
		{"JSON without title or detail", sidecar.Response{Status: 500, Body: []byte(`{"error":"boom"}`)},
			`500 {"error":"boom"}`},
		{"plain text", sidecar.Response{Status: 500, Body: []byte("  internal error\n")},
			"500 internal error"},
		{"JSON array", sidecar.Response{Status: 502, Body: []byte(`[1]`)},
			"502 [1]"},
		{"long body truncated", sidecar.Response{Status: 500, Body: []byte(long)},
			"500 " + long[:200] + "…"},
		{"body of exactly 200", sidecar.Response{Status: 500, Body: []byte(long[:200])},
			"500 " + long[:200]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.resp.Detail(); got != tt.want {
				t.Errorf("got Detail() %q, want %q", got, tt.want)
			}
		})
	}
}

func TestResponseDetailEmptyBody(t *testing.T) {
	t.Parallel()
	r := sidecar.Response{Status: 503}
	if got, want := r.Detail(), "503"; got != want {
		t.Errorf("got Detail() %q, want %q", got, want)
	}
}

func TestResponseDetailTruncatesOnRuneBoundary(t *testing.T) {
	t.Parallel()
	// 'é' is two bytes: byte 200 falls in the middle of the 101st.
	r := sidecar.Response{Status: 500, Body: []byte("x" + strings.Repeat("é", 150))}
	if got := r.Detail(); !utf8.ValidString(got) {
		t.Errorf("got Detail() %q, want valid UTF-8", got)
	}
}
