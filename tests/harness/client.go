package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"
)

// Response is an HTTP answer with its body read.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into v, failing the test on error.
func (r *Response) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %d response %q: %v", r.Status, r.Body, err)
	}
}

// Do sends a request to an app's own port and reads the answer.
func (e *Env) Do(t testing.TB, app, method, path string, body any, header map[string]string) *Response {
	t.Helper()
	resp, err := e.do(app, method, path, body, header)
	if err != nil {
		t.Fatalf("%s %s%s: %v", method, app, path, err)
	}
	return resp
}

func (e *Env) do(app, method, path string, body any, header map[string]string) (*Response, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = bytes.NewReader([]byte(b))
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(j)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, e.Stack.App(app).URL()+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// Eventually polls cond every interval until it returns true or timeout
// passes, then fails the test with the last explanation cond gave.
func Eventually(t testing.TB, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s: %s", timeout, why)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// DeliveryBody returns a valid public request body: owner, places and
// weight as given, pickup in ten minutes.
func DeliveryBody(owner, pickup, dropoff string, weight float64, packageID string) map[string]any {
	return map[string]any{
		"ownerId":              owner,
		"pickupLocation":       pickup,
		"dropoffLocation":      dropoff,
		"pickupTime":           time.Now().Add(10 * time.Minute).UTC().Format(time.RFC3339),
		"expedited":            false,
		"confirmationRequired": "None",
		"packageInfo": map[string]any{
			"packageId": packageID, "size": "Small", "weight": weight, "tag": "e2e",
		},
	}
}

// RequestStatus is the status resource of a delivery request.
type RequestStatus struct {
	DeliveryID string `json:"deliveryId"`
	Status     string `json:"status"`
	Reason     string `json:"reason"`
	// CancelRefused says why a cancel was not carried out.
	CancelRefused string `json:"cancelRefused"`
	// LastReschedule is the newest reschedule handled, and why it was
	// refused if it was.
	LastReschedule *struct {
		RequestedAt time.Time `json:"requestedAt"`
		Refused     string    `json:"refused"`
	} `json:"lastReschedule"`
	Schedule *struct {
		DroneID          string     `json:"droneId"`
		Carrier          string     `json:"carrier"`
		CarrierBookingID string     `json:"carrierBookingId"`
		PickupTime       time.Time  `json:"pickupTime"`
		PickupETA        *time.Time `json:"pickupEta"`
		DeliveryETA      *time.Time `json:"deliveryEta"`
	} `json:"schedule"`
}

// Status reads a delivery request's status resource.
func (e *Env) Status(t testing.TB, id string) (RequestStatus, int) {
	t.Helper()
	r := e.Do(t, "ingestion", http.MethodGet, "/api/deliveryrequests/"+id, nil, nil)
	var s RequestStatus
	if r.Status == http.StatusOK {
		r.JSON(t, &s)
	}
	return s, r.Status
}

// WaitStatus polls the status resource until it shows one of want.
func (e *Env) WaitStatus(t testing.TB, id string, timeout time.Duration, want ...string) RequestStatus {
	t.Helper()
	var s RequestStatus
	Eventually(t, timeout, func() (bool, string) {
		var code int
		s, code = e.Status(t, id)
		for _, w := range want {
			if s.Status == w {
				return true, ""
			}
		}
		return false, fmt.Sprintf("delivery %s: status %d %q (reason %q), want %v", id, code, s.Status, s.Reason, want)
	})
	return s
}

// Accepted posts a delivery request and fails unless it is accepted; it
// returns the delivery id.
func (e *Env) Accepted(t testing.TB, body any, header map[string]string) string {
	t.Helper()
	r := e.Do(t, "ingestion", http.MethodPost, "/api/deliveryrequests", body, header)
	if r.Status != http.StatusAccepted {
		t.Fatalf("POST /api/deliveryrequests: %d %s", r.Status, r.Body)
	}
	var got struct {
		DeliveryID string `json:"deliveryId"`
	}
	r.JSON(t, &got)
	if got.DeliveryID == "" {
		t.Fatalf("202 without deliveryId: %s", r.Body)
	}
	if loc := r.Header.Get("Location"); loc != "/api/deliveryrequests/"+got.DeliveryID {
		t.Fatalf("Location = %q, want the status resource of %s", loc, got.DeliveryID)
	}
	return got.DeliveryID
}
