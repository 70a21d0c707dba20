// Package faults makes a service fail on purpose, for failure tests: a chosen
// route answers a chosen status N times or always, or answers slowly. It is
// off unless the service's configuration turns it on (FAULT_INJECTION=on),
// which no production manifest does; when off, its admin API refuses every
// call and the middleware passes requests straight through.
package faults

import (
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/mux"

	"github.com/fabrikam/dronedelivery/internal/web"
)

// Rule is one injected fault. A request matches when its method equals
// Method (any when empty) and its path, with the query if any, starts with
// Path.
type Rule struct {
	Method string `json:"method,omitempty"`
	Path   string `json:"path"`
	// Status is answered instead of the real response; 0 means the request
	// is served normally (after Latency).
	Status int `json:"status,omitempty"`
	// Times is how many matching requests fail; -1 means every one.
	Times int `json:"times"`
	// Latency delays every matching request, failing or not.
	Latency Duration `json:"latency,omitempty"`
}

// Duration reads and writes Go duration strings ("250ms") in JSON.
type Duration time.Duration

// MarshalText writes the duration as "1.5s".
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads a duration such as "250ms".
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	*d = Duration(v)
	return err
}

// Injector holds the rules and counts the calls each route receives, so a
// test can see how many attempts a retry policy really made.
type Injector struct {
	enabled bool

	mu    sync.Mutex
	rules []*Rule
	calls map[string]int
}

// New returns an injector; disabled, it does nothing and refuses its API.
func New(enabled bool) *Injector {
	return &Injector{enabled: enabled, calls: map[string]int{}}
}

// Middleware applies the rules to every routed request and counts it.
func (in *Injector) Middleware(next http.Handler) http.Handler {
	if !in.enabled {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/admin/faults") || r.URL.Path == "/healthz" {
			next.ServeHTTP(w, r)
			return
		}
		status, latency := in.apply(r)
		if latency > 0 {
			t := time.NewTimer(latency)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		if status > 0 {
			p := web.NewProblem(status, "injected-fault", "Injected fault", "this response was injected by a test")
			web.WriteProblem(w, r, p)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (in *Injector) apply(r *http.Request) (int, time.Duration) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.calls[r.Method+" "+web.RouteTemplate(r)]++
	target := r.URL.Path
	if r.URL.RawQuery != "" {
		target += "?" + r.URL.RawQuery
	}
	for _, rule := range in.rules {
		if rule.Method != "" && rule.Method != r.Method || !strings.HasPrefix(target, rule.Path) {
			continue
		}
		status := 0
		if rule.Status > 0 && rule.Times != 0 {
			status = rule.Status
			if rule.Times > 0 {
				rule.Times--
			}
		}
		return status, time.Duration(rule.Latency)
	}
	return 0, 0
}

// Routes registers the admin API: PUT /admin/faults adds a rule, DELETE
// clears rules and counts, GET lists rules and call counts.
func (in *Injector) Routes(r *mux.Router) {
	r.HandleFunc("/admin/faults", in.guard(func(w http.ResponseWriter, r *http.Request) {
		var rule Rule
		if p := web.DecodeJSON(w, r, &rule); p != nil {
			web.WriteProblem(w, r, p)
			return
		}
		if rule.Path == "" || (rule.Status != 0 && (rule.Status < 400 || rule.Status > 599)) {
			web.WriteProblem(w, r, web.Validation([]web.FieldError{{Field: "path/status", Error: "path is required; status must be 400-599 or 0"}}))
			return
		}
		in.mu.Lock()
		in.rules = append(in.rules, &rule)
		in.mu.Unlock()
		web.WriteJSON(w, http.StatusCreated, rule)
	})).Methods(http.MethodPut)
	r.HandleFunc("/admin/faults", in.guard(func(w http.ResponseWriter, _ *http.Request) {
		in.mu.Lock()
		in.rules, in.calls = nil, map[string]int{}
		in.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})).Methods(http.MethodDelete)
	r.HandleFunc("/admin/faults", in.guard(func(w http.ResponseWriter, _ *http.Request) {
		in.mu.Lock()
		defer in.mu.Unlock()
		calls := make(map[string]int, len(in.calls))
		for k, v := range in.calls {
			calls[k] = v
		}
		web.WriteJSON(w, http.StatusOK, map[string]any{"rules": in.rules, "calls": calls})
	})).Methods(http.MethodGet)
}

func (in *Injector) guard(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !in.enabled {
			web.WriteProblem(w, r, web.NewProblem(http.StatusForbidden, "fault-injection-disabled",
				"Fault injection is disabled", "set FAULT_INJECTION=on in a test environment to use it"))
			return
		}
		h(w, r)
	}
}
