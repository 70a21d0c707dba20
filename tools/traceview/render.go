package traceview

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// Node is a span with the spans it parents.
type Node struct {
	Span
	Children []*Node
}

// Build links the spans of one trace into trees. Roots have no parent;
// orphans name a parent that is not among spans (not received yet, not
// exported, or in a process that does not trace). Children are ordered by
// start time.
func Build(spans []Span) (roots, orphans []*Node) {
	nodes := make(map[string]*Node, len(spans))
	all := make([]*Node, 0, len(spans))
	for _, s := range spans {
		n := &Node{Span: s}
		nodes[s.SpanID] = n
		all = append(all, n)
	}
	for _, n := range all {
		switch p, ok := nodes[n.ParentID]; {
		case n.ParentID == "":
			roots = append(roots, n)
		case ok && p != n:
			p.Children = append(p.Children, n)
		default:
			orphans = append(orphans, n)
		}
	}
	byStart := func(ns []*Node) {
		sort.SliceStable(ns, func(i, j int) bool { return ns[i].Start.Before(ns[j].Start) })
	}
	for _, n := range all {
		byStart(n.Children)
	}
	byStart(roots)
	byStart(orphans)
	return roots, orphans
}

// Render writes the trace made of spans as an indented timeline: offset from
// the trace's first span, duration, then who recorded the span (app, or
// app/dapr for its sidecar) and the operation, indented by depth. Orphans
// are listed at the top level, marked with their missing parent.
func Render(w io.Writer, spans []Span) {
	if len(spans) == 0 {
		fmt.Fprintln(w, "no spans")
		return
	}
	roots, orphans := Build(spans)
	start := spans[0].Start
	end := spans[0].End
	services := map[string]bool{}
	for _, s := range spans {
		if s.Start.Before(start) {
			start = s.Start
		}
		if s.End.After(end) {
			end = s.End
		}
		services[s.Who()] = true
	}
	names := make([]string, 0, len(services))
	for s := range services {
		names = append(names, s)
	}
	sort.Strings(names)
	fmt.Fprintf(w, "trace %s: %d spans, %s, %s\n", spans[0].TraceID, len(spans), ms(end.Sub(start)), strings.Join(names, " "))
	fmt.Fprintf(w, "%10s %10s  %s\n", "START", "DURATION", "WHO: OPERATION")
	var walk func(n *Node, depth int, note string)
	walk = func(n *Node, depth int, note string) {
		fmt.Fprintf(w, "%10s %10s  %s%s: %s%s%s\n",
			"+"+ms(n.Start.Sub(start)), ms(n.Duration()), strings.Repeat("  ", depth), n.Who(), n.Name, detail(n.Span), note)
		for _, c := range n.Children {
			walk(c, depth+1, "")
		}
	}
	for _, r := range roots {
		walk(r, 0, "")
	}
	for _, o := range orphans {
		walk(o, 0, "   (parent "+o.ParentID+" not received)")
	}
}

// detail is the one or two attributes that say most about a span.
func detail(s Span) string {
	var parts []string
	if s.Kind == "client" {
		if p := s.Attrs["url.path"]; p != "" {
			parts = append(parts, p)
		}
	}
	for _, k := range []string{"http.response.status_code", "http.status_code", "rpc.grpc.status_code"} {
		if v := s.Attrs[k]; v != "" && !(k == "rpc.grpc.status_code" && v == "0") {
			parts = append(parts, v)
			break
		}
	}
	if o := s.Attrs["messaging.dapr.outcome"]; o != "" {
		parts = append(parts, o)
	}
	if s.Error {
		parts = append(parts, "ERROR")
	}
	if len(parts) == 0 {
		return ""
	}
	return " [" + strings.Join(parts, " ") + "]"
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.1fms", float64(d.Microseconds())/1000)
}
