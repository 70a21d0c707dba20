package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func millis(n float64) time.Duration { return time.Duration(n * float64(time.Millisecond)) }

func seq(n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = time.Duration(i+1) * time.Millisecond
	}
	return out
}

func TestPercentileNearestRank(t *testing.T) {
	cases := []struct {
		name string
		in   []time.Duration
		p    float64
		want time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one value", []time.Duration{7}, 99, 7},
		{"p0 is the minimum", seq(10), 0, 1 * time.Millisecond},
		{"p100 is the maximum", seq(10), 100, 10 * time.Millisecond},
		{"p50 of 10", seq(10), 50, 5 * time.Millisecond},
		{"p90 of 10", seq(10), 90, 9 * time.Millisecond}, // 0.9*10 is 9.000000000000002 in floats
		{"p99 of 10", seq(10), 99, 10 * time.Millisecond},
		{"p50 of 200", seq(200), 50, 100 * time.Millisecond},
		{"p99 of 200", seq(200), 99, 198 * time.Millisecond},
		{"p99 of 100", seq(100), 99, 99 * time.Millisecond},
		{"p99.9 of 1000", seq(1000), 99.9, 999 * time.Millisecond},
		{"p50 of 3", seq(3), 50, 2 * time.Millisecond},
		{"p50 of 2", seq(2), 50, 1 * time.Millisecond},
		{"over 100 clamps", seq(5), 150, 5 * time.Millisecond},
	}
	for _, c := range cases {
		if got := percentile(c.in, c.p); got != c.want {
			t.Errorf("%s: percentile(p%g) = %v, want %v", c.name, c.p, got, c.want)
		}
	}
}

func TestNewDistSortsACopy(t *testing.T) {
	in := []time.Duration{millis(30), millis(10), millis(20), millis(50), millis(40)}
	d := newDist(in)
	want := dist{N: 5, P50: millis(30), P90: millis(50), P99: millis(50), Max: millis(50)}
	if d != want {
		t.Fatalf("newDist = %+v, want %+v", d, want)
	}
	if in[0] != millis(30) {
		t.Fatal("newDist reordered its input")
	}
	if (newDist(nil) != dist{}) {
		t.Fatal("empty dist not zero")
	}
}

func sampleResults() *results {
	cfg := config{BaseURL: "http://x:1/", Concurrency: 2, Requests: 8, Follow: true,
		PollInterval: 20 * time.Millisecond, FollowTimeout: time.Minute, Owner: "contoso", Heavy: true}
	return &results{
		cfg:     cfg,
		elapsed: 2 * time.Second,
		posts: []postSample{
			{latency: millis(10), code: 202}, {latency: millis(20), code: 202}, {latency: millis(30), code: 202},
			{latency: millis(40), code: 202}, {latency: millis(5), code: 400}, {latency: millis(50), code: 503},
			{latency: millis(1), code: 302},
			{latency: millis(900), err: errors.New("connection refused")},
		},
		interrupted: 1,
		follows: []followSample{
			{outcome: "Scheduled", observed: millis(60), server: millis(41), polls: 3},
			{outcome: "Scheduled", observed: millis(80), server: millis(55), polls: 4, pollErrors: 1},
			{outcome: "Rejected", polls: 2, server: -1},
			{outcome: outcomeTimeout, polls: 9, server: -1},
		},
	}
}

func TestSummarize(t *testing.T) {
	s := summarize(sampleResults())
	if s.Sent != 9 || s.Status2xx != 4 || s.Status4xx != 1 || s.Status5xx != 1 || s.StatusOther != 1 ||
		s.TransportErrors != 1 || s.Interrupted != 1 {
		t.Fatalf("counts: %+v", s)
	}
	if s.Codes[202] != 4 || s.Codes[400] != 1 || s.Codes[503] != 1 || len(s.Codes) != 4 {
		t.Fatalf("codes: %v", s.Codes)
	}
	if s.FirstError != "connection refused" {
		t.Fatalf("first error %q", s.FirstError)
	}
	// 7 answers (the transport error has none) over 2s.
	if s.Throughput != 3.5 || s.Accepted2xx != 2 {
		t.Fatalf("throughput %v, 2xx/s %v", s.Throughput, s.Accepted2xx)
	}
	// Latency only of answered POSTs: 1 5 10 20 30 40 50.
	if want := (dist{N: 7, P50: millis(20), P90: millis(50), P99: millis(50), Max: millis(50)}); s.Latency != want {
		t.Fatalf("latency %+v, want %+v", s.Latency, want)
	}
	f := s.Follow
	if f == nil || f.Followed != 4 || f.Polls != 18 || f.PollErrors != 1 {
		t.Fatalf("follow: %+v", f)
	}
	if f.Outcomes["Scheduled"] != 2 || f.Outcomes["Rejected"] != 1 || f.Outcomes[outcomeTimeout] != 1 {
		t.Fatalf("outcomes: %v", f.Outcomes)
	}
	if want := (dist{N: 2, P50: millis(60), P90: millis(80), P99: millis(80), Max: millis(80)}); f.ToScheduled != want {
		t.Fatalf("toScheduled %+v", f.ToScheduled)
	}
	if f.ServerToScheduled.N != 2 || f.ServerToScheduled.Max != millis(55) {
		t.Fatalf("serverToScheduled %+v", f.ServerToScheduled)
	}
}

func TestSummarizeWithoutFollowOrAnswers(t *testing.T) {
	s := summarize(&results{cfg: config{Concurrency: 1, Requests: 1}})
	if s.Follow != nil || s.Sent != 0 || s.Throughput != 0 || s.Latency.N != 0 {
		t.Fatalf("%+v", s)
	}
	var b bytes.Buffer
	writeReport(&b, config{BaseURL: "http://h", Concurrency: 1, Requests: 1, Owner: "o"}, s)
	if !strings.Contains(b.String(), "POST latency:   none") || strings.Contains(b.String(), "202→Scheduled") {
		t.Fatalf("report:\n%s", b.String())
	}
}

func TestWriteReport(t *testing.T) {
	r := sampleResults()
	var b bytes.Buffer
	writeReport(&b, r.cfg, summarize(r))
	want := `loadgen http://x:1 -c 2 -n 8 -follow (every 20ms, up to 1m0s) -owner contoso -heavy
requests sent:  9 in 2.00s
responses:      2xx 4  4xx 1  5xx 1  other 1  transport errors 1  interrupted 1
status codes:   202×4  302×1  400×1  503×1
first error:    connection refused
throughput:     3.5 req/s (2.0 2xx/s)
POST latency:   p50 20.0ms  p90 50.0ms  p99 50.0ms  max 50.0ms  (n=7)
followed:       4 accepted requests, 18 polls, 1 poll errors
202→Scheduled:  p50 60.0ms  p90 80.0ms  p99 80.0ms  max 80.0ms  (n=2)
  server-side:  p50 41.0ms  p90 55.0ms  p99 55.0ms  max 55.0ms  (n=2)  (updatedAt − acceptedAt)
outcomes:       Scheduled 2  Rejected 1  Canceled 0  Failed 0  TimedOut 1
`
	if got := b.String(); got != want {
		t.Fatalf("report:\n%s\nwant:\n%s", got, want)
	}
}

func TestJSONReport(t *testing.T) {
	r := sampleResults()
	b, err := jsonReport(r.cfg, summarize(r))
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Sent       int     `json:"sent"`
		Throughput float64 `json:"throughput"`
		Latency    struct {
			P99 float64 `json:"p99Ms"`
		} `json:"latency"`
		Follow struct {
			Outcomes    map[string]int `json:"outcomes"`
			ToScheduled struct {
				P50 float64 `json:"p50Ms"`
			} `json:"toScheduled"`
		} `json:"follow"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	if v.Sent != 9 || v.Throughput != 3.5 || v.Latency.P99 != 50 || v.Follow.ToScheduled.P50 != 60 || v.Follow.Outcomes["Rejected"] != 1 {
		t.Fatalf("json: %s", b)
	}
}

func TestRequestBody(t *testing.T) {
	now := time.Date(2030, 5, 14, 20, 0, 30, 500, time.UTC)
	for _, heavy := range []bool{false, true} {
		var v struct {
			OwnerID, PickupLocation, DropoffLocation, PickupTime, Deadline, ConfirmationRequired string
			PackageInfo                                                                          struct {
				PackageID, Size string
				Weight          float64
			}
		}
		if err := json.Unmarshal(requestBody("fabrikam", heavy, "lg-1", now), &v); err != nil {
			t.Fatal(err)
		}
		if v.OwnerID != "fabrikam" || v.PickupLocation != "Seattle" || v.DropoffLocation != "Bellevue" ||
			v.PickupTime != "2030-05-14T20:10:30Z" || v.Deadline != "2030-05-14T22:10:30Z" ||
			v.ConfirmationRequired != "None" || v.PackageInfo.PackageID != "lg-1" {
			t.Fatalf("body: %+v", v)
		}
		if heavy && v.PackageInfo.Weight != 30 || !heavy && v.PackageInfo.Weight > 5 {
			t.Fatalf("heavy=%v weight %v", heavy, v.PackageInfo.Weight)
		}
	}
}

func TestPacerCapsRate(t *testing.T) {
	p := newPacer(200) // 5ms apart
	start := time.Now()
	for range 21 {
		if !p.wait(context.Background()) {
			t.Fatal("wait failed")
		}
	}
	if el := time.Since(start); el < 95*time.Millisecond {
		t.Fatalf("21 slots at 200/s took %v, want at least 100ms", el)
	}
	if newPacer(0) != nil {
		t.Fatal("rate 0 should mean no pacer")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if (*pacer)(nil).wait(ctx) {
		t.Fatal("nil pacer waited on a cancelled context")
	}
}

func TestValidate(t *testing.T) {
	ok := config{BaseURL: "http://h", Concurrency: 1, Duration: time.Second}
	if err := ok.validate(); err != nil {
		t.Fatal(err)
	}
	bad := []config{
		{BaseURL: "http://h", Concurrency: 1},
		{BaseURL: "http://h", Concurrency: 0, Requests: 1},
		{BaseURL: "http://h", Concurrency: 1, Requests: 1, Rate: -1},
		{BaseURL: "http://h", Concurrency: 1, Requests: 1, Follow: true},
	}
	for _, c := range bad {
		if c.validate() == nil {
			t.Errorf("%+v validated", c)
		}
	}
}

// fakeIngestion accepts every request whose weight is over 20 kg and
// reports it Scheduled after the number of polls it is told; lighter ones
// are Rejected at once. Every fifth POST is a 503.
type fakeIngestion struct {
	mu       sync.Mutex
	posts    atomic.Int64
	polls    map[string]int
	ids      atomic.Int64
	schedule int // polls before Scheduled
}

func (f *fakeIngestion) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/api/deliveryrequests":
		n := f.posts.Add(1)
		if r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "no json", http.StatusUnsupportedMediaType)
			return
		}
		if n%5 == 0 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		var b struct {
			PackageInfo struct{ Weight float64 } `json:"packageInfo"`
		}
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		id := fmt.Sprintf("%08d-0000-0000-0000-000000000000", f.ids.Add(1))
		if b.PackageInfo.Weight <= 20 {
			id = "light-" + id
		}
		w.Header().Set("Location", "/api/deliveryrequests/"+id)
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprintf(w, `{"deliveryId":%q,"status":"Accepted"}`, id)
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/api/deliveryrequests/"):
		id := strings.TrimPrefix(r.URL.Path, "/api/deliveryrequests/")
		f.mu.Lock()
		f.polls[id]++
		n := f.polls[id]
		f.mu.Unlock()
		acc := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
		status := "InProgress"
		switch {
		case strings.HasPrefix(id, "light-"):
			status = "Rejected"
		case n >= f.schedule:
			status = "Scheduled"
		}
		fmt.Fprintf(w, `{"deliveryId":%q,"status":%q,"acceptedAt":%q,"updatedAt":%q}`, id, status,
			acc.Format(time.RFC3339Nano), acc.Add(12*time.Millisecond).Format(time.RFC3339Nano))
	default:
		http.NotFound(w, r)
	}
}

func TestRunAgainstFakeIngestion(t *testing.T) {
	f := &fakeIngestion{polls: map[string]int{}, schedule: 3}
	srv := httptest.NewServer(f)
	defer srv.Close()
	cfg := config{BaseURL: srv.URL + "/api/deliveryrequests", Concurrency: 3, Requests: 20, Follow: true,
		PollInterval: 5 * time.Millisecond, FollowTimeout: 5 * time.Second, Owner: "contoso", Heavy: true}
	s := summarize(runLoad(context.Background(), cfg, newClient(3, 5*time.Second)))
	if s.Sent != 20 || s.Status2xx != 16 || s.Status5xx != 4 || s.TransportErrors != 0 {
		t.Fatalf("counts %+v", s)
	}
	fs := s.Follow
	if fs.Followed != 16 || fs.Outcomes["Scheduled"] != 16 || fs.Polls != 48 {
		t.Fatalf("follow %+v", fs)
	}
	// Scheduled on the third poll, 5ms apart: at least 15ms after the 202.
	if fs.ToScheduled.P50 < 15*time.Millisecond || fs.ServerToScheduled.Max != 12*time.Millisecond {
		t.Fatalf("toScheduled %v, server %v", fs.ToScheduled, fs.ServerToScheduled)
	}

	// Light packages come back Rejected; -d bounds the run by time.
	cfg.Heavy, cfg.Requests, cfg.Duration = false, 0, 100*time.Millisecond
	cfg.Rate = 100
	start := time.Now()
	s = summarize(runLoad(context.Background(), cfg, newClient(3, 5*time.Second)))
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("a 100ms run took %v", el)
	}
	if s.Sent < 2 || s.Sent > 12 {
		t.Fatalf("sent %d in 100ms at 100/s", s.Sent)
	}
	if s.Follow.Outcomes["Rejected"] != s.Status2xx || s.Follow.ToScheduled.N != 0 {
		t.Fatalf("follow %+v (2xx %d)", s.Follow, s.Status2xx)
	}
}

func TestFollowTimesOut(t *testing.T) {
	f := &fakeIngestion{polls: map[string]int{}, schedule: 1 << 30}
	srv := httptest.NewServer(f)
	defer srv.Close()
	cfg := config{BaseURL: srv.URL, Concurrency: 1, Requests: 1, Follow: true,
		PollInterval: 5 * time.Millisecond, FollowTimeout: 50 * time.Millisecond, Owner: "contoso", Heavy: true}
	s := summarize(runLoad(context.Background(), cfg, newClient(1, time.Second)))
	if s.Follow.Outcomes[outcomeTimeout] != 1 || s.Follow.Polls < 5 {
		t.Fatalf("follow %+v", s.Follow)
	}
}

func TestRunFlags(t *testing.T) {
	var b bytes.Buffer
	if err := run(context.Background(), []string{"-c", "2"}, &b); err == nil {
		t.Fatal("no -n or -d accepted")
	}
	f := &fakeIngestion{polls: map[string]int{}, schedule: 1}
	srv := httptest.NewServer(f)
	defer srv.Close()
	if err := run(context.Background(), []string{"-url", srv.URL, "-n", "4", "-c", "2", "-json"}, &b); err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(b.Bytes(), &v); err != nil || v["sent"] != 4.0 {
		t.Fatalf("json output %s (%v)", b.String(), err)
	}
}
