// Command loadgen drives the public API of a running stack and reports what
// it saw:
//
//	go run ./tools/loadgen -url http://127.0.0.1:8101 -c 16 -d 20s
//	go run ./tools/loadgen -url http://127.0.0.1:8101 -c 2 -rate 10 -n 200 -follow -heavy
//
// Each of -c workers posts a valid delivery request (Seattle to Bellevue,
// picked up ten minutes ahead, a unique packageId each), waits for the answer
// and posts the next, until -n requests have been sent or -d has passed;
// -rate caps the requests started per second across all workers. It prints
// the requests sent, the 2xx/4xx/5xx counts, the throughput and the POST
// latency percentiles.
//
// With -follow, each 202 is followed apart from the workers (so following
// does not slow the posting down): GET {url}/api/deliveryrequests/{id} every
// -poll (20ms) until the status is Scheduled, Rejected, Canceled or Failed,
// or -follow-timeout has passed since the 202. It then prints the time from
// the 202 to the first poll that saw Scheduled (so its resolution is the
// poll interval plus a GET), the same span by the server's own clocks
// (the status resource's updatedAt − acceptedAt, from ingestion's receipt of
// the POST to the scheduler's final checkpoint), and the count of each
// outcome. Polling is load too: each poll is a GET through ingestion, its
// sidecar and the scheduler's.
//
// -heavy makes each package 30 kg, over the 20 kg drone payload, so a
// third-party carrier takes it: no drone is needed, and the fleet is not
// what limits the run. Without it, each scheduled request holds a drone
// until its (simulated) flight ends.
//
// Ctrl-C stops early and reports what was measured so far. Only the standard
// library is used.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	var cfg config
	fs.StringVar(&cfg.BaseURL, "url", "http://127.0.0.1:8101", "ingestion's base URL")
	fs.IntVar(&cfg.Concurrency, "c", 4, "concurrent workers, each with one request in flight")
	fs.IntVar(&cfg.Requests, "n", 0, "total requests to send (0: no bound; give -d)")
	fs.DurationVar(&cfg.Duration, "d", 0, "how long to send requests (0: no bound; give -n)")
	fs.Float64Var(&cfg.Rate, "rate", 0, "cap on requests started per second, all workers together (0: no cap)")
	fs.BoolVar(&cfg.Follow, "follow", false, "poll each accepted request's status until it is terminal")
	fs.DurationVar(&cfg.PollInterval, "poll", 20*time.Millisecond, "with -follow, time between two polls of one request")
	fs.DurationVar(&cfg.FollowTimeout, "follow-timeout", 90*time.Second, "with -follow, how long to follow one request after its 202")
	fs.StringVar(&cfg.Owner, "owner", "contoso", "ownerId of the requests")
	fs.BoolVar(&cfg.Heavy, "heavy", false, "30 kg packages, taken by a third-party carrier (no drone needed)")
	timeout := fs.Duration("timeout", 30*time.Second, "timeout of each HTTP request")
	asJSON := fs.Bool("json", false, "print the summary as JSON (durations in ms) instead of text")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	res := runLoad(ctx, cfg, newClient(cfg.Concurrency, *timeout))
	s := summarize(res)
	if *asJSON {
		b, err := jsonReport(cfg, s)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "%s\n", b)
		return err
	}
	writeReport(stdout, cfg, s)
	return nil
}

// newClient keeps enough idle connections for every worker and follower,
// so the run measures requests rather than TCP handshakes.
func newClient(concurrency int, timeout time.Duration) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 0
	t.MaxIdleConnsPerHost = max(256, 2*concurrency)
	return &http.Client{Transport: t, Timeout: timeout}
}
