// Package traceview collects spans over OTLP/HTTP and shows one trace as an
// indented timeline: a small, dependency-free stand-in for a tracing
// back end, enough for a developer to follow one delivery through the apps
// and their sidecars, and for end-to-end tests to assert on the spans.
package traceview

import (
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Span is one received span, reduced to what the timeline and the tests
// need.
type Span struct {
	TraceID  string // 32 hex digits
	SpanID   string // 16 hex digits
	ParentID string // "" for a root span
	// Service is the resource's service.name: the app-id for apps and
	// sidecars alike (daprd names its spans after its app).
	Service string
	// Scope is the instrumentation scope; daprd's is "dapr-diagnostics".
	Scope string
	Name  string
	Kind  string // server, client, producer, consumer, internal
	Start time.Time
	End   time.Time
	Error bool // status code Error
	Attrs map[string]string
	Links []string // span ids of linked spans
}

// Sidecar reports whether daprd, not the app, recorded the span.
func (s Span) Sidecar() bool {
	return strings.HasPrefix(s.Scope, "dapr") || strings.HasPrefix(s.Scope, "github.com/dapr/")
}

// Who names the process that recorded the span: "scheduler" for the app,
// "scheduler/dapr" for its sidecar.
func (s Span) Who() string {
	if s.Sidecar() {
		return s.Service + "/dapr"
	}
	return s.Service
}

// Duration is how long the span took.
func (s Span) Duration() time.Duration { return s.End.Sub(s.Start) }

// Store keeps the most recent traces in memory. It is safe for concurrent
// use.
type Store struct {
	mu        sync.Mutex
	maxTraces int
	traces    map[string][]Span
	order     []string // trace ids, oldest first
	lastSpan  map[string]time.Time
}

// NewStore keeps up to maxTraces traces, forgetting the oldest first.
func NewStore(maxTraces int) *Store {
	if maxTraces <= 0 {
		maxTraces = 1000
	}
	return &Store{maxTraces: maxTraces, traces: map[string][]Span{}, lastSpan: map[string]time.Time{}}
}

// Add stores spans.
func (st *Store) Add(spans ...Span) {
	st.mu.Lock()
	defer st.mu.Unlock()
	now := time.Now()
	for _, s := range spans {
		if _, ok := st.traces[s.TraceID]; !ok {
			st.order = append(st.order, s.TraceID)
		}
		st.traces[s.TraceID] = append(st.traces[s.TraceID], s)
		st.lastSpan[s.TraceID] = now
	}
	for len(st.order) > st.maxTraces {
		old := st.order[0]
		st.order = st.order[1:]
		delete(st.traces, old)
		delete(st.lastSpan, old)
	}
}

// Trace returns the spans of trace id, ordered by start time.
func (st *Store) Trace(id string) []Span {
	st.mu.Lock()
	spans := slices.Clone(st.traces[strings.ToLower(id)])
	st.mu.Unlock()
	sort.SliceStable(spans, func(i, j int) bool { return spans[i].Start.Before(spans[j].Start) })
	return spans
}

// Spans returns every stored span, in arrival order per trace.
func (st *Store) Spans() []Span {
	st.mu.Lock()
	defer st.mu.Unlock()
	var out []Span
	for _, id := range st.order {
		out = append(out, st.traces[id]...)
	}
	return out
}

// Find returns the ids of the traces, newest first, in which some span's
// name or attribute value contains q: a delivery id finds the trace of that
// delivery through the paths of the calls made for it.
func (st *Store) Find(q string) []string {
	st.mu.Lock()
	defer st.mu.Unlock()
	var out []string
	for i := len(st.order) - 1; i >= 0; i-- {
		id := st.order[i]
		if id == q || traceMentions(st.traces[id], q) {
			out = append(out, id)
		}
	}
	return out
}

func traceMentions(spans []Span, q string) bool {
	for _, s := range spans {
		if strings.Contains(s.Name, q) {
			return true
		}
		for _, v := range s.Attrs {
			if strings.Contains(v, q) {
				return true
			}
		}
	}
	return false
}

// Summary describes one trace for a listing.
type Summary struct {
	TraceID  string
	Root     string // who and name of the earliest root span
	Start    time.Time
	Duration time.Duration
	Spans    int
	Services []string
	Errors   int
	// Quiet is how long ago the trace's last span arrived.
	Quiet time.Duration
}

// Summaries describes the stored traces, newest first.
func (st *Store) Summaries() []Summary {
	st.mu.Lock()
	ids := slices.Clone(st.order)
	st.mu.Unlock()
	out := make([]Summary, 0, len(ids))
	for i := len(ids) - 1; i >= 0; i-- {
		if s, ok := st.Summary(ids[i]); ok {
			out = append(out, s)
		}
	}
	return out
}

// Summary describes trace id.
func (st *Store) Summary(id string) (Summary, bool) {
	spans := st.Trace(id)
	if len(spans) == 0 {
		return Summary{}, false
	}
	st.mu.Lock()
	last := st.lastSpan[id]
	st.mu.Unlock()
	sum := Summary{TraceID: id, Start: spans[0].Start, Spans: len(spans), Quiet: time.Since(last)}
	end := spans[0].End
	ids := make(map[string]bool, len(spans))
	for _, s := range spans {
		ids[s.SpanID] = true
	}
	services := map[string]bool{}
	for _, s := range spans {
		if s.End.After(end) {
			end = s.End
		}
		services[s.Service] = true
		if s.Error {
			sum.Errors++
		}
		if sum.Root == "" && (s.ParentID == "" || !ids[s.ParentID]) {
			sum.Root = s.Who() + ": " + s.Name
		}
	}
	sum.Duration = end.Sub(sum.Start)
	for s := range services {
		sum.Services = append(sum.Services, s)
	}
	sort.Strings(sum.Services)
	return sum, true
}
