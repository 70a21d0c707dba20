package main

import (
	"bufio"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fabrikam/dronedelivery/internal/messages"
	"github.com/fabrikam/dronedelivery/internal/web"
)

// serve runs f's router in a real server whose WriteTimeout is short, as the
// services' is (30s), only scaled down, and returns its base URL.
func (f *fixture) serve(t *testing.T, writeTimeout time.Duration) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = web.ServeListener(ctx, web.ServerConfig{WriteTimeout: writeTimeout, ShutdownTimeout: time.Second},
			ln, f.handler, slog.New(slog.DiscardHandler))
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return "http://" + ln.Addr().String()
}

// sseLine is one event, or a comment (Name "comment"), of a stream.
type sseLine struct {
	Name, ID, Data string
	At             time.Time
}

// follow reads the stream at url until the server ends it, sending every
// event and comment on the channel, which it closes at the end.
func follow(t *testing.T, url, lastEventID string) <-chan sseLine {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	out := make(chan sseLine, 256)
	go func() {
		defer cancel()
		defer resp.Body.Close()
		defer close(out)
		var cur sseLine
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if cur.Name != "" {
					cur.At = time.Now()
					out <- cur
				}
				cur = sseLine{}
			case strings.HasPrefix(line, ":"):
				out <- sseLine{Name: "comment", Data: strings.TrimSpace(line[1:]), At: time.Now()}
			case strings.HasPrefix(line, "event: "):
				cur.Name = line[len("event: "):]
			case strings.HasPrefix(line, "id: "):
				cur.ID = line[len("id: "):]
			case strings.HasPrefix(line, "data: "):
				cur.Data = line[len("data: "):]
			}
		}
	}()
	return out
}

func TestLiveStreamOutlivesTheWriteTimeout(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.api.live = liveConfig{Poll: 10 * time.Millisecond, KeepAlive: 50 * time.Millisecond}
	url := f.serve(t, 300*time.Millisecond)
	f.create(t, "d1")

	began := time.Now()
	stream := follow(t, url+"/api/deliveries/d1/live", "")
	for _, r := range []messages.DroneStatusReport{
		rep(1, messages.DroneHeadedToPickup, nearBase),
		pickedUp(rep(2, messages.DroneHeadedToDropoff, midway)),
		dropped(rep(3, messages.DroneDroppedOff, dropoffD1), "Picture"),
	} {
		time.Sleep(400 * time.Millisecond) // more than the server's WriteTimeout
		f.report(t, r)
	}
	var stages, ids []string
	var comments, statuses int
	var last sseLine
	for l := range stream {
		switch l.Name {
		case "stage":
			var tr Transition
			if err := json.Unmarshal([]byte(l.Data), &tr); err != nil {
				t.Fatalf("stage event %q: %v", l.Data, err)
			}
			stages, ids = append(stages, string(tr.Stage)), append(ids, l.ID)
		case "status":
			statuses++
		case "comment":
			comments++
		}
		last = l
	}
	if want := []string{"Created", "HeadedToPickup", "HeadedToDropoff", "Completed"}; !slices.Equal(stages, want) {
		t.Errorf("stages %v, want %v", stages, want)
	}
	if !slices.Equal(ids, []string{"1", "2", "3", "4"}) {
		t.Errorf("stage ids %v, want 1..4", ids)
	}
	if last.Name != "end" || !strings.Contains(last.Data, "Completed") {
		t.Errorf("last event %+v, want the end of a completed delivery", last)
	}
	if statuses < 4 || comments == 0 {
		t.Errorf("%d status events and %d keep-alives, want a status per change and keep-alives in the pauses", statuses, comments)
	}
	if d := last.At.Sub(began); d < time.Second {
		t.Errorf("stream lasted %s, want it past several write timeouts", d)
	}
}

func TestLiveStreamResumesAfterLastEventID(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	url := f.serve(t, time.Second)
	f.create(t, "d1")
	f.report(t, dropped(rep(3, messages.DroneDroppedOff, dropoffD1), "None"))
	var ids, names []string
	for l := range follow(t, url+"/api/deliveries/d1/live", "2") {
		names = append(names, l.Name)
		if l.ID != "" {
			ids = append(ids, l.ID)
		}
	}
	if !slices.Equal(ids, []string{"3", "4"}) || names[len(names)-1] != "end" {
		t.Errorf("events %v with ids %v, want stages 3 and 4, then the end", names, ids)
	}
}

func TestLiveStreamEndsAtShutdown(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	stop := make(chan struct{})
	f.api.stop = stop
	url := f.serve(t, time.Second)
	f.create(t, "d1")
	stream := follow(t, url+"/api/deliveries/d1/live", "")
	if first := <-stream; first.Name != "stage" {
		t.Fatalf("first event %+v, want a stage", first)
	}
	close(stop)
	deadline := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-stream:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("the stream outlived the shutdown")
		}
	}
}

func TestLiveStreamOfUnknownDelivery(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	checkProblem(t, f.do(t, http.MethodGet, "/api/deliveries/nope/live", ""), http.StatusNotFound, web.CodeNotFound, "")
	f.store.Err = errStoreDown
	checkProblem(t, f.do(t, http.MethodGet, "/api/deliveries/d1/live", ""), http.StatusServiceUnavailable, web.CodeUnavailable, "")
}
