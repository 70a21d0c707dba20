package e2e

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fabrikam/dronedelivery/tests/harness"
)

func TestDeliveryRequestIsScheduled(t *testing.T) {
	before := env.MessageCount(t, "delivery-requests")
	id := env.Accepted(t, harness.DeliveryBody("contoso", "Seattle", "Bellevue", 2.5, "pkg-"+t.Name()), nil)

	// The status resource answers from the moment of the 202.
	if _, code := env.Status(t, id); code != http.StatusOK {
		t.Fatalf("status right after 202: %d, want 200", code)
	}
	s := env.WaitStatus(t, id, 30*time.Second, "Scheduled")
	if s.Schedule == nil || s.Schedule.DroneID == "" || s.Schedule.PickupETA == nil || s.Schedule.DeliveryETA == nil {
		t.Fatalf("scheduled without drone and ETAs: %+v", s.Schedule)
	}
	if !s.Schedule.DeliveryETA.After(*s.Schedule.PickupETA) {
		t.Errorf("delivery ETA %s is not after pickup ETA %s", s.Schedule.DeliveryETA, s.Schedule.PickupETA)
	}

	r := env.Do(t, "delivery", http.MethodGet, "/api/deliveries/"+id+"/status", nil, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("delivery status: %d %s", r.Status, r.Body)
	}
	var ds struct {
		Stage   string `json:"stage"`
		DroneID string `json:"droneId"`
	}
	r.JSON(t, &ds)
	if ds.Stage != "Created" || ds.DroneID != s.Schedule.DroneID {
		t.Errorf("delivery status = %+v, want stage Created with drone %s", ds, s.Schedule.DroneID)
	}
	if got := env.MessageCount(t, "delivery-requests") - before; got != 1 {
		t.Errorf("published %d messages for one request, want 1", got)
	}
}

func TestConcurrentRequestsAreAllScheduled(t *testing.T) {
	const n = 200
	before := env.MessageCount(t, "delivery-requests")
	ids := make([]string, n)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	began := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			body := harness.DeliveryBody("northwind", "Seattle", "Redmond", 1+float64(i%10), fmt.Sprintf("pkg-conc-%d-%d", i, began.UnixNano()))
			r, err := postRaw(body)
			if err != nil {
				errs <- err
				return
			}
			if r.Status != http.StatusAccepted {
				errs <- fmt.Errorf("request %d: %d %s", i, r.Status, r.Body)
				return
			}
			var got struct {
				DeliveryID string `json:"deliveryId"`
			}
			if err := jsonUnmarshal(r.Body, &got); err != nil {
				errs <- err
				return
			}
			ids[i] = got.DeliveryID
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	accepted := time.Since(began)

	unique := map[string]bool{}
	for _, id := range ids {
		unique[id] = true
	}
	if len(unique) != n {
		t.Fatalf("%d distinct delivery ids for %d requests", len(unique), n)
	}

	drones := map[string]string{}
	harness.Eventually(t, 2*time.Minute, func() (bool, string) {
		var pending []string
		for _, id := range ids {
			if _, seen := drones[id]; seen {
				continue
			}
			s, _ := env.Status(t, id)
			switch s.Status {
			case "Scheduled":
				drones[id] = s.Schedule.DroneID
			case "Rejected", "Failed", "Canceled":
				t.Fatalf("delivery %s ended %s: %s", id, s.Status, s.Reason)
			default:
				pending = append(pending, id+"="+s.Status)
			}
		}
		return len(pending) == 0, fmt.Sprintf("%d not scheduled yet, e.g. %v", len(pending), first(pending, 3))
	})
	t.Logf("%d requests accepted in %s, all scheduled after %s", n, accepted.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))

	byDrone := map[string][]string{}
	for id, d := range drones {
		byDrone[d] = append(byDrone[d], id)
	}
	for d, ids := range byDrone {
		if len(ids) > 1 {
			t.Errorf("drone %s assigned to %d deliveries: %v", d, len(ids), ids)
		}
	}
	if got := env.MessageCount(t, "delivery-requests") - before; got != n {
		t.Errorf("broker holds %d new request messages for %d requests", got, n)
	}
	for _, id := range ids {
		r := env.Do(t, "delivery", http.MethodGet, "/api/deliveries/"+id, nil, nil)
		if r.Status != http.StatusOK {
			t.Errorf("delivery %s: %d", id, r.Status)
		}
	}
}

func TestBadInputIsRejectedAndNothingPublished(t *testing.T) {
	before := env.MessageCount(t, "delivery-requests")
	valid := func(mod func(m map[string]any)) map[string]any {
		b := harness.DeliveryBody("contoso", "Seattle", "Bellevue", 2, "pkg-bad")
		mod(b)
		return b
	}
	cases := []struct {
		name        string
		body        any
		contentType string
		status      int
		field       string
	}{
		{"malformed JSON", `{"ownerId": "contoso",`, "application/json", 400, ""},
		{"unknown field", valid(func(m map[string]any) { m["color"] = "red" }), "", 400, "color"},
		{"wrong type", valid(func(m map[string]any) { m["expedited"] = "yes" }), "", 400, "expedited"},
		{"nested wrong type", valid(func(m map[string]any) { m["packageInfo"].(map[string]any)["weight"] = "heavy" }), "", 400, "packageInfo.weight"},
		{"missing owner", valid(func(m map[string]any) { delete(m, "ownerId") }), "", 400, "ownerId"},
		{"missing pickup time", valid(func(m map[string]any) { delete(m, "pickupTime") }), "", 400, "pickupTime"},
		{"weight out of range", valid(func(m map[string]any) { m["packageInfo"].(map[string]any)["weight"] = -3 }), "", 400, "packageInfo.weight"},
		{"bad size", valid(func(m map[string]any) { m["packageInfo"].(map[string]any)["size"] = "Huge" }), "", 400, "packageInfo.size"},
		{"unknown place", valid(func(m map[string]any) { m["pickupLocation"] = "Atlantis" }), "", 400, "pickupLocation"},
		{"pickup in the past", valid(func(m map[string]any) { m["pickupTime"] = "2020-01-01T00:00:00Z" }), "", 400, "pickupTime"},
		{"body over 64 KiB", valid(func(m map[string]any) { m["packageInfo"].(map[string]any)["tag"] = strings.Repeat("x", 70<<10) }), "", 413, ""},
		{"wrong content type", valid(func(map[string]any) {}), "text/plain", 415, ""},
		{"no content type", valid(func(map[string]any) {}), "none", 415, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := map[string]string{}
			if tc.contentType == "none" {
				h["Content-Type"] = ""
			} else if tc.contentType != "" {
				h["Content-Type"] = tc.contentType
			}
			r := env.Do(t, "ingestion", http.MethodPost, "/api/deliveryrequests", tc.body, h)
			if r.Status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.Status, tc.status, r.Body)
			}
			if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("Content-Type %q, want application/problem+json", ct)
			}
			var p struct {
				Status int `json:"status"`
				Errors []struct {
					Field string `json:"field"`
				} `json:"errors"`
			}
			r.JSON(t, &p)
			if p.Status != tc.status {
				t.Errorf("problem status %d, want %d", p.Status, tc.status)
			}
			if tc.field != "" {
				var fields []string
				for _, e := range p.Errors {
					fields = append(fields, e.Field)
				}
				sort.Strings(fields)
				if !contains(fields, tc.field) {
					t.Errorf("problem names fields %v, want %q among them: %s", fields, tc.field, r.Body)
				}
			}
		})
	}
	if got := env.MessageCount(t, "delivery-requests"); got != before {
		t.Errorf("bad requests published %d messages", got-before)
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func first(ss []string, n int) []string {
	if len(ss) > n {
		return ss[:n]
	}
	return ss
}
