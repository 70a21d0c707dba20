package tracking

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fabrikam/dronedelivery/internal/messages"
)

// sseEvent is one Server-Sent Event.
type sseEvent struct {
	Name, ID, Data string
}

// TestLiveStreamDeliversEveryStage follows a delivery over /live from just
// after it is scheduled until the server ends the stream.
func TestLiveStreamDeliversEveryStage(t *testing.T) {
	id, _ := schedule(t, request("47.600,-122.300", "47.650,-122.220", "None"))

	ctx, cancel := context.WithTimeout(context.Background(), flightTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, env.Stack.App("delivery").URL()+"/api/deliveries/"+id+"/live", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET live: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("GET live: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}

	var events []sseEvent
	var cur sseEvent
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.Name != "" {
				events = append(events, cur)
			}
			cur = sseEvent{}
		case strings.HasPrefix(line, "event: "):
			cur.Name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "id: "):
			cur.ID = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "data: "):
			cur.Data = strings.TrimPrefix(line, "data: ")
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read the stream (it should end by itself when the delivery ends): %v", err)
	}

	var stages, ids []string
	statuses := 0
	for _, e := range events {
		switch e.Name {
		case "stage":
			var tr struct {
				Seq   int    `json:"seq"`
				Stage string `json:"stage"`
			}
			if err := json.Unmarshal([]byte(e.Data), &tr); err != nil {
				t.Fatalf("stage event %q: %v", e.Data, err)
			}
			stages, ids = append(stages, tr.Stage), append(ids, e.ID)
		case "status":
			statuses++
		}
	}
	if !slices.Equal(stages, flightStages) {
		t.Errorf("stage events %s, want %s", join(stages), join(flightStages))
	}
	if !slices.Equal(ids, []string{"1", "2", "3", "4"}) {
		t.Errorf("stage event ids %v, want 1..4", ids)
	}
	if last := events[len(events)-1]; last.Name != "end" || !strings.Contains(last.Data, messages.StageCompleted) {
		t.Errorf("last event %+v, want end of a completed delivery", last)
	}
	// Status events carry the drone's position as it flies (the delivery
	// applies a position a second at most: TRACKING_MIN_INTERVAL).
	if statuses < 5 {
		t.Errorf("%d status events over the whole flight, want the drone followed", statuses)
	}
	t.Logf("%d events: %d status updates, stages %s", len(events), statuses, join(stages))

	// A client reconnecting after stage 2 gets only what came after.
	rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer rcancel()
	req, _ = http.NewRequestWithContext(rctx, http.MethodGet, env.Stack.App("delivery").URL()+"/api/deliveries/"+id+"/live", nil)
	req.Header.Set("Last-Event-ID", "2")
	resp2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET live again: %v", err)
	}
	defer resp2.Body.Close()
	var again []string
	sc = bufio.NewScanner(resp2.Body)
	for sc.Scan() {
		if id, ok := strings.CutPrefix(sc.Text(), "id: "); ok {
			again = append(again, id)
		}
	}
	if !slices.Equal(again, []string{"3", "4"}) {
		t.Errorf("after Last-Event-ID 2: stage ids %v, want 3 and 4", again)
	}
}
