package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"time"

	"github.com/fabrikam/dronedelivery/tests/harness"
)

var httpClient = &http.Client{Timeout: 30 * time.Second}

// postRaw posts a delivery request from any goroutine (the harness helpers
// fail the test, which only the test goroutine may do).
func postRaw(body any) (*harness.Response, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	resp, err := httpClient.Post(env.Stack.App("ingestion").URL()+"/api/deliveryrequests", "application/json", bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return &harness.Response{Status: resp.StatusCode, Header: resp.Header, Body: rb}, nil
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
