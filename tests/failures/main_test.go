// Package failures injects faults into a running stack and proves the
// failure handling: retries absorb transient faults, failed transactions are
// compensated, breakers cut off a failing service, slow services time out,
// poison messages are parked, and stuck transactions are swept up.
package failures

import (
	"os"
	"testing"

	"github.com/fabrikam/dronedelivery/tests/harness"
)

var env *harness.Env

func TestMain(m *testing.M) {
	os.Exit(harness.Main(m, harness.Options{
		Env: map[string]map[string]string{
			// Fault injection exists only where configuration turns it on.
			"*": {"FAULT_INJECTION": "on"},
			// Fewer attempts and a short stuck age keep the tests quick; the
			// mechanisms are the ones production runs.
			"scheduler":  {"MAX_ATTEMPTS": "3", "DRONE_WAIT": "3s"},
			"supervisor": {"STUCK_AFTER": "4s"},
		},
	}, func(e *harness.Env) { env = e }))
}
