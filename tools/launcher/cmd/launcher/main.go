// Command launcher runs the local stack from dapr.yaml until Ctrl-C:
//
//	go run ./tools/launcher/cmd/launcher [-profile local|redis]
//
// `make run` builds the pinned daprd first and then runs this.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/fabrikam/dronedelivery/tools/launcher"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "launcher:", err)
		os.Exit(1)
	}
}

func run() error {
	profile := flag.String("profile", envOr("PROFILE", "local"), "component profile: a directory under components/")
	root := flag.String("root", ".", "repository root, where dapr.yaml is")
	apps := flag.String("apps", "", "comma-separated app IDs to run (default: all in dapr.yaml)")
	freePorts := flag.Bool("free-ports", false, "pick free ports and an isolated broker, to run beside another stack")
	dataDir := flag.String("data-dir", "", "broker and state data (default .data/<profile>)")
	binDir := flag.String("bin-dir", "", "where to build the apps (default .bin)")
	flag.Parse()

	daprd, err := launcher.FindDaprd()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()

	began := time.Now()
	fmt.Printf("starting the %s stack with %s\n", *profile, daprd)
	stack, err := launcher.Start(ctx, launcher.Options{
		Root:      *root,
		Profile:   *profile,
		Daprd:     daprd,
		Color:     isTerminal(os.Stdout),
		Apps:      splitList(*apps),
		FreePorts: *freePorts,
		DataDir:   *dataDir,
		BinDir:    *binDir,
	})
	if err != nil {
		return err
	}
	fmt.Printf("\nall apps and sidecars healthy in %s\n\n", time.Since(began).Round(10*time.Millisecond))
	stack.PrintTable(os.Stdout)
	for _, a := range stack.Apps() {
		switch a.ID {
		case "ingestion":
			fmt.Printf("\npublic API:      %s/api/deliveryrequests\n", a.URL())
		case "delivery":
			fmt.Printf("delivery status: %s/api/deliveries/{id}/status\n", a.URL())
		}
	}
	fmt.Println("press Ctrl-C to stop")

	for {
		select {
		case <-ctx.Done():
			stop() // a second Ctrl-C now kills the launcher at once
			fmt.Println("\nstopping: apps, then sidecars, then the broker")
			began := time.Now()
			stack.Stop()
			fmt.Printf("stopped in %s\n", time.Since(began).Round(10*time.Millisecond))
			return nil
		case name := <-stack.Failures():
			fmt.Fprintf(os.Stderr, "launcher: %s exited; the rest keep running (Ctrl-C to stop)\n", name)
		}
	}
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
