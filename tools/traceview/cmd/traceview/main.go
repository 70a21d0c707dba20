// Command traceview receives the spans of the local stack over OTLP/HTTP and
// shows each trace as an indented timeline, in a browser page and, with
// -follow, on the terminal:
//
//	go run ./tools/traceview/cmd/traceview            # listens on 127.0.0.1:4318
//	export OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 FABRIKAM_DAPR_OTLP_ENDPOINT=127.0.0.1:4318
//	make run                                          # in another terminal
//
// then open http://127.0.0.1:4318/ and search for a delivery id. Nothing is
// stored on disk: the last -max-traces traces are kept in memory.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/fabrikam/dronedelivery/internal/logging"
	"github.com/fabrikam/dronedelivery/internal/web"
	"github.com/fabrikam/dronedelivery/tools/traceview"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "traceview:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("traceview", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:4318", "where to receive OTLP/HTTP and serve the pages (4318 is the OTLP/HTTP default)")
	maxTraces := fs.Int("max-traces", 2000, "how many traces to keep in memory")
	follow := fs.Bool("follow", false, "print each trace on stdout once no span has arrived for it for -quiet")
	quiet := fs.Duration("quiet", 3*time.Second, "with -follow, how long a trace must be quiet before it is printed")
	minSpans := fs.Int("min-spans", 3, "with -follow, print only traces with at least this many spans (skips stray single calls)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	st := traceview.NewStore(*maxTraces)
	host := ln.Addr().String()
	fmt.Fprintf(stdout, "traceview: receiving OTLP/HTTP and serving pages at http://%s/\n", host)
	fmt.Fprintf(stdout, "send the stack's spans here with:\n  export OTEL_EXPORTER_OTLP_ENDPOINT=http://%s FABRIKAM_DAPR_OTLP_ENDPOINT=%s\n  make run\n", host, host)
	fmt.Fprintf(stdout, "a delivery's trace: http://%s/find?q=<deliveryId>  (plain text: curl 'http://%s/trace/<traceId>?text')\n", host, host)
	if *follow {
		go printQuietTraces(ctx, st, stdout, *quiet, *minSpans)
	}
	log := logging.New(os.Stderr, "traceview", "warn", "text")
	return web.ServeListener(ctx, web.ServerConfig{}, ln, traceview.Handler(st), log)
}

// printQuietTraces prints each trace once it has been quiet for quiet, and
// again if more spans arrive for it later (a sidecar's batch, say).
func printQuietTraces(ctx context.Context, st *traceview.Store, w io.Writer, quiet time.Duration, minSpans int) {
	printed := map[string]int{}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		seen := map[string]bool{}
		sums := st.Summaries()
		for i := len(sums) - 1; i >= 0; i-- { // oldest first
			s := sums[i]
			seen[s.TraceID] = true
			if s.Quiet < quiet || s.Spans < minSpans || printed[s.TraceID] == s.Spans {
				continue
			}
			printed[s.TraceID] = s.Spans
			fmt.Fprintln(w)
			traceview.Render(w, st.Trace(s.TraceID))
		}
		for id := range printed {
			if !seen[id] {
				delete(printed, id) // evicted from the store
			}
		}
	}
}
