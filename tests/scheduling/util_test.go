package scheduling

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

var httpClient = &http.Client{Timeout: 30 * time.Second}

// post submits a request from any goroutine and returns the delivery id.
func post(body any) (string, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return "", err
	}
	resp, err := httpClient.Post(env.Stack.App("ingestion").URL()+"/api/deliveryrequests", "application/json", bytes.NewReader(b))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted {
		return "", fmt.Errorf("%d %s", resp.StatusCode, rb)
	}
	var got struct {
		DeliveryID string `json:"deliveryId"`
	}
	if err := json.Unmarshal(rb, &got); err != nil {
		return "", err
	}
	return got.DeliveryID, nil
}
