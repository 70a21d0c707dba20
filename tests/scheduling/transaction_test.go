package scheduling

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fabrikam/dronedelivery/tests/harness"
)

func TestScheduledDeliveryHasARecordInEveryService(t *testing.T) {
	b := body("contoso", "Seattle", "Kirkland", 3)
	id, s := schedule(t, b)
	if s.Schedule == nil || s.Schedule.DroneID == "" || s.Schedule.PickupETA == nil || s.Schedule.DeliveryETA == nil {
		t.Fatalf("schedule lacks drone or ETAs: %+v", s.Schedule)
	}

	var acct struct{ Status string }
	getJSON(t, "account", "/api/accounts/contoso", &acct)
	if acct.Status != "active" {
		t.Errorf("account status %q", acct.Status)
	}
	var tp struct {
		Required bool
		Status   string
	}
	getJSON(t, "thirdparty", "/api/thirdpartydeliveries/"+id, &tp)
	if tp.Required || tp.Status != "not-required" {
		t.Errorf("third-party decision %+v, want not required", tp)
	}
	var pkg struct {
		DeliveryID string
		Weight     float64
	}
	getJSON(t, "package", "/api/packages/"+packageID(b), &pkg)
	if pkg.DeliveryID != id || pkg.Weight != 3 {
		t.Errorf("package %+v, want weight 3 for delivery %s", pkg, id)
	}
	var asg struct {
		DroneID string
		Status  string
	}
	getJSON(t, "drone", "/api/dronedeliveries/"+id, &asg)
	if asg.DroneID != s.Schedule.DroneID || asg.Status != "assigned" {
		t.Errorf("assignment %+v, want drone %s assigned", asg, s.Schedule.DroneID)
	}
	if n := dronesHeldBy(t, id); n != 1 {
		t.Errorf("%d drones held by the delivery, want 1", n)
	}
	var d struct {
		Stage       string
		DroneID     string
		PickupETA   *time.Time
		DeliveryETA *time.Time
	}
	getJSON(t, "delivery", "/api/deliveries/"+id+"/status", &d)
	if d.Stage != "Created" || d.DroneID != s.Schedule.DroneID || d.PickupETA == nil || d.DeliveryETA == nil {
		t.Errorf("delivery status %+v", d)
	}
}

func TestOwnerRejections(t *testing.T) {
	for _, tc := range []struct{ owner, reason string }{
		{"wingtip", "suspended"},
		{"nobody-" + time.Now().Format("150405.000"), "no account"},
	} {
		t.Run(tc.reason, func(t *testing.T) {
			b := body(tc.owner, "Seattle", "Bellevue", 2)
			id := env.Accepted(t, b, nil)
			s := env.WaitStatus(t, id, 30*time.Second, "Rejected", "Scheduled", "Failed", "Canceled")
			if s.Status != "Rejected" || !strings.Contains(s.Reason, tc.reason) {
				t.Fatalf("status %s (%q), want Rejected because %s", s.Status, s.Reason, tc.reason)
			}
			if c := getStatus(t, "package", "/api/packages/"+packageID(b)); c != http.StatusNotFound {
				t.Errorf("package left behind: GET %d", c)
			}
			if c := getStatus(t, "thirdparty", "/api/thirdpartydeliveries/"+id); c != http.StatusNotFound {
				t.Errorf("carrier decision left behind: GET %d", c)
			}
			if c := getStatus(t, "drone", "/api/dronedeliveries/"+id); c != http.StatusNotFound {
				t.Errorf("drone assignment left behind: GET %d", c)
			}
			if c := getStatus(t, "delivery", "/api/deliveries/"+id); c != http.StatusNotFound {
				t.Errorf("delivery left behind: GET %d", c)
			}
		})
	}
}

func TestThirdPartyCarrier(t *testing.T) {
	for _, tc := range []struct {
		name    string
		dropoff string
		weight  float64
		reason  string
	}{
		{"too heavy for drones", "Bellevue", 35, "payload"},
		{"beyond drone range", "Portland", 2, "range"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, s := schedule(t, body("fabrikam", "Seattle", tc.dropoff, tc.weight))
			if s.Schedule == nil || s.Schedule.Carrier == "" || s.Schedule.CarrierBookingID == "" || s.Schedule.DroneID != "" {
				t.Fatalf("schedule %+v, want a carrier booking and no drone", s.Schedule)
			}
			var tp struct {
				Required  bool
				Status    string
				Reason    string
				BookingID string
			}
			getJSON(t, "thirdparty", "/api/thirdpartydeliveries/"+id, &tp)
			if !tp.Required || tp.Status != "booked" || tp.BookingID != s.Schedule.CarrierBookingID || !strings.Contains(tp.Reason, tc.reason) {
				t.Errorf("booking %+v, want booked %s because of %s", tp, s.Schedule.CarrierBookingID, tc.reason)
			}
			if c := getStatus(t, "drone", "/api/dronedeliveries/"+id); c != http.StatusNotFound {
				t.Errorf("a drone was assigned to a carrier delivery: GET %d", c)
			}
		})
	}
}

func TestCancelAfterScheduling(t *testing.T) {
	b := body("tailspin", "Seattle", "Renton", 4)
	id := env.Accepted(t, b, nil)
	s := env.WaitStatus(t, id, 30*time.Second, "Scheduled")
	drone := s.Schedule.DroneID

	if r := env.Do(t, "ingestion", http.MethodDelete, "/api/deliveryrequests/"+id, nil, nil); r.Status != http.StatusAccepted {
		t.Fatalf("cancel: %d %s", r.Status, r.Body)
	}
	env.WaitStatus(t, id, 30*time.Second, "Canceled")
	assertUndone(t, id, packageID(b))
	for _, d := range drones(t) {
		if d.ID == drone && d.AssignedTo != "" {
			t.Errorf("drone %s still held by %s", drone, d.AssignedTo)
		}
	}
}

func TestCancelRacingTheTransaction(t *testing.T) {
	const n = 8
	type req struct{ id, pkg string }
	var reqs []req
	for range n {
		b := body("adventure-works", "Seattle", "Issaquah", 2)
		id := env.Accepted(t, b, nil)
		// Cancel at once: the transaction is queued or running.
		if r := env.Do(t, "ingestion", http.MethodDelete, "/api/deliveryrequests/"+id, nil, nil); r.Status != http.StatusAccepted {
			t.Fatalf("cancel: %d %s", r.Status, r.Body)
		}
		reqs = append(reqs, req{id, packageID(b)})
	}
	for _, r := range reqs {
		// Scheduled may show for a moment before the cancel catches up;
		// Canceled is where it must end.
		env.WaitStatus(t, r.id, 30*time.Second, "Canceled")
		assertUndone(t, r.id, r.pkg)
	}
}

// assertUndone checks that a canceled delivery holds nothing: no drone, no
// package, no live carrier booking, and its delivery record says canceled.
func assertUndone(t *testing.T, id, pkg string) {
	t.Helper()
	if n := dronesHeldBy(t, id); n != 0 {
		t.Errorf("%d drones still held by %s", n, id)
	}
	if c := getStatus(t, "package", "/api/packages/"+pkg); c != http.StatusNotFound {
		t.Errorf("package %s of %s still there: GET %d", pkg, id, c)
	}
	r := env.Do(t, "thirdparty", http.MethodGet, "/api/thirdpartydeliveries/"+id, nil, nil)
	if r.Status == http.StatusOK {
		var tp struct{ Status string }
		r.JSON(t, &tp)
		if tp.Status == "booked" {
			t.Errorf("carrier booking of %s still booked", id)
		}
	}
	r = env.Do(t, "delivery", http.MethodGet, "/api/deliveries/"+id, nil, nil)
	if r.Status == http.StatusOK {
		var d struct{ Stage string }
		r.JSON(t, &d)
		if d.Stage != "Canceled" {
			t.Errorf("delivery %s stage %s, want Canceled", id, d.Stage)
		}
	}
}

func TestReschedule(t *testing.T) {
	id, s := schedule(t, body("contoso", "Seattle", "Bothell", 2))
	newPickup := time.Now().Add(3 * time.Hour).UTC().Truncate(time.Second)
	r := env.Do(t, "ingestion", http.MethodPatch, "/api/deliveryrequests/"+id,
		map[string]any{"pickupTime": newPickup.Format(time.RFC3339)}, nil)
	if r.Status != http.StatusAccepted {
		t.Fatalf("reschedule: %d %s", r.Status, r.Body)
	}
	var got harness.RequestStatus
	harness.Eventually(t, 30*time.Second, func() (bool, string) {
		st, _ := env.Status(t, id)
		got = st
		return st.Schedule != nil && st.Schedule.PickupTime.Equal(newPickup),
			"schedule still shows the old pickup time"
	})
	if got.Schedule.DroneID != s.Schedule.DroneID {
		t.Errorf("drone changed from %s to %s; the same drone could still fly it", s.Schedule.DroneID, got.Schedule.DroneID)
	}
	if !got.Schedule.PickupETA.Equal(newPickup) || !got.Schedule.DeliveryETA.After(newPickup) {
		t.Errorf("ETAs %s / %s do not follow the new pickup time %s", got.Schedule.PickupETA, got.Schedule.DeliveryETA, newPickup)
	}
	var d struct {
		Stage      string
		PickupTime time.Time
	}
	getJSON(t, "delivery", "/api/deliveries/"+id, &d)
	if d.Stage != "Rescheduled" || !d.PickupTime.Equal(newPickup) {
		t.Errorf("delivery %+v, want stage Rescheduled at %s", d, newPickup)
	}
	if c := env.Do(t, "ingestion", http.MethodPatch, "/api/deliveryrequests/00000000-0000-0000-0000-000000000000",
		map[string]any{"pickupTime": newPickup.Format(time.RFC3339)}, nil).Status; c != http.StatusNotFound {
		t.Errorf("reschedule of an unknown delivery: %d, want 404", c)
	}
}
