package workflow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/fabrikam/dronedelivery/internal/geo"
	"github.com/fabrikam/dronedelivery/internal/messages"
	"github.com/fabrikam/dronedelivery/internal/sidecar"
)

// AppIDs names the services the steps call.
type AppIDs struct {
	Account    string `envconfig:"ACCOUNT_APP_ID" default:"account"`
	ThirdParty string `envconfig:"THIRDPARTY_APP_ID" default:"thirdparty"`
	Package    string `envconfig:"PACKAGE_APP_ID" default:"package"`
	Drone      string `envconfig:"DRONE_APP_ID" default:"drone"`
	Delivery   string `envconfig:"DELIVERY_APP_ID" default:"delivery"`
}

// Invoker calls a method of another app; sidecar.Invoker is one.
type Invoker interface {
	Invoke(ctx context.Context, app, method, path string, body any) (*sidecar.Response, error)
}

// Client runs steps and undo operations by invoking the owning services.
type Client struct {
	inv Invoker
	ids AppIDs
}

// NewClient returns a client calling the apps in ids through inv.
func NewClient(inv Invoker, ids AppIDs) *Client { return &Client{inv: inv, ids: ids} }

// Do runs step for req and records its result in p. It returns a *Rejection,
// a *Permanent, ErrNoDroneAvailable, ErrRaced, or a transient error.
func (c *Client) Do(ctx context.Context, step Step, req messages.DeliveryRequested, p *Progress) error {
	switch step {
	case StepAccount:
		return c.checkAccount(ctx, req)
	case StepThirdParty:
		return c.thirdParty(ctx, req, p)
	case StepPackage:
		return c.createPackage(ctx, req)
	case StepDrone:
		if p.ThirdParty != nil && p.ThirdParty.Required {
			return nil // the carrier flies it
		}
		return c.assignDrone(ctx, req, p)
	case StepDelivery:
		return c.createDelivery(ctx, req, p)
	default:
		return &Permanent{Step: step, Err: errors.New("no such step")}
	}
}

func (c *Client) checkAccount(ctx context.Context, req messages.DeliveryRequested) error {
	resp, err := c.inv.Invoke(ctx, c.ids.Account, http.MethodGet, byID("/api/accounts", "id", req.OwnerID), nil)
	if err != nil {
		return fmt.Errorf("check account: %w", err)
	}
	if !resp.OK() {
		return classify(StepAccount, resp)
	}
	// A query on the collection: an unknown owner is an empty result.
	var found struct {
		Accounts []struct {
			Status string `json:"status"`
		} `json:"accounts"`
	}
	if err := resp.Decode(&found); err != nil {
		return &Permanent{Step: StepAccount, Err: err}
	}
	switch {
	case len(found.Accounts) == 0:
		return &Rejection{Step: StepAccount, Reason: fmt.Sprintf("owner %q has no account", req.OwnerID)}
	case found.Accounts[0].Status != "active":
		return &Rejection{Step: StepAccount, Reason: fmt.Sprintf("owner %q account is %s", req.OwnerID, found.Accounts[0].Status)}
	}
	return nil
}

func (c *Client) thirdParty(ctx context.Context, req messages.DeliveryRequested, p *Progress) error {
	body := map[string]any{
		"pickup": req.Pickup, "dropoff": req.Dropoff,
		"packageWeight": req.PackageInfo.Weight, "packageSize": req.PackageInfo.Size,
	}
	resp, err := c.inv.Invoke(ctx, c.ids.ThirdParty, http.MethodPut, byID("/api/thirdpartydeliveries", "deliveryId", req.DeliveryID), body)
	if err != nil {
		return fmt.Errorf("third party: %w", err)
	}
	if !resp.OK() {
		if problemCode(resp) == "booking-canceled" {
			return ErrRaced
		}
		return classify(StepThirdParty, resp)
	}
	var tp ThirdParty
	if err := resp.Decode(&tp); err != nil {
		return &Permanent{Step: StepThirdParty, Err: err}
	}
	p.ThirdParty = &tp
	return nil
}

func (c *Client) createPackage(ctx context.Context, req messages.DeliveryRequested) error {
	pi := req.PackageInfo
	body := map[string]any{"size": pi.Size, "weight": pi.Weight, "tag": pi.Tag, "deliveryId": req.DeliveryID}
	resp, err := c.inv.Invoke(ctx, c.ids.Package, http.MethodPut, byID("/api/packages", "id", pi.PackageID), body)
	if err != nil {
		return fmt.Errorf("create package: %w", err)
	}
	switch {
	case resp.OK():
		return nil
	case resp.Status == http.StatusConflict:
		return &Rejection{Step: StepPackage, Reason: fmt.Sprintf("package %q already belongs to another delivery or has other details", pi.PackageID)}
	case resp.Status == http.StatusBadRequest || resp.Status == http.StatusUnprocessableEntity:
		return &Rejection{Step: StepPackage, Reason: "package refused: " + resp.Detail()}
	}
	return classify(StepPackage, resp)
}

// DroneRequest is what the drone service needs to assign a drone.
type DroneRequest struct {
	Pickup        geo.Location `json:"pickup"`
	Dropoff       geo.Location `json:"dropoff"`
	PickupTime    time.Time    `json:"pickupTime"`
	PackageWeight float64      `json:"packageWeight"`
	PackageSize   string       `json:"packageSize"`
	Expedited     bool         `json:"expedited"`
	// ConfirmationRequired is the proof of delivery the drone records at
	// drop-off.
	ConfirmationRequired string `json:"confirmationRequired,omitempty"`
}

func (c *Client) assignDrone(ctx context.Context, req messages.DeliveryRequested, p *Progress) error {
	body := DroneRequest{
		Pickup: req.Pickup, Dropoff: req.Dropoff, PickupTime: req.PickupTime,
		PackageWeight: req.PackageInfo.Weight, PackageSize: req.PackageInfo.Size, Expedited: req.Expedited,
		ConfirmationRequired: req.ConfirmationRequired,
	}
	a, err := c.putDrone(ctx, req.DeliveryID, body)
	if err != nil {
		return err
	}
	p.Drone = a
	return nil
}

func (c *Client) putDrone(ctx context.Context, deliveryID string, body DroneRequest) (*DroneAssignment, error) {
	resp, err := c.inv.Invoke(ctx, c.ids.Drone, http.MethodPut, byID("/api/dronedeliveries", "id", deliveryID), body)
	if err != nil {
		return nil, fmt.Errorf("assign drone: %w", err)
	}
	if !resp.OK() {
		switch problemCode(resp) {
		case "no-drone-available":
			return nil, ErrNoDroneAvailable
		case "assignment-released":
			return nil, ErrRaced
		case "no-capable-drone":
			return nil, &Rejection{Step: StepDrone, Reason: "no drone can carry this package: " + resp.Detail()}
		}
		return nil, classify(StepDrone, resp)
	}
	var a DroneAssignment
	if err := resp.Decode(&a); err != nil {
		return nil, &Permanent{Step: StepDrone, Err: err}
	}
	if a.DroneID == "" {
		return nil, &Permanent{Step: StepDrone, Err: errors.New("drone service answered without a drone id")}
	}
	return &a, nil
}

func (c *Client) createDelivery(ctx context.Context, req messages.DeliveryRequested, p *Progress) error {
	body := map[string]any{
		"ownerId": req.OwnerID, "pickup": req.Pickup, "dropoff": req.Dropoff, "pickupTime": req.PickupTime,
		"expedited": req.Expedited, "confirmationRequired": req.ConfirmationRequired,
		"packageId": req.PackageInfo.PackageID,
	}
	if req.Deadline != nil {
		body["deadline"] = req.Deadline
	}
	if p.ThirdParty != nil && p.ThirdParty.Required {
		body["carrier"] = p.ThirdParty.Carrier
	} else if p.Drone != nil {
		body["droneId"] = p.Drone.DroneID
		body["pickupEta"] = p.Drone.PickupETA
		body["deliveryEta"] = p.Drone.DeliveryETA
	}
	resp, err := c.inv.Invoke(ctx, c.ids.Delivery, http.MethodPut, byID("/api/deliveries", "id", req.DeliveryID), body)
	if err != nil {
		return fmt.Errorf("create delivery: %w", err)
	}
	if resp.OK() {
		return nil
	}
	return classify(StepDelivery, resp)
}

// Reschedule moves an already scheduled delivery: the drone assignment is
// renewed with the new places and times (the drone service keeps the same
// drone when it can) and the delivery record is updated.
func (c *Client) Reschedule(ctx context.Context, req messages.DeliveryRequested, p *Progress) error {
	patch := map[string]any{"pickup": req.Pickup, "dropoff": req.Dropoff, "pickupTime": req.PickupTime}
	if req.Deadline != nil {
		patch["deadline"] = req.Deadline
	}
	if p.Drone != nil {
		a, err := c.putDrone(ctx, req.DeliveryID, DroneRequest{
			Pickup: req.Pickup, Dropoff: req.Dropoff, PickupTime: req.PickupTime,
			PackageWeight: req.PackageInfo.Weight, PackageSize: req.PackageInfo.Size, Expedited: req.Expedited,
			ConfirmationRequired: req.ConfirmationRequired,
		})
		if err != nil {
			return err
		}
		p.Drone = a
		patch["droneId"], patch["pickupEta"], patch["deliveryEta"] = a.DroneID, a.PickupETA, a.DeliveryETA
	}
	resp, err := c.inv.Invoke(ctx, c.ids.Delivery, http.MethodPatch, byID("/api/deliveries", "id", req.DeliveryID), patch)
	if err != nil {
		return fmt.Errorf("reschedule delivery: %w", err)
	}
	if resp.OK() {
		return nil
	}
	if resp.Status == http.StatusConflict {
		return &Rejection{Step: StepDelivery, Reason: "the delivery can no longer be rescheduled: " + resp.Detail()}
	}
	return classify(StepDelivery, resp)
}

// Outcome is how an undone delivery ends: canceled, or failed with a reason.
type Outcome struct {
	Failed bool
	Reason string
}

// Undo reverses every step before upTo, and upTo itself (it may have
// completed without being recorded), latest first. Every undo is idempotent
// and keyed by delivery id, so undoing a step that never ran is harmless.
func (c *Client) Undo(ctx context.Context, upTo Step, req messages.DeliveryRequested, outcome Outcome) error {
	id := req.DeliveryID
	if upTo >= StepDelivery {
		if err := c.endDelivery(ctx, id, outcome); err != nil {
			return err
		}
	}
	if upTo >= StepDrone {
		if err := c.expect(ctx, StepDrone, c.ids.Drone, http.MethodDelete, byID("/api/dronedeliveries", "id", id), nil); err != nil {
			return err
		}
	}
	if upTo >= StepPackage {
		path := "/api/packages?" + url.Values{"id": {req.PackageInfo.PackageID}, "deliveryId": {id}}.Encode()
		if err := c.expect(ctx, StepPackage, c.ids.Package, http.MethodDelete, path, nil); err != nil {
			return err
		}
	}
	if upTo >= StepThirdParty {
		if err := c.expect(ctx, StepThirdParty, c.ids.ThirdParty, http.MethodDelete, byID("/api/thirdpartydeliveries", "deliveryId", id), nil); err != nil {
			return err
		}
	}
	return nil
}

func (c *Client) endDelivery(ctx context.Context, id string, o Outcome) error {
	method, path, body := http.MethodDelete, byID("/api/deliveries", "id", id), any(nil)
	if o.Failed {
		method, path, body = http.MethodPut, byID("/api/failed-deliveries", "id", id), map[string]string{"reason": o.Reason}
	}
	resp, err := c.inv.Invoke(ctx, c.ids.Delivery, method, path, body)
	if err != nil {
		return fmt.Errorf("undo delivery: %w", err)
	}
	// A cancel of a delivery that was completed stops here, before the
	// drone, package and carrier booking are undone. The delivery answers
	// with its record when it had already ended (the query form).
	if resp.Status == http.StatusOK && !o.Failed {
		var d struct {
			Stage string `json:"stage"`
		}
		if err := resp.Decode(&d); err == nil && d.Stage == messages.StageCompleted {
			return &TooLate{Stage: d.Stage}
		}
	}
	// 404: never created. 409: already ended another way; nothing to undo.
	if resp.OK() || resp.Status == http.StatusNotFound || resp.Status == http.StatusConflict {
		return nil
	}
	return classify(StepDelivery, resp)
}

func (c *Client) expect(ctx context.Context, step Step, app, method, path string, body any) error {
	resp, err := c.inv.Invoke(ctx, app, method, path, body)
	if err != nil {
		return fmt.Errorf("undo %s: %w", step, err)
	}
	if resp.OK() || resp.Status == http.StatusNotFound {
		return nil
	}
	return classify(step, resp)
}

// classify turns an unexpected answer into an error: 5xx, 408 and 429 are
// transient, any other status is a contract break that retrying won't mend.
func classify(step Step, resp *sidecar.Response) error {
	err := fmt.Errorf("%s answered %s", step, resp.Detail())
	switch {
	case resp.Status >= 500, resp.Status == http.StatusRequestTimeout, resp.Status == http.StatusTooManyRequests:
		return err
	default:
		return &Permanent{Step: step, Err: err}
	}
}

func problemCode(resp *sidecar.Response) string {
	var p struct {
		Code string `json:"code"`
	}
	_ = json.Unmarshal(resp.Body, &p)
	return p.Code
}

// byID addresses one resource with its id in the query rather than the path.
// Dapr keys circuit breakers by app and method path; with ids in paths each
// resource would get a breaker of its own, and a failing service would never
// be cut off as a whole. The services accept both forms.
func byID(collection, key, id string) string {
	return collection + "?" + url.Values{key: {id}}.Encode()
}
