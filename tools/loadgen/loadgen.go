package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// config says what load to put on the public API.
type config struct {
	// BaseURL is ingestion's base URL (http://127.0.0.1:8101).
	BaseURL string
	// Concurrency is how many workers post requests, each waiting for its
	// answer before the next one.
	Concurrency int
	// Requests bounds the number of POSTs; 0 means no bound (Duration then).
	Requests int
	// Duration bounds how long new POSTs are started; 0 means no bound.
	Duration time.Duration
	// Rate caps the POSTs started per second over all workers; 0: no cap.
	Rate float64
	// Follow polls each accepted request's status until it is terminal.
	Follow bool
	// PollInterval is the time between two polls of one request.
	PollInterval time.Duration
	// FollowTimeout bounds how long one request is followed after its 202.
	FollowTimeout time.Duration
	// Owner is the ownerId of every request.
	Owner string
	// Heavy makes every package 30 kg, over the drone payload, so a
	// third-party carrier takes it and no drone is needed.
	Heavy bool
}

func (c config) validate() error {
	switch {
	case c.BaseURL == "":
		return errors.New("-url is required")
	case c.Concurrency < 1:
		return errors.New("-c must be at least 1")
	case c.Requests < 0 || c.Duration < 0 || c.Rate < 0:
		return errors.New("-n, -d and -rate must not be negative")
	case c.Requests == 0 && c.Duration == 0:
		return errors.New("give -n (requests) or -d (duration), or both")
	case c.Follow && (c.PollInterval <= 0 || c.FollowTimeout <= 0):
		return errors.New("-poll and -follow-timeout must be positive")
	}
	return nil
}

// Terminal states of a delivery request, in report order.
var terminalStates = []string{"Scheduled", "Rejected", "Canceled", "Failed"}

// Outcomes of following a request that did not reach a terminal state.
const (
	outcomeTimeout     = "TimedOut"    // not terminal by -follow-timeout
	outcomeInterrupted = "Interrupted" // the run was interrupted first
)

func isTerminal(status string) bool { return slices.Contains(terminalStates, status) }

// postSample is one POST: its latency and status code, or the error that
// stood in for an answer.
type postSample struct {
	latency time.Duration
	code    int
	err     error
}

// followSample is what became of one accepted request.
type followSample struct {
	outcome string
	// observed is from the 202 to the poll that first saw Scheduled.
	observed time.Duration
	// server is the status resource's updatedAt minus its acceptedAt (the
	// scheduler's final checkpoint minus ingestion's receipt), or -1.
	server     time.Duration
	polls      int
	pollErrors int
}

// results is everything one run recorded.
type results struct {
	cfg         config
	elapsed     time.Duration // first POST started to last POST answered
	posts       []postSample
	interrupted int // POSTs cut short by Ctrl-C; not in posts
	follows     []followSample
}

// pacer hands out start times at most rate per second across workers. A
// slot left unused is not made up later: the rate is a cap, not a target.
type pacer struct {
	mu       sync.Mutex
	interval time.Duration
	next     time.Time
}

func newPacer(rate float64) *pacer {
	if rate <= 0 {
		return nil
	}
	return &pacer{interval: time.Duration(float64(time.Second) / rate)}
}

// wait blocks until the caller's slot; false if ctx ended first.
func (p *pacer) wait(ctx context.Context) bool {
	if p == nil {
		return ctx.Err() == nil
	}
	p.mu.Lock()
	now := time.Now()
	if p.next.Before(now) {
		p.next = now
	}
	slot := p.next
	p.next = p.next.Add(p.interval)
	p.mu.Unlock()
	d := time.Until(slot)
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// runLoad posts requests as cfg says and, with cfg.Follow, follows each
// accepted one. ctx cancelled (Ctrl-C) stops it early with what it has.
func runLoad(ctx context.Context, cfg config, client *http.Client) *results {
	base := normalizeBase(cfg.BaseURL)
	runID := newRunID()
	issueCtx := ctx // new POSTs start only while this lasts
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		issueCtx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	pc := newPacer(cfg.Rate)
	var (
		seq         atomic.Int64
		interrupted atomic.Int64
		followMu    sync.Mutex
		follows     []followSample
		followers   sync.WaitGroup
		workers     sync.WaitGroup
	)
	perWorker := make([][]postSample, cfg.Concurrency)
	start := time.Now()
	for w := range cfg.Concurrency {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for {
				if issueCtx.Err() != nil {
					return
				}
				i := seq.Add(1)
				if cfg.Requests > 0 && i > int64(cfg.Requests) {
					return
				}
				if !pc.wait(issueCtx) {
					return
				}
				body := requestBody(cfg.Owner, cfg.Heavy, fmt.Sprintf("lg-%s-%d", runID, i), time.Now())
				s, id := post(ctx, client, base, body, cfg.Follow)
				if s.err != nil && ctx.Err() != nil {
					interrupted.Add(1)
					return
				}
				perWorker[w] = append(perWorker[w], s)
				if cfg.Follow && s.code == http.StatusAccepted {
					acceptedAt := time.Now()
					followers.Add(1)
					go func() {
						defer followers.Done()
						f := followRequest(ctx, client, base, id, acceptedAt, cfg.PollInterval, cfg.FollowTimeout)
						followMu.Lock()
						follows = append(follows, f)
						followMu.Unlock()
					}()
				}
			}
		}()
	}
	workers.Wait()
	r := &results{cfg: cfg, elapsed: time.Since(start), interrupted: int(interrupted.Load())}
	followers.Wait()
	for _, ps := range perWorker {
		r.posts = append(r.posts, ps...)
	}
	r.follows = follows
	return r
}

// normalizeBase accepts the base URL with or without the collection path.
func normalizeBase(u string) string {
	u = strings.TrimRight(u, "/")
	return strings.TrimSuffix(u, "/api/deliveryrequests")
}

func newRunID() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// requestBody is a valid delivery request as the README shows one: Seattle
// to Bellevue, picked up ten minutes from now.
func requestBody(owner string, heavy bool, packageID string, now time.Time) []byte {
	pickup := now.UTC().Add(10 * time.Minute).Truncate(time.Second)
	size, weight := "Small", 2.5
	if heavy {
		size, weight = "Large", 30.0
	}
	b, _ := json.Marshal(map[string]any{
		"ownerId":              owner,
		"pickupLocation":       "Seattle",
		"dropoffLocation":      "Bellevue",
		"pickupTime":           pickup.Format(time.RFC3339),
		"deadline":             pickup.Add(2 * time.Hour).Format(time.RFC3339),
		"expedited":            false,
		"confirmationRequired": "None",
		"packageInfo": map[string]any{
			"packageId": packageID, "size": size, "weight": weight, "tag": "loadgen",
		},
	})
	return b
}

// post sends one delivery request. With wantID it reads the delivery id of
// a 202 from its body, or else from its Location.
func post(ctx context.Context, client *http.Client, base string, body []byte, wantID bool) (postSample, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/deliveryrequests", bytes.NewReader(body))
	if err != nil {
		return postSample{err: err}, ""
	}
	req.Header.Set("Content-Type", "application/json")
	t0 := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return postSample{latency: time.Since(t0), err: err}, ""
	}
	var id string
	if wantID && resp.StatusCode == http.StatusAccepted {
		var v struct {
			DeliveryID string `json:"deliveryId"`
		}
		if json.NewDecoder(resp.Body).Decode(&v) == nil {
			id = v.DeliveryID
		}
		if id == "" {
			id = path.Base(resp.Header.Get("Location"))
		}
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return postSample{latency: time.Since(t0), code: resp.StatusCode}, id
}

// followRequest polls GET {base}/api/deliveryrequests/{id} every interval,
// from one interval after the 202, until the status is terminal or timeout
// has passed since the 202.
func followRequest(ctx context.Context, client *http.Client, base, id string, accepted time.Time, interval, timeout time.Duration) followSample {
	f := followSample{server: -1}
	if id == "" {
		f.outcome = "NoID"
		return f
	}
	deadline := accepted.Add(timeout)
	fctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	url := base + "/api/deliveryrequests/" + id
	next := accepted
	for {
		next = next.Add(interval)
		if now := time.Now(); next.Before(now) {
			next = now // a slow poll delays the next; polls never bunch up
		}
		t := time.NewTimer(time.Until(next))
		select {
		case <-fctx.Done():
			t.Stop()
			f.outcome = endOutcome(ctx)
			return f
		case <-t.C:
		}
		f.polls++
		st, err := getStatus(fctx, client, url)
		seen := time.Now()
		if err != nil {
			if fctx.Err() != nil {
				f.outcome = endOutcome(ctx)
				return f
			}
			f.pollErrors++
			continue
		}
		if isTerminal(st.Status) {
			f.outcome = st.Status
			if st.Status == "Scheduled" {
				f.observed = seen.Sub(accepted)
				if st.AcceptedAt != nil && st.UpdatedAt != nil {
					f.server = st.UpdatedAt.Sub(*st.AcceptedAt)
				}
			}
			return f
		}
	}
}

func endOutcome(ctx context.Context) string {
	if ctx.Err() != nil {
		return outcomeInterrupted
	}
	return outcomeTimeout
}

// statusView is the part of the status resource loadgen reads.
type statusView struct {
	Status     string     `json:"status"`
	AcceptedAt *time.Time `json:"acceptedAt"`
	UpdatedAt  *time.Time `json:"updatedAt"`
}

func getStatus(ctx context.Context, client *http.Client, url string) (statusView, error) {
	var v statusView
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return v, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return v, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return v, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return v, fmt.Errorf("GET %s: %w", url, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return v, nil
}

// ---- summary and report ----

// dist summarises a set of durations.
type dist struct {
	N   int
	P50 time.Duration
	P90 time.Duration
	P99 time.Duration
	Max time.Duration
}

// percentile is the nearest-rank percentile of sorted: the smallest value
// with at least p% of the values at or below it. Empty input gives 0.
func percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	// The epsilon keeps 99.9*1000 (99900.00000000001) at rank 999.
	rank := int(math.Ceil(p*float64(n)/100 - 1e-9))
	rank = max(1, min(n, rank))
	return sorted[rank-1]
}

func newDist(ds []time.Duration) dist {
	s := slices.Clone(ds)
	slices.Sort(s)
	d := dist{N: len(s)}
	if len(s) == 0 {
		return d
	}
	d.P50, d.P90, d.P99 = percentile(s, 50), percentile(s, 90), percentile(s, 99)
	d.Max = s[len(s)-1]
	return d
}

type summary struct {
	Sent            int
	Status2xx       int
	Status4xx       int
	Status5xx       int
	StatusOther     int
	TransportErrors int
	Interrupted     int
	Codes           map[int]int
	// FirstError is one transport error, to say what went wrong.
	FirstError string
	Elapsed    time.Duration
	// Throughput is answered POSTs (any status) per second of Elapsed.
	Throughput float64
	// Accepted2xx is 2xx answers per second of Elapsed.
	Accepted2xx float64
	Latency     dist
	Follow      *followSummary
}

type followSummary struct {
	Followed   int
	Outcomes   map[string]int
	Polls      int
	PollErrors int
	// ToScheduled is from the 202 to the first poll that saw Scheduled.
	ToScheduled dist
	// ServerToScheduled is updatedAt − acceptedAt of the Scheduled ones.
	ServerToScheduled dist
}

func summarize(r *results) summary {
	s := summary{Codes: map[int]int{}, Elapsed: r.elapsed, Interrupted: r.interrupted}
	var lat []time.Duration
	for _, p := range r.posts {
		s.Sent++
		if p.err != nil {
			s.TransportErrors++
			if s.FirstError == "" {
				s.FirstError = p.err.Error()
			}
			continue
		}
		lat = append(lat, p.latency)
		s.Codes[p.code]++
		switch p.code / 100 {
		case 2:
			s.Status2xx++
		case 4:
			s.Status4xx++
		case 5:
			s.Status5xx++
		default:
			s.StatusOther++
		}
	}
	s.Sent += r.interrupted
	s.Latency = newDist(lat)
	if sec := r.elapsed.Seconds(); sec > 0 {
		s.Throughput = float64(len(lat)) / sec
		s.Accepted2xx = float64(s.Status2xx) / sec
	}
	if r.cfg.Follow {
		f := &followSummary{Outcomes: map[string]int{}}
		var obs, srv []time.Duration
		for _, x := range r.follows {
			f.Followed++
			f.Outcomes[x.outcome]++
			f.Polls += x.polls
			f.PollErrors += x.pollErrors
			if x.outcome == "Scheduled" {
				obs = append(obs, x.observed)
				if x.server >= 0 {
					srv = append(srv, x.server)
				}
			}
		}
		f.ToScheduled, f.ServerToScheduled = newDist(obs), newDist(srv)
		s.Follow = f
	}
	return s
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond)) }

func (d dist) String() string {
	if d.N == 0 {
		return "none"
	}
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  max %s  (n=%d)", ms(d.P50), ms(d.P90), ms(d.P99), ms(d.Max), d.N)
}

// describe is the run's settings on one line.
func (c config) describe() string {
	parts := []string{normalizeBase(c.BaseURL), fmt.Sprintf("-c %d", c.Concurrency)}
	if c.Requests > 0 {
		parts = append(parts, fmt.Sprintf("-n %d", c.Requests))
	}
	if c.Duration > 0 {
		parts = append(parts, "-d "+c.Duration.String())
	}
	if c.Rate > 0 {
		parts = append(parts, fmt.Sprintf("-rate %g", c.Rate))
	}
	if c.Follow {
		parts = append(parts, fmt.Sprintf("-follow (every %s, up to %s)", c.PollInterval, c.FollowTimeout))
	}
	parts = append(parts, "-owner "+c.Owner)
	if c.Heavy {
		parts = append(parts, "-heavy")
	}
	return strings.Join(parts, " ")
}

// writeReport prints s for a person.
func writeReport(w io.Writer, cfg config, s summary) {
	fmt.Fprintf(w, "loadgen %s\n", cfg.describe())
	fmt.Fprintf(w, "requests sent:  %d in %.2fs\n", s.Sent, s.Elapsed.Seconds())
	fmt.Fprintf(w, "responses:      2xx %d  4xx %d  5xx %d", s.Status2xx, s.Status4xx, s.Status5xx)
	if s.StatusOther > 0 {
		fmt.Fprintf(w, "  other %d", s.StatusOther)
	}
	fmt.Fprintf(w, "  transport errors %d", s.TransportErrors)
	if s.Interrupted > 0 {
		fmt.Fprintf(w, "  interrupted %d", s.Interrupted)
	}
	fmt.Fprintln(w)
	if len(s.Codes) > 0 {
		codes := make([]int, 0, len(s.Codes))
		for c := range s.Codes {
			codes = append(codes, c)
		}
		slices.Sort(codes)
		parts := make([]string, len(codes))
		for i, c := range codes {
			parts[i] = fmt.Sprintf("%d×%d", c, s.Codes[c])
		}
		fmt.Fprintf(w, "status codes:   %s\n", strings.Join(parts, "  "))
	}
	if s.FirstError != "" {
		fmt.Fprintf(w, "first error:    %s\n", s.FirstError)
	}
	fmt.Fprintf(w, "throughput:     %.1f req/s (%.1f 2xx/s)\n", s.Throughput, s.Accepted2xx)
	fmt.Fprintf(w, "POST latency:   %s\n", s.Latency)
	if f := s.Follow; f != nil {
		fmt.Fprintf(w, "followed:       %d accepted requests, %d polls, %d poll errors\n", f.Followed, f.Polls, f.PollErrors)
		fmt.Fprintf(w, "202→Scheduled:  %s\n", f.ToScheduled)
		fmt.Fprintf(w, "  server-side:  %s  (updatedAt − acceptedAt)\n", f.ServerToScheduled)
		parts := make([]string, 0, len(terminalStates)+2)
		for _, o := range terminalStates {
			parts = append(parts, fmt.Sprintf("%s %d", o, f.Outcomes[o]))
		}
		var rest []string
		for o := range f.Outcomes {
			if !isTerminal(o) {
				rest = append(rest, o)
			}
		}
		slices.Sort(rest)
		for _, o := range rest {
			parts = append(parts, fmt.Sprintf("%s %d", o, f.Outcomes[o]))
		}
		fmt.Fprintf(w, "outcomes:       %s\n", strings.Join(parts, "  "))
	}
}

// jsonReport is the summary with durations in milliseconds, for scripts.
func jsonReport(cfg config, s summary) ([]byte, error) {
	msd := func(d dist) map[string]any {
		return map[string]any{"n": d.N, "p50Ms": msf(d.P50), "p90Ms": msf(d.P90), "p99Ms": msf(d.P99), "maxMs": msf(d.Max)}
	}
	out := map[string]any{
		"settings":        cfg.describe(),
		"sent":            s.Sent,
		"status2xx":       s.Status2xx,
		"status4xx":       s.Status4xx,
		"status5xx":       s.Status5xx,
		"statusOther":     s.StatusOther,
		"transportErrors": s.TransportErrors,
		"interrupted":     s.Interrupted,
		"codes":           s.Codes,
		"elapsedS":        s.Elapsed.Seconds(),
		"throughput":      s.Throughput,
		"throughput2xx":   s.Accepted2xx,
		"latency":         msd(s.Latency),
	}
	if f := s.Follow; f != nil {
		out["follow"] = map[string]any{
			"followed": f.Followed, "outcomes": f.Outcomes, "polls": f.Polls, "pollErrors": f.PollErrors,
			"toScheduled": msd(f.ToScheduled), "serverToScheduled": msd(f.ServerToScheduled),
		}
	}
	return json.MarshalIndent(out, "", "  ")
}

func msf(d time.Duration) float64 {
	return math.Round(float64(d)/float64(time.Microsecond)) / 1000
}
