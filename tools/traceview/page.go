package traceview

import (
	"bytes"
	"html/template"
	"net/http"
	"strings"
)

// Handler serves the OTLP receiver and the pages on one port:
//
//	POST /v1/traces          OTLP/HTTP protobuf
//	GET  /                   recent traces, newest first, and a search box
//	GET  /find?q=TEXT        the traces that mention TEXT (a delivery id)
//	GET  /trace/{id}         one trace as an indented timeline
//	GET  /trace/{id}?text    the same timeline as plain text, for curl
func Handler(st *Store) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/v1/traces", Receiver(st))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		render(w, indexPage, pageData{Title: "Recent traces", Traces: st.Summaries(), Refresh: true})
	})
	mux.HandleFunc("GET /find", func(w http.ResponseWriter, r *http.Request) {
		q := strings.TrimSpace(r.URL.Query().Get("q"))
		ids := st.Find(q)
		if len(ids) == 1 {
			http.Redirect(w, r, "/trace/"+ids[0], http.StatusFound)
			return
		}
		data := pageData{Title: "Traces mentioning " + q, Query: q}
		for _, id := range ids {
			if s, ok := st.Summary(id); ok {
				data.Traces = append(data.Traces, s)
			}
		}
		render(w, indexPage, data)
	})
	mux.HandleFunc("GET /trace/{id}", func(w http.ResponseWriter, r *http.Request) {
		spans := st.Trace(r.PathValue("id"))
		if len(spans) == 0 {
			http.Error(w, "no such trace (yet)", http.StatusNotFound)
			return
		}
		var buf bytes.Buffer
		Render(&buf, spans)
		if r.URL.Query().Has("text") {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_, _ = w.Write(buf.Bytes())
			return
		}
		render(w, tracePage, pageData{Title: "Trace " + r.PathValue("id"), Timeline: buf.String()})
	})
	return mux
}

type pageData struct {
	Title    string
	Query    string
	Traces   []Summary
	Timeline string
	Refresh  bool
}

func render(w http.ResponseWriter, t *template.Template, data pageData) {
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(buf.Bytes())
}

const layout = `<!doctype html>
<html><head><meta charset="utf-8"><title>{{.Title}} · traceview</title>
{{if .Refresh}}<meta http-equiv="refresh" content="5">{{end}}
<style>
body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse}td,th{padding:.2em .8em;text-align:left;border-bottom:1px solid #ddd}
pre{font:13px ui-monospace,monospace;background:#f6f6f6;padding:1em;overflow-x:auto}
.err{color:#b00}
</style></head><body>
<form action="/find"><a href="/">traceview</a> &nbsp;
<input name="q" size="40" placeholder="delivery id, trace id or any text" value="{{.Query}}"> <button>find</button></form>
<h2>{{.Title}}</h2>
{{block "content" .}}{{end}}
</body></html>`

var indexPage = template.Must(template.Must(template.New("index").Parse(layout)).Parse(`{{define "content"}}
{{if not .Traces}}<p>No traces yet. Send OTLP/HTTP to this port.</p>{{else}}
<table><tr><th>started</th><th>root</th><th>spans</th><th>duration</th><th>services</th><th>errors</th></tr>
{{range .Traces}}<tr><td>{{.Start.Format "15:04:05.000"}}</td>
<td><a href="/trace/{{.TraceID}}">{{.Root}}</a></td><td>{{.Spans}}</td><td>{{.Duration}}</td>
<td>{{range .Services}}{{.}} {{end}}</td><td{{if .Errors}} class="err"{{end}}>{{.Errors}}</td></tr>
{{end}}</table>{{end}}{{end}}`))

var tracePage = template.Must(template.Must(template.New("trace").Parse(layout)).Parse(`{{define "content"}}
<pre>{{.Timeline}}</pre>{{end}}`))
