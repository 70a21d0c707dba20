package tracking

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/fabrikam/dronedelivery/internal/messages"
)

// TestReplayedAndReorderedDroneReports redelivers and reorders a flight's
// drone reports, before and after the delivery completes: no stage goes
// backwards and no delivery event is published twice.
func TestReplayedAndReorderedDroneReports(t *testing.T) {
	id, drone := schedule(t, request("47.600,-122.300", "47.690,-122.180", "None"))
	waitStage(t, id, messages.StageHeadedToDropoff, flightTimeout)

	// A broker redelivering the last report from before the pickup.
	marker := env.Republish(t, messages.TopicDroneStatus, `"deliveryId":"`+id+`"`, `"status":"headed-to-pickup"`)
	env.WaitConsumed(t, messages.TopicDroneStatus, "delivery", marker, 30*time.Second)
	if s := getStatus(t, id); s.Stage != messages.StageHeadedToDropoff {
		t.Fatalf("after a redelivered headed-to-pickup report the delivery is %s, want still HeadedToDropoff", s.Stage)
	}

	// The flight's first reports again, newest first.
	early := droneReports(t, id)
	early = early[:min(len(early), 6)]
	slices.Reverse(early)
	for i, r := range early {
		publishReport(t, fmt.Sprintf("replay-%s-%d", id, i), r)
	}
	env.WaitConsumed(t, messages.TopicDroneStatus, "delivery", env.StreamEnd(t, messages.TopicDroneStatus), 30*time.Second)
	if s := getStatus(t, id); s.Stage != messages.StageHeadedToDropoff && s.Stage != messages.StageCompleted {
		t.Fatalf("after reordered early reports the delivery is %s", s.Stage)
	}

	waitStage(t, id, messages.StageCompleted, flightTimeout)
	waitDroneFree(t, drone, flightTimeout)
	before := getStatus(t, id)

	// After the end: the drop-off report redelivered, a report from the way
	// to the drop-off, and one claiming a later sequence number but a stage
	// long past.
	marker = env.Republish(t, messages.TopicDroneStatus, `"deliveryId":"`+id+`"`, `"status":"dropped-off"`)
	env.WaitConsumed(t, messages.TopicDroneStatus, "delivery", marker, 30*time.Second)
	marker = env.Republish(t, messages.TopicDroneStatus, `"deliveryId":"`+id+`"`, `"status":"headed-to-drop-off"`)
	env.WaitConsumed(t, messages.TopicDroneStatus, "delivery", marker, 30*time.Second)
	all := droneReports(t, id)
	forged := all[0]
	forged.Sequence = all[len(all)-1].Sequence + 1000
	forged.Timestamp = time.Now().UTC()
	publishReport(t, "forged-"+id, forged)
	env.WaitConsumed(t, messages.TopicDroneStatus, "delivery", env.StreamEnd(t, messages.TopicDroneStatus), 30*time.Second)

	after := getStatus(t, id)
	if after.Stage != messages.StageCompleted || !after.UpdatedAt.Equal(before.UpdatedAt) {
		t.Errorf("after the replays: %s updated %s, want Completed and unchanged since %s", after.Stage, after.UpdatedAt, before.UpdatedAt)
	}
	if got := publishedStages(t, id); !slices.Equal(got, flightStages) {
		t.Errorf("delivery events published: %s, want each of %s once", join(got), join(flightStages))
	}
	waitHistory(t, id, 30*time.Second, flightStages...)
}

// publishReport publishes r on drone-status through a sidecar's HTTP API,
// as a CloudEvent with the given id.
func publishReport(t testing.TB, id string, r droneReport) {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	q := url.Values{}
	q.Set("metadata.cloudevent.id", id)
	q.Set("metadata.cloudevent.type", messages.TypeDroneStatus)
	q.Set("metadata.partitionKey", r.DeliveryID)
	u := env.Stack.App("drone").DaprURL() + "/v1.0/publish/" + messages.PubSub + "/" + messages.TopicDroneStatus + "?" + q.Encode()
	resp, err := http.Post(u, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatalf("publish report: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("publish report: %d", resp.StatusCode)
	}
}
