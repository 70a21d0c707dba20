// Package scheduling tests the whole scheduling transaction end to end
// against the default fleet of twelve drones: every outcome, cancel and
// reschedule, idempotency, and a demand larger than the fleet.
package scheduling

import (
	"os"
	"testing"

	"github.com/fabrikam/dronedelivery/tests/harness"
)

var env *harness.Env

func TestMain(m *testing.M) {
	os.Exit(harness.Main(m, harness.Options{
		// A short wait for a free drone keeps the over-demand test quick;
		// the behaviour is the same as with the default minute.
		Env: map[string]map[string]string{"scheduler": {"DRONE_WAIT": "3s"}},
	}, func(e *harness.Env) { env = e }))
}
