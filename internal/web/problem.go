// Package web holds the HTTP plumbing every service shares: RFC 9457 problem
// responses, strict JSON decoding, JSON rendering and a server that shuts down
// gracefully.
package web

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
)

// ProblemContentType is the media type of RFC 9457 problem details.
const ProblemContentType = "application/problem+json"

// FieldError names one invalid field of a request and what is wrong with it.
type FieldError struct {
	Field string `json:"field"`
	Error string `json:"error"`
}

// Problem is an RFC 9457 problem document. Code is a stable, machine-readable
// identifier that clients can switch on; Title and Detail are for people.
type Problem struct {
	Type     string       `json:"type"`
	Title    string       `json:"title"`
	Status   int          `json:"status"`
	Detail   string       `json:"detail,omitempty"`
	Instance string       `json:"instance,omitempty"`
	Code     string       `json:"code"`
	Errors   []FieldError `json:"errors,omitempty"`

	// RetryAfter, when positive, is sent as the Retry-After header (seconds).
	RetryAfter int `json:"-"`
}

// Error makes a Problem usable as an error where a handler returns one.
func (p *Problem) Error() string {
	if p.Detail != "" {
		return p.Title + ": " + p.Detail
	}
	return p.Title
}

// NewProblem builds a problem with a type URI derived from its code.
func NewProblem(status int, code, title, detail string) *Problem {
	return &Problem{
		Type:   "/problems/" + code,
		Title:  title,
		Status: status,
		Detail: detail,
		Code:   code,
	}
}

// Stable problem codes shared by the services. Service-specific codes live
// next to the handlers that produce them.
const (
	CodeInvalidRequest       = "invalid-request"
	CodeMalformedJSON        = "malformed-json"
	CodeUnsupportedMediaType = "unsupported-media-type"
	CodeBodyTooLarge         = "body-too-large"
	CodeNotFound             = "not-found"
	CodeConflict             = "conflict"
	CodeUnavailable          = "unavailable"
	CodeInternal             = "internal"
	CodeMethodNotAllowed     = "method-not-allowed"
)

// Validation returns a 400 problem listing the fields at fault.
func Validation(errs []FieldError) *Problem {
	p := NewProblem(http.StatusBadRequest, CodeInvalidRequest, "The request is invalid", "")
	if len(errs) > 0 {
		p.Detail = errs[0].Field + ": " + errs[0].Error
	}
	p.Errors = errs
	return p
}

// NotFound returns a 404 problem.
func NotFound(detail string) *Problem {
	return NewProblem(http.StatusNotFound, CodeNotFound, "Not found", detail)
}

// Unavailable returns a 503 problem asking the client to retry later.
func Unavailable(detail string, retryAfterSeconds int) *Problem {
	p := NewProblem(http.StatusServiceUnavailable, CodeUnavailable, "Service temporarily unavailable", detail)
	p.RetryAfter = retryAfterSeconds
	return p
}

// Internal returns a 500 problem that discloses nothing about the cause.
func Internal() *Problem {
	return NewProblem(http.StatusInternalServerError, CodeInternal, "Internal error", "")
}

// WriteProblem renders p. The body is encoded before the header is written so
// that a response is never half-sent.
func WriteProblem(w http.ResponseWriter, r *http.Request, p *Problem) {
	if p.Instance == "" && r != nil {
		p.Instance = r.URL.Path
	}
	if p.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(p.RetryAfter))
	}
	writeBody(w, p.Status, ProblemContentType, p)
}

// WriteJSON renders v as JSON with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	writeBody(w, status, "application/json", v)
}

func writeBody(w http.ResponseWriter, status int, contentType string, v any) {
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		slog.Error("encode response", "err", err)
		w.Header().Set("Content-Type", ProblemContentType)
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(`{"type":"/problems/internal","title":"Internal error","status":500,"code":"internal"}` + "\n"))
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}
