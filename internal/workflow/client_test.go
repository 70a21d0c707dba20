package workflow_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fabrikam/dronedelivery/internal/geo"
	"github.com/fabrikam/dronedelivery/internal/messages"
	"github.com/fabrikam/dronedelivery/internal/sidecar"
	"github.com/fabrikam/dronedelivery/internal/workflow"
)

var ids = workflow.AppIDs{Account: "account", ThirdParty: "thirdparty", Package: "package", Drone: "drone", Delivery: "delivery"}

// invocation is one call the fake invoker received. Body is the JSON the real
// invoker would send, decoded generically (nil when there is no body).
type invocation struct {
	App, Method, Path string
	Body              map[string]any
	HasBody           bool
}

func (c invocation) String() string { return c.Method + " " + c.App + c.Path }

type answer struct {
	resp *sidecar.Response
	err  error
}

// fakeInvoker answers by "METHOD app path" with scripted responses, consumed
// in order (the last one repeats); unscripted calls get 200 {}.
type fakeInvoker struct {
	mu      sync.Mutex
	calls   []invocation
	answers map[string][]answer
}

func newInvoker() *fakeInvoker { return &fakeInvoker{answers: map[string][]answer{}} }

func (f *fakeInvoker) on(method, app, path string, status int, body string) *fakeInvoker {
	k := method + " " + app + path
	f.answers[k] = append(f.answers[k], answer{resp: &sidecar.Response{Status: status, Body: []byte(body)}})
	return f
}

func (f *fakeInvoker) fail(method, app, path string, err error) *fakeInvoker {
	k := method + " " + app + path
	f.answers[k] = append(f.answers[k], answer{err: err})
	return f
}

func (f *fakeInvoker) Invoke(_ context.Context, app, method, path string, body any) (*sidecar.Response, error) {
	c := invocation{App: app, Method: method, Path: path}
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		c.HasBody = true
		if err := json.Unmarshal(b, &c.Body); err != nil {
			return nil, err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, c)
	k := method + " " + app + path
	as := f.answers[k]
	if len(as) == 0 {
		return &sidecar.Response{Status: http.StatusOK, Body: []byte(`{}`)}, nil
	}
	a := as[0]
	if len(as) > 1 {
		f.answers[k] = as[1:]
	}
	return a.resp, a.err
}

func (f *fakeInvoker) Calls() []invocation {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]invocation(nil), f.calls...)
}

func (f *fakeInvoker) callStrings() []string {
	var out []string
	for _, c := range f.Calls() {
		out = append(out, c.String())
	}
	return out
}

func problem(status int, code, detail string) string {
	return fmt.Sprintf(`{"type":"about:blank","title":"Problem %d","status":%d,"code":%q,"detail":%q}`, status, status, code, detail)
}

var pickupTime = time.Date(2030, 5, 14, 10, 0, 0, 0, time.UTC)

func request() messages.DeliveryRequested {
	deadline := pickupTime.Add(2 * time.Hour)
	return messages.DeliveryRequested{
		DeliveryID: "d1", OwnerID: "contoso",
		Pickup:     geo.Location{Name: "A", Latitude: 47.6, Longitude: -122.3},
		Dropoff:    geo.Location{Name: "B", Latitude: 47.62, Longitude: -122.35},
		PickupTime: pickupTime, Deadline: &deadline, Expedited: true, ConfirmationRequired: "FingerPrint",
		PackageInfo: messages.PackageInfo{PackageID: "p1", Size: "Medium", Weight: 2.5, Tag: "books"},
	}
}

func isTransient(err error) bool {
	var rej *workflow.Rejection
	var perm *workflow.Permanent
	return err != nil && !errors.As(err, &rej) && !errors.As(err, &perm) &&
		!errors.Is(err, workflow.ErrNoDroneAvailable) && !errors.Is(err, workflow.ErrRaced)
}

func asRejection(t *testing.T, err error, step workflow.Step) *workflow.Rejection {
	t.Helper()
	var rej *workflow.Rejection
	if !errors.As(err, &rej) {
		t.Fatalf("error %v (%T), want a *Rejection", err, err)
	}
	if rej.Step != step {
		t.Fatalf("rejection at %s, want %s", rej.Step, step)
	}
	return rej
}

func asPermanent(t *testing.T, err error, step workflow.Step) {
	t.Helper()
	var perm *workflow.Permanent
	if !errors.As(err, &perm) {
		t.Fatalf("error %v (%T), want a *Permanent", err, err)
	}
	if perm.Step != step {
		t.Fatalf("permanent failure at %s, want %s", perm.Step, step)
	}
}

func TestAccountStep(t *testing.T) {
	const path = "/api/accounts?id=contoso"
	tests := []struct {
		name   string
		status int
		body   string
		check  func(t *testing.T, err error)
	}{
		{"active", 200, `{"accounts":[{"id":"contoso","name":"Contoso","status":"active"}]}`, func(t *testing.T, err error) {
			if err != nil {
				t.Fatalf("err %v, want nil", err)
			}
		}},
		{"no account", 200, `{"accounts":[]}`, func(t *testing.T, err error) {
			rej := asRejection(t, err, workflow.StepAccount)
			if !strings.Contains(rej.Reason, "no account") || !strings.Contains(rej.Reason, "contoso") {
				t.Fatalf("reason %q", rej.Reason)
			}
		}},
		{"suspended", 200, `{"accounts":[{"id":"contoso","status":"suspended"}]}`, func(t *testing.T, err error) {
			rej := asRejection(t, err, workflow.StepAccount)
			if !strings.Contains(rej.Reason, "suspended") {
				t.Fatalf("reason %q", rej.Reason)
			}
		}},
		{"unavailable", 503, problem(503, "unavailable", "store down"), func(t *testing.T, err error) {
			if !isTransient(err) {
				t.Fatalf("err %v (%T), want transient", err, err)
			}
		}},
		{"timeout", 408, ``, func(t *testing.T, err error) {
			if !isTransient(err) {
				t.Fatalf("err %v, want transient", err)
			}
		}},
		{"throttled", 429, ``, func(t *testing.T, err error) {
			if !isTransient(err) {
				t.Fatalf("err %v, want transient", err)
			}
		}},
		{"bad request", 400, problem(400, "validation", "bad id"), func(t *testing.T, err error) {
			asPermanent(t, err, workflow.StepAccount)
			if !strings.Contains(err.Error(), "bad id") {
				t.Fatalf("error %q lacks the problem detail", err)
			}
		}},
		{"undecodable", 200, `<html>`, func(t *testing.T, err error) {
			asPermanent(t, err, workflow.StepAccount)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv := newInvoker().on(http.MethodGet, "account", path, tt.status, tt.body)
			c := workflow.NewClient(inv, ids)
			var p workflow.Progress
			err := c.Do(t.Context(), workflow.StepAccount, request(), &p)
			tt.check(t, err)
			calls := inv.Calls()
			if len(calls) != 1 || calls[0].String() != "GET account"+path || calls[0].HasBody {
				t.Fatalf("calls %v", calls)
			}
		})
	}
}

func TestAccountStepTransportError(t *testing.T) {
	boom := errors.New("connection refused")
	inv := newInvoker().fail(http.MethodGet, "account", "/api/accounts?id=contoso", boom)
	err := workflow.NewClient(inv, ids).Do(t.Context(), workflow.StepAccount, request(), &workflow.Progress{})
	if !isTransient(err) || !errors.Is(err, boom) {
		t.Fatalf("err %v, want a transient error wrapping the cause", err)
	}
}

func TestAccountStepEscapesOwner(t *testing.T) {
	inv := newInvoker().on(http.MethodGet, "account", "/api/accounts?id=a%2Fb", 200, `{"accounts":[{"status":"active"}]}`)
	req := request()
	req.OwnerID = "a/b"
	if err := workflow.NewClient(inv, ids).Do(t.Context(), workflow.StepAccount, req, &workflow.Progress{}); err != nil {
		t.Fatalf("err %v; calls %v", err, inv.callStrings())
	}
}

func TestThirdPartyRequiredSkipsDrone(t *testing.T) {
	inv := newInvoker().on(http.MethodPut, "thirdparty", "/api/thirdpartydeliveries?deliveryId=d1", 200,
		`{"deliveryId":"d1","required":true,"reason":"beyond drone range","status":"booked","carrier":"Contoso Couriers","bookingId":"bk-1","createdAt":"2030-05-14T09:00:00Z"}`)
	c := workflow.NewClient(inv, ids)
	req := request()
	var p workflow.Progress

	if err := c.Do(t.Context(), workflow.StepThirdParty, req, &p); err != nil {
		t.Fatal(err)
	}
	want := workflow.ThirdParty{Required: true, Reason: "beyond drone range", Carrier: "Contoso Couriers", BookingID: "bk-1"}
	if p.ThirdParty == nil || *p.ThirdParty != want {
		t.Fatalf("third party %+v, want %+v", p.ThirdParty, want)
	}
	body := inv.Calls()[0].Body
	if body["packageWeight"] != 2.5 || body["packageSize"] != "Medium" || body["pickup"] == nil || body["dropoff"] == nil {
		t.Fatalf("thirdparty body %v", body)
	}

	if err := c.Do(t.Context(), workflow.StepDrone, req, &p); err != nil {
		t.Fatal(err)
	}
	if n := len(inv.Calls()); n != 1 {
		t.Fatalf("the drone step called %v although a carrier flies it", inv.callStrings()[1:])
	}
	if p.Drone != nil {
		t.Fatalf("drone %+v set for a carrier delivery", p.Drone)
	}

	if err := c.Do(t.Context(), workflow.StepDelivery, req, &p); err != nil {
		t.Fatal(err)
	}
	calls := inv.Calls()
	if len(calls) != 2 || calls[1].String() != "PUT delivery/api/deliveries?id=d1" {
		t.Fatalf("calls %v", inv.callStrings())
	}
	db := calls[1].Body
	if db["carrier"] != "Contoso Couriers" {
		t.Fatalf("delivery body %v lacks the carrier", db)
	}
	for _, k := range []string{"droneId", "pickupEta", "deliveryEta"} {
		if _, ok := db[k]; ok {
			t.Fatalf("delivery body %v carries %s for a carrier delivery", db, k)
		}
	}
}

func TestThirdPartyNotRequiredAssignsDrone(t *testing.T) {
	eta := pickupTime.Add(-5 * time.Minute)
	inv := newInvoker().
		on(http.MethodPut, "thirdparty", "/api/thirdpartydeliveries?deliveryId=d1", 200, `{"required":false,"reason":"within range"}`).
		on(http.MethodPut, "drone", "/api/dronedeliveries?id=d1", 200,
			fmt.Sprintf(`{"deliveryId":"d1","droneId":"drone-3","status":"assigned","pickupEta":%q,"deliveryEta":%q}`,
				eta.Format(time.RFC3339), eta.Add(20*time.Minute).Format(time.RFC3339)))
	c := workflow.NewClient(inv, ids)
	req := request()
	var p workflow.Progress
	for _, s := range []workflow.Step{workflow.StepThirdParty, workflow.StepDrone, workflow.StepDelivery} {
		if err := c.Do(t.Context(), s, req, &p); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	wantCalls := []string{"PUT thirdparty/api/thirdpartydeliveries?deliveryId=d1", "PUT drone/api/dronedeliveries?id=d1", "PUT delivery/api/deliveries?id=d1"}
	if got := inv.callStrings(); !reflect.DeepEqual(got, wantCalls) {
		t.Fatalf("calls %v, want %v", got, wantCalls)
	}
	want := workflow.DroneAssignment{DroneID: "drone-3", PickupETA: eta, DeliveryETA: eta.Add(20 * time.Minute)}
	if p.Drone == nil || p.Drone.DroneID != want.DroneID || !p.Drone.PickupETA.Equal(want.PickupETA) || !p.Drone.DeliveryETA.Equal(want.DeliveryETA) {
		t.Fatalf("drone %+v, want %+v", p.Drone, want)
	}
	calls := inv.Calls()
	droneBody := calls[1].Body
	if droneBody["pickupTime"] != pickupTime.Format(time.RFC3339) || droneBody["packageWeight"] != 2.5 ||
		droneBody["packageSize"] != "Medium" || droneBody["expedited"] != true || droneBody["pickup"] == nil || droneBody["dropoff"] == nil {
		t.Fatalf("drone body %v", droneBody)
	}
	db := calls[2].Body
	if db["droneId"] != "drone-3" || db["pickupEta"] != eta.Format(time.RFC3339) || db["ownerId"] != "contoso" ||
		db["packageId"] != "p1" || db["expedited"] != true || db["confirmationRequired"] != "FingerPrint" ||
		db["deadline"] != pickupTime.Add(2*time.Hour).Format(time.RFC3339) || db["pickupTime"] != pickupTime.Format(time.RFC3339) {
		t.Fatalf("delivery body %v", db)
	}
	if _, ok := db["carrier"]; ok {
		t.Fatalf("delivery body %v names a carrier", db)
	}
}

func TestDeliveryBodyWithoutDeadline(t *testing.T) {
	inv := newInvoker()
	req := request()
	req.Deadline = nil
	p := workflow.Progress{Drone: &workflow.DroneAssignment{DroneID: "drone-1"}}
	if err := workflow.NewClient(inv, ids).Do(t.Context(), workflow.StepDelivery, req, &p); err != nil {
		t.Fatal(err)
	}
	if _, ok := inv.Calls()[0].Body["deadline"]; ok {
		t.Fatalf("body %v has a deadline", inv.Calls()[0].Body)
	}
}

func TestThirdPartyStepErrors(t *testing.T) {
	const path = "/api/thirdpartydeliveries?deliveryId=d1"
	t.Run("unavailable", func(t *testing.T) {
		inv := newInvoker().on(http.MethodPut, "thirdparty", path, 503, ``)
		var p workflow.Progress
		err := workflow.NewClient(inv, ids).Do(t.Context(), workflow.StepThirdParty, request(), &p)
		if !isTransient(err) || p.ThirdParty != nil {
			t.Fatalf("err %v, progress %+v", err, p)
		}
	})
	t.Run("undecodable", func(t *testing.T) {
		inv := newInvoker().on(http.MethodPut, "thirdparty", path, 200, `nope`)
		err := workflow.NewClient(inv, ids).Do(t.Context(), workflow.StepThirdParty, request(), &workflow.Progress{})
		asPermanent(t, err, workflow.StepThirdParty)
	})
	t.Run("validation", func(t *testing.T) {
		inv := newInvoker().on(http.MethodPut, "thirdparty", path, 400, problem(400, "validation", "bad"))
		err := workflow.NewClient(inv, ids).Do(t.Context(), workflow.StepThirdParty, request(), &workflow.Progress{})
		asPermanent(t, err, workflow.StepThirdParty)
	})
}

// The third-party service answers a PUT that arrives after the delivery's
// cancel with 409 booking-canceled: the step raced an undo.
func TestThirdPartyBookingCanceledIsRaced(t *testing.T) {
	inv := newInvoker().on(http.MethodPut, "thirdparty", "/api/thirdpartydeliveries?deliveryId=d1", 409,
		problem(409, "booking-canceled", "delivery d1 was canceled; it cannot be booked again"))
	err := workflow.NewClient(inv, ids).Do(t.Context(), workflow.StepThirdParty, request(), &workflow.Progress{})
	if !errors.Is(err, workflow.ErrRaced) {
		t.Fatalf("err %v (%T), want ErrRaced", err, err)
	}
}

func TestPackageStep(t *testing.T) {
	const path = "/api/packages?id=p1"
	tests := []struct {
		name   string
		status int
		body   string
		check  func(t *testing.T, err error)
	}{
		{"created", 201, `{"id":"p1"}`, func(t *testing.T, err error) {
			if err != nil {
				t.Fatal(err)
			}
		}},
		{"repeat", 200, `{"id":"p1"}`, func(t *testing.T, err error) {
			if err != nil {
				t.Fatal(err)
			}
		}},
		{"conflict", 409, problem(409, "package-conflict", "belongs to d9"), func(t *testing.T, err error) {
			rej := asRejection(t, err, workflow.StepPackage)
			if !strings.Contains(rej.Reason, "p1") {
				t.Fatalf("reason %q", rej.Reason)
			}
		}},
		{"invalid", 400, problem(400, "validation", "weight must be positive"), func(t *testing.T, err error) {
			rej := asRejection(t, err, workflow.StepPackage)
			if !strings.Contains(rej.Reason, "weight must be positive") {
				t.Fatalf("reason %q", rej.Reason)
			}
		}},
		{"unprocessable", 422, problem(422, "validation", "too heavy"), func(t *testing.T, err error) {
			asRejection(t, err, workflow.StepPackage)
		}},
		{"unavailable", 503, ``, func(t *testing.T, err error) {
			if !isTransient(err) {
				t.Fatalf("err %v, want transient", err)
			}
		}},
		{"unsupported media type", 415, ``, func(t *testing.T, err error) {
			asPermanent(t, err, workflow.StepPackage)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv := newInvoker().on(http.MethodPut, "package", path, tt.status, tt.body)
			tt.check(t, workflow.NewClient(inv, ids).Do(t.Context(), workflow.StepPackage, request(), &workflow.Progress{}))
			calls := inv.Calls()
			if len(calls) != 1 || calls[0].String() != "PUT package"+path {
				t.Fatalf("calls %v", inv.callStrings())
			}
			want := map[string]any{"size": "Medium", "weight": 2.5, "tag": "books", "deliveryId": "d1"}
			if !reflect.DeepEqual(calls[0].Body, want) {
				t.Fatalf("package body %v, want %v", calls[0].Body, want)
			}
		})
	}
}

func TestDroneStep(t *testing.T) {
	const path = "/api/dronedeliveries?id=d1"
	tests := []struct {
		name   string
		status int
		body   string
		check  func(t *testing.T, err error)
	}{
		{"no drone available", 409, problem(409, "no-drone-available", "all busy"), func(t *testing.T, err error) {
			if !errors.Is(err, workflow.ErrNoDroneAvailable) {
				t.Fatalf("err %v, want ErrNoDroneAvailable", err)
			}
		}},
		{"assignment released", 409, problem(409, "assignment-released", "released"), func(t *testing.T, err error) {
			if !errors.Is(err, workflow.ErrRaced) {
				t.Fatalf("err %v, want ErrRaced", err)
			}
		}},
		{"no capable drone", 422, problem(422, "no-capable-drone", "no drone in the fleet carries 40 kg"), func(t *testing.T, err error) {
			rej := asRejection(t, err, workflow.StepDrone)
			if !strings.Contains(rej.Reason, "40 kg") {
				t.Fatalf("reason %q", rej.Reason)
			}
		}},
		{"conflict without code", 409, `{"title":"Conflict"}`, func(t *testing.T, err error) {
			asPermanent(t, err, workflow.StepDrone)
		}},
		{"validation", 400, problem(400, "validation", "pickupTime"), func(t *testing.T, err error) {
			asPermanent(t, err, workflow.StepDrone)
		}},
		{"unavailable", 503, problem(503, "unavailable", "fleet not seeded"), func(t *testing.T, err error) {
			if !isTransient(err) {
				t.Fatalf("err %v, want transient", err)
			}
		}},
		{"no drone id", 200, `{"deliveryId":"d1"}`, func(t *testing.T, err error) {
			asPermanent(t, err, workflow.StepDrone)
		}},
		{"undecodable", 200, `[]`, func(t *testing.T, err error) {
			asPermanent(t, err, workflow.StepDrone)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv := newInvoker().on(http.MethodPut, "drone", path, tt.status, tt.body)
			var p workflow.Progress
			tt.check(t, workflow.NewClient(inv, ids).Do(t.Context(), workflow.StepDrone, request(), &p))
			if p.Drone != nil {
				t.Fatalf("a failed drone step recorded %+v", p.Drone)
			}
		})
	}
}

func TestDeliveryStepErrors(t *testing.T) {
	const path = "/api/deliveries?id=d1"
	p := workflow.Progress{Drone: &workflow.DroneAssignment{DroneID: "drone-1"}}
	inv := newInvoker().on(http.MethodPut, "delivery", path, 503, ``)
	if err := workflow.NewClient(inv, ids).Do(t.Context(), workflow.StepDelivery, request(), &p); !isTransient(err) {
		t.Fatalf("503: err %v, want transient", err)
	}
	inv = newInvoker().on(http.MethodPut, "delivery", path, 409, problem(409, "delivery-conflict", "use PATCH"))
	err := workflow.NewClient(inv, ids).Do(t.Context(), workflow.StepDelivery, request(), &p)
	asPermanent(t, err, workflow.StepDelivery)
	if !strings.Contains(err.Error(), "use PATCH") {
		t.Fatalf("error %q lacks the detail", err)
	}
}

func TestUnknownStepIsPermanent(t *testing.T) {
	inv := newInvoker()
	for _, s := range []workflow.Step{workflow.StepDone, workflow.Step(-1), workflow.Step(42)} {
		err := workflow.NewClient(inv, ids).Do(t.Context(), s, request(), &workflow.Progress{})
		asPermanent(t, err, s)
	}
	if n := len(inv.Calls()); n != 0 {
		t.Fatalf("unknown steps made %d calls", n)
	}
}

func TestUndoOrder(t *testing.T) {
	all := []string{
		"DELETE delivery/api/deliveries?id=d1",
		"DELETE drone/api/dronedeliveries?id=d1",
		"DELETE package/api/packages?deliveryId=d1&id=p1",
		"DELETE thirdparty/api/thirdpartydeliveries?deliveryId=d1",
	}
	tests := []struct {
		upTo workflow.Step
		want []string
	}{
		{workflow.StepDone, all},
		{workflow.StepDelivery, all},
		{workflow.StepDrone, all[1:]},
		{workflow.StepPackage, all[2:]},
		{workflow.StepThirdParty, all[3:]},
		{workflow.StepAccount, nil},
	}
	for _, tt := range tests {
		t.Run(tt.upTo.String(), func(t *testing.T) {
			inv := newInvoker()
			if err := workflow.NewClient(inv, ids).Undo(t.Context(), tt.upTo, request(), workflow.Outcome{Reason: "canceled"}); err != nil {
				t.Fatal(err)
			}
			if got := inv.callStrings(); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("calls %v, want %v", got, tt.want)
			}
			for _, c := range inv.Calls() {
				if c.HasBody {
					t.Fatalf("%s sent a body %v", c, c.Body)
				}
			}
		})
	}
}

func TestUndoEscapesPackage(t *testing.T) {
	inv := newInvoker()
	req := request()
	req.PackageInfo.PackageID = "p/1 x"
	req.DeliveryID = "d&1"
	if err := workflow.NewClient(inv, ids).Undo(t.Context(), workflow.StepPackage, req, workflow.Outcome{}); err != nil {
		t.Fatal(err)
	}
	if got := inv.Calls()[0].Path; got != "/api/packages?deliveryId=d%261&id=p%2F1+x" {
		t.Fatalf("package undo path %q", got)
	}
}

func TestUndoFailedOutcome(t *testing.T) {
	inv := newInvoker()
	err := workflow.NewClient(inv, ids).Undo(t.Context(), workflow.StepDelivery, request(),
		workflow.Outcome{Failed: true, Reason: "drone kept failing"})
	if err != nil {
		t.Fatal(err)
	}
	calls := inv.Calls()
	if len(calls) != 4 || calls[0].String() != "PUT delivery/api/failed-deliveries?id=d1" {
		t.Fatalf("calls %v", inv.callStrings())
	}
	if want := map[string]any{"reason": "drone kept failing"}; !reflect.DeepEqual(calls[0].Body, want) {
		t.Fatalf("failure body %v, want %v", calls[0].Body, want)
	}
	for _, c := range calls[1:] {
		if c.Method != http.MethodDelete {
			t.Fatalf("after the failure mark: %v", inv.callStrings())
		}
	}
}

func TestUndoToleratesGoneAndEnded(t *testing.T) {
	for _, status := range []int{200, 204, 404, 409} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			inv := newInvoker().on(http.MethodDelete, "delivery", "/api/deliveries?id=d1", status, problem(status, "delivery-final", "x"))
			for _, other := range []string{"/api/dronedeliveries?id=d1"} {
				inv.on(http.MethodDelete, "drone", other, 404, problem(404, "not-found", "x"))
			}
			inv.on(http.MethodDelete, "package", "/api/packages?deliveryId=d1&id=p1", 404, ``)
			inv.on(http.MethodDelete, "thirdparty", "/api/thirdpartydeliveries?deliveryId=d1", 204, ``)
			if err := workflow.NewClient(inv, ids).Undo(t.Context(), workflow.StepDelivery, request(), workflow.Outcome{}); err != nil {
				t.Fatalf("err %v", err)
			}
			if n := len(inv.Calls()); n != 4 {
				t.Fatalf("calls %v, want all four undos", inv.callStrings())
			}
		})
	}
	t.Run("failure mark on an ended delivery", func(t *testing.T) {
		inv := newInvoker().on(http.MethodPut, "delivery", "/api/failed-deliveries?id=d1", 409, problem(409, "delivery-final", "canceled"))
		if err := workflow.NewClient(inv, ids).Undo(t.Context(), workflow.StepDelivery, request(), workflow.Outcome{Failed: true}); err != nil {
			t.Fatal(err)
		}
	})
}

// A cancel of a delivery that was completed stops at the delivery: the
// drone, package and carrier booking stay as they are.
func TestUndoOfCompletedDeliveryIsTooLate(t *testing.T) {
	completed := `{"id":"d1","stage":"Completed"}`
	inv := newInvoker().on(http.MethodDelete, "delivery", "/api/deliveries?id=d1", 200, completed)
	err := workflow.NewClient(inv, ids).Undo(t.Context(), workflow.StepDelivery, request(), workflow.Outcome{})
	var late *workflow.TooLate
	if !errors.As(err, &late) || late.Stage != "Completed" {
		t.Fatalf("err %v, want TooLate", err)
	}
	if got := inv.callStrings(); len(got) != 1 {
		t.Fatalf("calls %v, want only the delivery's", got)
	}

	// A failure's compensation never meets a completed delivery in practice;
	// if it did, there would be nothing of the delivery to undo.
	inv = newInvoker().on(http.MethodPut, "delivery", "/api/failed-deliveries?id=d1", 200, completed)
	inv.on(http.MethodDelete, "drone", "/api/dronedeliveries?id=d1", 204, ``)
	inv.on(http.MethodDelete, "package", "/api/packages?deliveryId=d1&id=p1", 204, ``)
	inv.on(http.MethodDelete, "thirdparty", "/api/thirdpartydeliveries?deliveryId=d1", 204, ``)
	if err := workflow.NewClient(inv, ids).Undo(t.Context(), workflow.StepDelivery, request(), workflow.Outcome{Failed: true}); err != nil {
		t.Fatal(err)
	}
}

func TestUndoStopsOnError(t *testing.T) {
	t.Run("delivery unavailable", func(t *testing.T) {
		inv := newInvoker().on(http.MethodDelete, "delivery", "/api/deliveries?id=d1", 503, ``)
		err := workflow.NewClient(inv, ids).Undo(t.Context(), workflow.StepDelivery, request(), workflow.Outcome{})
		if !isTransient(err) {
			t.Fatalf("err %v, want transient", err)
		}
		if n := len(inv.Calls()); n != 1 {
			t.Fatalf("undo went on after a failure: %v", inv.callStrings())
		}
	})
	t.Run("drone unavailable", func(t *testing.T) {
		inv := newInvoker().on(http.MethodDelete, "drone", "/api/dronedeliveries?id=d1", 500, ``)
		err := workflow.NewClient(inv, ids).Undo(t.Context(), workflow.StepDelivery, request(), workflow.Outcome{})
		if !isTransient(err) {
			t.Fatalf("err %v, want transient", err)
		}
		if got := inv.callStrings(); len(got) != 2 {
			t.Fatalf("calls %v", got)
		}
	})
	t.Run("package refuses", func(t *testing.T) {
		inv := newInvoker().on(http.MethodDelete, "package", "/api/packages?deliveryId=d1&id=p1", 400, problem(400, "validation", "x"))
		err := workflow.NewClient(inv, ids).Undo(t.Context(), workflow.StepPackage, request(), workflow.Outcome{})
		asPermanent(t, err, workflow.StepPackage)
	})
	t.Run("transport error", func(t *testing.T) {
		boom := errors.New("sidecar gone")
		inv := newInvoker().fail(http.MethodDelete, "thirdparty", "/api/thirdpartydeliveries?deliveryId=d1", boom)
		err := workflow.NewClient(inv, ids).Undo(t.Context(), workflow.StepThirdParty, request(), workflow.Outcome{})
		if !errors.Is(err, boom) || !isTransient(err) {
			t.Fatalf("err %v", err)
		}
	})
}

func TestReschedule(t *testing.T) {
	newTime := pickupTime.Add(3 * time.Hour)
	eta := newTime.Add(-2 * time.Minute)
	assignment := fmt.Sprintf(`{"droneId":"drone-3","pickupEta":%q,"deliveryEta":%q}`,
		eta.Format(time.RFC3339), eta.Add(15*time.Minute).Format(time.RFC3339))

	t.Run("with a drone", func(t *testing.T) {
		inv := newInvoker().on(http.MethodPut, "drone", "/api/dronedeliveries?id=d1", 200, assignment)
		req := request()
		req.PickupTime = newTime
		p := workflow.Progress{Next: workflow.StepDone, Drone: &workflow.DroneAssignment{DroneID: "drone-1"}}
		if err := workflow.NewClient(inv, ids).Reschedule(t.Context(), req, &p); err != nil {
			t.Fatal(err)
		}
		want := []string{"PUT drone/api/dronedeliveries?id=d1", "PATCH delivery/api/deliveries?id=d1"}
		if got := inv.callStrings(); !reflect.DeepEqual(got, want) {
			t.Fatalf("calls %v, want %v", got, want)
		}
		if p.Drone == nil || p.Drone.DroneID != "drone-3" || !p.Drone.PickupETA.Equal(eta) {
			t.Fatalf("drone %+v", p.Drone)
		}
		calls := inv.Calls()
		if calls[0].Body["pickupTime"] != newTime.Format(time.RFC3339) {
			t.Fatalf("drone body %v", calls[0].Body)
		}
		patch := calls[1].Body
		if patch["pickupTime"] != newTime.Format(time.RFC3339) || patch["droneId"] != "drone-3" ||
			patch["pickupEta"] != eta.Format(time.RFC3339) || patch["deadline"] == nil || patch["pickup"] == nil {
			t.Fatalf("patch %v", patch)
		}
	})

	t.Run("carrier delivery", func(t *testing.T) {
		inv := newInvoker()
		p := workflow.Progress{Next: workflow.StepDone, ThirdParty: &workflow.ThirdParty{Required: true, Carrier: "C"}}
		if err := workflow.NewClient(inv, ids).Reschedule(t.Context(), request(), &p); err != nil {
			t.Fatal(err)
		}
		if got := inv.callStrings(); !reflect.DeepEqual(got, []string{"PATCH delivery/api/deliveries?id=d1"}) {
			t.Fatalf("calls %v", got)
		}
		if _, ok := inv.Calls()[0].Body["droneId"]; ok {
			t.Fatal("patch of a carrier delivery names a drone")
		}
	})

	t.Run("delivery ended", func(t *testing.T) {
		inv := newInvoker().on(http.MethodPatch, "delivery", "/api/deliveries?id=d1", 409, problem(409, "delivery-final", "delivered"))
		err := workflow.NewClient(inv, ids).Reschedule(t.Context(), request(), &workflow.Progress{})
		asRejection(t, err, workflow.StepDelivery)
	})

	t.Run("no drone for the new time", func(t *testing.T) {
		inv := newInvoker().on(http.MethodPut, "drone", "/api/dronedeliveries?id=d1", 409, problem(409, "no-drone-available", "busy"))
		p := workflow.Progress{Drone: &workflow.DroneAssignment{DroneID: "drone-1"}}
		err := workflow.NewClient(inv, ids).Reschedule(t.Context(), request(), &p)
		if !errors.Is(err, workflow.ErrNoDroneAvailable) {
			t.Fatalf("err %v", err)
		}
		if len(inv.Calls()) != 1 || p.Drone.DroneID != "drone-1" {
			t.Fatalf("calls %v drone %+v", inv.callStrings(), p.Drone)
		}
	})

	t.Run("delivery unavailable", func(t *testing.T) {
		inv := newInvoker().on(http.MethodPatch, "delivery", "/api/deliveries?id=d1", 503, ``)
		if err := workflow.NewClient(inv, ids).Reschedule(t.Context(), request(), &workflow.Progress{}); !isTransient(err) {
			t.Fatalf("err %v, want transient", err)
		}
	})
}
