// Package observability tests tracing, log correlation and metrics end to
// end: the whole stack runs with real sidecars and exports its spans, apps
// and sidecars alike, to an OTLP/HTTP receiver inside the test process.
//
// The tests that need the apps to export spans skip, saying so, while the
// apps do not yet call telemetry.Setup (see internal/telemetry/README.md);
// the sidecar-only ones run regardless.
package observability

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/fabrikam/dronedelivery/tests/harness"
	"github.com/fabrikam/dronedelivery/tools/traceview"
)

var (
	env *harness.Env
	// received holds every span the apps and sidecars exported.
	received *traceview.Store
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	received = traceview.NewStore(100000)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "otlp receiver:", err)
		return 1
	}
	srv := &http.Server{Handler: traceview.Handler(received), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	addr := ln.Addr().String()

	// The sidecars inherit this process's environment, and daprd expands
	// FABRIKAM_DAPR_OTLP_ENDPOINT in components/configuration.yaml. Both the
	// Go SDK and daprd read OTEL_BSP_SCHEDULE_DELAY: export every 200 ms
	// instead of every 5 s, so the assertions wait less.
	for k, v := range map[string]string{
		"FABRIKAM_DAPR_OTLP_ENDPOINT": addr,
		"OTEL_BSP_SCHEDULE_DELAY":     "200",
	} {
		if err := os.Setenv(k, v); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return harness.Main(m, harness.Options{
		Env: map[string]map[string]string{"*": {
			"OTEL_EXPORTER_OTLP_ENDPOINT": "http://" + addr,
			"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
			// Whatever the developer's shell says, these tests want every
			// trace, exported.
			"OTEL_TRACES_SAMPLER":  "parentbased_always_on",
			"OTEL_TRACES_EXPORTER": "otlp",
		}},
	}, func(e *harness.Env) { env = e })
}
