package web

import (
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/gorilla/mux"
)

// Recover turns a panic in a handler into a 500 problem and a log line, so one
// bad request cannot take the process down.
func Recover(log *slog.Logger) mux.MiddlewareFunc {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() {
				if v := recover(); v != nil {
					if v == http.ErrAbortHandler {
						panic(v)
					}
					log.ErrorContext(r.Context(), "handler panic", "panic", v, "path", r.URL.Path, "stack", string(debug.Stack()))
					WriteProblem(w, r, Internal())
				}
			}()
			next.ServeHTTP(w, r)
		})
	}
}

// AccessLog logs one line per request at debug level, and at warn level for
// server errors, with the route template rather than the raw path.
func AccessLog(log *slog.Logger) mux.MiddlewareFunc {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
			next.ServeHTTP(sw, r)
			if r.URL.Path == "/healthz" {
				return // polled every few hundred ms by sidecars and launchers
			}
			level := slog.LevelDebug
			if sw.status >= 500 {
				level = slog.LevelWarn
			}
			log.Log(r.Context(), level, "http request",
				"method", r.Method, "route", RouteTemplate(r), "status", sw.status,
				"duration_ms", float64(time.Since(start).Microseconds())/1000)
		})
	}
}

// RouteTemplate returns the mux route template of r, or its path when no route
// matched. Templates keep ids out of logs and metric labels.
func RouteTemplate(r *http.Request) string {
	if route := mux.CurrentRoute(r); route != nil {
		if t, err := route.GetPathTemplate(); err == nil {
			return t
		}
	}
	return r.URL.Path
}

type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status = code
		w.wrote = true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach Flush on the real writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Instrumentation traces and measures requests and serves the metrics;
// *telemetry.Telemetry is one. The interface keeps this package free of
// OpenTelemetry.
type Instrumentation interface {
	// Middleware wraps every request the router serves.
	Middleware() func(http.Handler) http.Handler
	// Handler serves the metrics in the Prometheus text format.
	Handler() http.Handler
}

// RouterOption configures NewRouter.
type RouterOption func(*routerConfig)

type routerConfig struct {
	instr Instrumentation
}

// WithInstrumentation traces and measures every request, 404 and 405
// answers included, and serves GET /metrics.
func WithInstrumentation(i Instrumentation) RouterOption {
	return func(c *routerConfig) { c.instr = i }
}

// NewRouter returns a router with the shared middleware, /healthz, and problem
// responses for unknown routes and wrong methods.
//
// With instrumentation, its middleware runs first: the span is already in
// the request's context when the recovery and access-log middleware log, so
// their lines carry the trace id, and it sees the 500 that recovery writes
// for a panic.
func NewRouter(log *slog.Logger, opts ...RouterOption) *mux.Router {
	var cfg routerConfig
	for _, o := range opts {
		o(&cfg)
	}
	// mux runs Use middleware only on matched routes, so the 404 and 405
	// handlers are wrapped themselves.
	wrap := func(h http.Handler) http.Handler { return h }
	r := mux.NewRouter()
	if cfg.instr != nil {
		mw := cfg.instr.Middleware()
		r.Use(mux.MiddlewareFunc(mw))
		wrap = mw
	}
	r.Use(Recover(log), AccessLog(log))
	r.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}).Methods(http.MethodGet)
	if cfg.instr != nil {
		r.Handle("/metrics", cfg.instr.Handler()).Methods(http.MethodGet)
	}
	r.NotFoundHandler = wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		WriteProblem(w, r, NotFound("no route for "+r.Method+" "+r.URL.Path))
	}))
	router := r
	r.MethodNotAllowedHandler = wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", strings.Join(allowed(router, r), ", "))
		WriteProblem(w, r, NewProblem(http.StatusMethodNotAllowed, CodeMethodNotAllowed,
			"Method not allowed", r.Method+" is not supported on "+r.URL.Path))
	}))
	return r
}

// allowed lists the methods some route accepts for r's path, for the Allow
// header a 405 must carry.
func allowed(router *mux.Router, r *http.Request) []string {
	var out []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		probe := r.Clone(r.Context())
		probe.Method = m
		var match mux.RouteMatch
		if router.Match(probe, &match) && match.MatchErr == nil {
			out = append(out, m)
		}
	}
	return out
}
