package sidecar

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Invoker calls other apps through the sidecar's HTTP service-invocation API
// (/v1.0/invoke/{app}/method/{path}). The HTTP API is used rather than the
// SDK's gRPC InvokeMethod because it hands back the callee's own status code
// and problem body unchanged, and callers need both to tell a business
// rejection (4xx) from a failure (5xx). Retries, timeouts and circuit
// breaking are the sidecar's, configured in the Resiliency spec.
type Invoker struct {
	base   string
	client *http.Client
}

// NewInvoker returns an invoker for the sidecar whose HTTP API listens on
// addr ("127.0.0.1:3500"). hc may carry tracing; nil means a default client.
func NewInvoker(addr string, hc *http.Client) *Invoker {
	if hc == nil {
		hc = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	return &Invoker{base: "http://" + addr + "/v1.0/invoke/", client: hc}
}

// Response is the callee's answer.
type Response struct {
	Status int
	Body   []byte
}

// OK reports a 2xx status.
func (r *Response) OK() bool { return r.Status >= 200 && r.Status < 300 }

// Decode unmarshals the body into v.
func (r *Response) Decode(v any) error {
	if err := json.Unmarshal(r.Body, v); err != nil {
		return fmt.Errorf("decode response (status %d): %w", r.Status, err)
	}
	return nil
}

// Detail returns a short description of a non-2xx answer for logs and
// failure reasons: the problem's detail or title when the body is one.
func (r *Response) Detail() string {
	var p struct {
		Title  string `json:"title"`
		Detail string `json:"detail"`
		Code   string `json:"code"`
	}
	if json.Unmarshal(r.Body, &p) == nil && (p.Title != "" || p.Detail != "") {
		if p.Detail != "" {
			return fmt.Sprintf("%d %s: %s", r.Status, p.Title, p.Detail)
		}
		return fmt.Sprintf("%d %s", r.Status, p.Title)
	}
	body := []rune(strings.TrimSpace(string(r.Body)))
	if len(body) > 200 {
		body = append(body[:200], '…')
	}
	return strings.TrimSpace(fmt.Sprintf("%d %s", r.Status, string(body)))
}

// Invoke calls method on path of app with body (JSON-encoded when not nil).
// A transport error or a sidecar that cannot reach the app is an error; any
// answer from the app, whatever its status, is a Response.
func (i *Invoker) Invoke(ctx context.Context, app, method, path string, body any) (*Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encode %s %s/%s body: %w", method, app, path, err)
		}
		// A bytes.Reader gives the request a Content-Length, which the sidecar
		// needs to be able to replay it on retry.
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, i.base+app+"/method/"+strings.TrimPrefix(path, "/"), rd)
	if err != nil {
		return nil, fmt.Errorf("build %s %s/%s: %w", method, app, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := i.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("invoke %s %s/%s: %w", method, app, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, fmt.Errorf("read %s %s/%s response: %w", method, app, path, err)
	}
	return &Response{Status: resp.StatusCode, Body: b}, nil
}
