package telemetry

import (
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"
)

// DialOption instruments the gRPC connection to the sidecar (sidecar.Dial
// takes it): each publish and state call gets a client span and carries its
// traceparent in the call's metadata. daprd continues that trace in its own
// span and, for a publish, writes its context into the CloudEvent's
// traceparent, which is how the consumer's work joins the publisher's trace.
func (t *Telemetry) DialOption() grpc.DialOption {
	return grpc.WithStatsHandler(otelgrpc.NewClientHandler(
		otelgrpc.WithTracerProvider(t.tp),
		otelgrpc.WithMeterProvider(t.mp),
		otelgrpc.WithPropagators(t.prop),
	))
}
