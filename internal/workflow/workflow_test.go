package workflow_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/fabrikam/dronedelivery/internal/workflow"
)

func TestStepNamesRoundTrip(t *testing.T) {
	names := map[workflow.Step]string{
		workflow.StepAccount: "account", workflow.StepThirdParty: "thirdparty", workflow.StepPackage: "package",
		workflow.StepDrone: "drone", workflow.StepDelivery: "delivery", workflow.StepDone: "done",
	}
	for s, name := range names {
		if s.String() != name {
			t.Fatalf("%d.String() = %q, want %q", int(s), s.String(), name)
		}
		b, err := s.MarshalText()
		if err != nil || string(b) != name {
			t.Fatalf("MarshalText(%d) = %q, %v", int(s), b, err)
		}
		var back workflow.Step
		if err := back.UnmarshalText(b); err != nil || back != s {
			t.Fatalf("UnmarshalText(%q) = %d, %v", b, int(back), err)
		}
	}
	// The steps run in declaration order.
	if !(workflow.StepAccount < workflow.StepThirdParty && workflow.StepThirdParty < workflow.StepPackage &&
		workflow.StepPackage < workflow.StepDrone && workflow.StepDrone < workflow.StepDelivery && workflow.StepDelivery < workflow.StepDone) {
		t.Fatal("steps are out of order")
	}
}

func TestStepUnknown(t *testing.T) {
	for _, s := range []workflow.Step{-1, 6, 100} {
		if got := s.String(); !strings.HasPrefix(got, "step(") {
			t.Fatalf("String of %d = %q", int(s), got)
		}
	}
	for _, name := range []string{"", "Account", "drones", "step(7)"} {
		s := workflow.StepDrone
		if err := s.UnmarshalText([]byte(name)); err == nil {
			t.Fatalf("UnmarshalText(%q) accepted it", name)
		}
		if s != workflow.StepDrone {
			t.Fatalf("a failed UnmarshalText changed the step to %s", s)
		}
	}
}

func TestProgressJSON(t *testing.T) {
	eta := time.Date(2030, 5, 14, 10, 0, 0, 0, time.UTC)
	p := workflow.Progress{
		Next:       workflow.StepDelivery,
		ThirdParty: &workflow.ThirdParty{Required: false, Reason: "in range"},
		Drone:      &workflow.DroneAssignment{DroneID: "drone-1", PickupETA: eta, DeliveryETA: eta.Add(time.Hour)},
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"next":"delivery"`) {
		t.Fatalf("step not written by name: %s", b)
	}
	var back workflow.Progress
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Next != p.Next || *back.ThirdParty != *p.ThirdParty || back.Drone.DroneID != "drone-1" ||
		!back.Drone.PickupETA.Equal(eta) || !back.Drone.DeliveryETA.Equal(eta.Add(time.Hour)) {
		t.Fatalf("round trip %+v", back)
	}
	if err := json.Unmarshal([]byte(`{"next":"teleport"}`), &back); err == nil {
		t.Fatal("an unknown step name was accepted")
	}
	// As a map key too (encoding.TextMarshaler).
	m := map[workflow.Step]int{workflow.StepPackage: 1}
	mb, err := json.Marshal(m)
	if err != nil || string(mb) != `{"package":1}` {
		t.Fatalf("map key: %s %v", mb, err)
	}
}

func TestErrorKinds(t *testing.T) {
	rej := &workflow.Rejection{Step: workflow.StepPackage, Reason: "taken"}
	if got := rej.Error(); !strings.Contains(got, "package") || !strings.Contains(got, "taken") {
		t.Fatalf("Rejection.Error() = %q", got)
	}
	cause := errors.New("400 bad")
	perm := &workflow.Permanent{Step: workflow.StepDrone, Err: cause}
	if !errors.Is(perm, cause) {
		t.Fatal("Permanent does not unwrap to its cause")
	}
	if got := perm.Error(); !strings.Contains(got, "drone") || !strings.Contains(got, "400 bad") {
		t.Fatalf("Permanent.Error() = %q", got)
	}
	if errors.Is(workflow.ErrRaced, workflow.ErrNoDroneAvailable) {
		t.Fatal("sentinels alias each other")
	}
}
