package failures

import (
	"bytes"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/fabrikam/dronedelivery/internal/messages"
)

// publish puts raw data on topic through a sidecar's publish API, as any
// app could: this is how a poison message gets onto the topic.
func publish(t *testing.T, topic, eventType string, data []byte) {
	t.Helper()
	publishWithID(t, topic, eventType, "", data)
}

// publishWithID is publish with the CloudEvent id chosen, as the delivery
// service chooses its events' ids.
func publishWithID(t *testing.T, topic, eventType, id string, data []byte) {
	t.Helper()
	q := url.Values{"metadata.cloudevent.type": {eventType}}
	if id != "" {
		q.Set("metadata.cloudevent.id", id)
	}
	u := env.Stack.App("ingestion").DaprURL() + "/v1.0/publish/pubsub/" + topic + "?" + q.Encode()
	resp, err := http.Post(u, "application/json", bytes.NewReader(data))
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("publish: %d", resp.StatusCode)
	}
}

func TestPoisonMessageIsParkedWithItsReason(t *testing.T) {
	before := env.Accepted(t, body("contoso", "Seattle", "Bellevue", 2), nil)
	marker := "poison-" + time.Now().Format("150405.000000")
	publish(t, messages.TopicDeliveryRequests, messages.TypeDeliveryRequested,
		[]byte(`{"deliveryId":"`+marker+`","pickup":"not a location","surprise":true}`))
	after := env.Accepted(t, body("contoso", "Seattle", "Bellevue", 2), nil)
	t.Cleanup(func() { cancelDelivery(t, before); cancelDelivery(t, after) })

	env.WaitStatus(t, before, 30*time.Second, "Scheduled")
	env.WaitStatus(t, after, 30*time.Second, "Scheduled")

	type dead struct {
		Reason   string `json:"reason"`
		Topic    string `json:"topic"`
		Type     string `json:"type"`
		ParkedBy string `json:"parkedBy"`
		Data     any    `json:"data"`
	}
	var found dead
	waitFor(t, 30*time.Second, func() (bool, string) {
		var list struct {
			DeadLetters []dead `json:"deadLetters"`
		}
		r := env.Do(t, "supervisor", http.MethodGet, "/api/deadletters", nil, nil)
		if r.Status != http.StatusOK {
			return false, http.StatusText(r.Status)
		}
		r.JSON(t, &list)
		for _, d := range list.DeadLetters {
			if b, _ := jsonString(d.Data); strings.Contains(b, marker) {
				found = d
				return true, ""
			}
		}
		return false, "poison message not listed yet"
	})
	if found.Reason == "" || found.Topic != messages.TopicDeliveryRequests || found.ParkedBy != "scheduler" {
		t.Errorf("dead letter %+v: want the reason, the topic and who parked it", found)
	}
	t.Logf("parked with reason: %s", found.Reason)
	if r := env.Do(t, "scheduler", http.MethodGet, "/api/transactions/"+marker, nil, nil); r.Status != http.StatusNotFound {
		t.Errorf("the poison message started a transaction: %d", r.Status)
	}
}
