package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fabrikam/dronedelivery/internal/sidecar"
)

// sidecarStub stands in for the sidecar's HTTP API in front of the scheduler.
type sidecarStub struct {
	mu      sync.Mutex
	paths   []string // escaped path and query of each request
	status  int
	body    string
	methods []string
}

func (s *sidecarStub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.paths = append(s.paths, r.URL.RequestURI())
	s.methods = append(s.methods, r.Method)
	status, body := s.status, s.body
	s.mu.Unlock()
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

func (s *sidecarStub) requests() ([]string, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.paths...), append([]string(nil), s.methods...)
}

func newSchedulerClient(t *testing.T, stub *sidecarStub) *schedulerClient {
	t.Helper()
	srv := httptest.NewServer(stub)
	t.Cleanup(srv.Close)
	return &schedulerClient{invoker: sidecar.NewInvoker(strings.TrimPrefix(srv.URL, "http://"), srv.Client()), appID: "scheduler"}
}

func TestSchedulerClientTransaction(t *testing.T) {
	t.Parallel()
	id := idN(1)
	tests := []struct {
		name       string
		status     int
		body       string
		wantFound  bool
		wantErr    string // "" for no error
		wantStatus string
	}{
		{"found", 200, `{"transactions":[{"status":"Scheduled","reason":"","updatedAt":"2026-05-14T09:10:00Z","schedule":{"droneId":"drone-7"}}]}`, true, "", "Scheduled"},
		{"not found", 200, `{"transactions":[]}`, false, "", ""},
		{"scheduler error", 500, `{"title":"Internal error","detail":"boom"}`, false, "500 Internal error: boom", ""},
		{"sidecar cannot reach scheduler", 502, `bad gateway`, false, "502 bad gateway", ""},
		{"undecodable answer", 200, `<html>`, false, "decode response", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			stub := &sidecarStub{status: tt.status, body: tt.body}
			c := newSchedulerClient(t, stub)
			v, found, err := c.Transaction(context.Background(), id)
			paths, methods := stub.requests()
			if want := "/v1.0/invoke/scheduler/method/api/transactions?id=" + id; len(paths) != 1 || paths[0] != want || methods[0] != http.MethodGet {
				t.Errorf("got requests %v %v, want one GET %s", methods, paths, want)
			}
			if found != tt.wantFound {
				t.Errorf("got found %v, want %v", found, tt.wantFound)
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("got error %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
			}
			if !tt.wantFound {
				if v != nil {
					t.Errorf("got view %+v, want nil", v)
				}
				return
			}
			if v.Status != tt.wantStatus || string(v.Schedule) != `{"droneId":"drone-7"}` ||
				!v.UpdatedAt.Equal(time.Date(2026, 5, 14, 9, 10, 0, 0, time.UTC)) {
				t.Errorf("got view %+v, want status %q with the schedule", v, tt.wantStatus)
			}
		})
	}
}

func TestSchedulerClientSidecarDown(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := strings.TrimPrefix(srv.URL, "http://")
	srv.Close()
	c := &schedulerClient{invoker: sidecar.NewInvoker(addr, nil), appID: "scheduler"}
	if _, found, err := c.Transaction(context.Background(), idN(1)); err == nil || found {
		t.Errorf("got found %v err %v, want an error", found, err)
	}
}

// Whatever the id holds, it reaches the scheduler as one query value.
func TestSchedulerClientEscapesID(t *testing.T) {
	t.Parallel()
	for _, id := range []string{"abc?x=1", "abc#frag"} {
		stub := &sidecarStub{status: 200, body: `{"transactions":[]}`}
		c := newSchedulerClient(t, stub)
		if _, _, err := c.Transaction(context.Background(), id); err != nil {
			t.Fatal(err)
		}
		paths, _ := stub.requests()
		want := "/v1.0/invoke/scheduler/method/api/transactions?id=" + url.QueryEscape(id)
		if len(paths) != 1 || paths[0] != want {
			t.Errorf("id %q: got requests %v, want %s", id, paths, want)
		}
	}
}
