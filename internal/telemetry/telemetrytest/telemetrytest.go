// Package telemetrytest reads Prometheus metrics endpoints for tests, so
// they can ask for a series' value by name and labels instead of matching
// exposition text.
package telemetrytest

import (
	"context"
	"fmt"
	"io"
	"net/http"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Metrics are the metric families of one scrape, by name. Histogram and
// summary families are named without their _bucket/_sum/_count suffixes.
type Metrics map[string]*dto.MetricFamily

// Parse reads the Prometheus text format.
func Parse(r io.Reader) (Metrics, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("parse metrics: %w", err)
	}
	return Metrics(fams), nil
}

// Scrape fetches url and parses the answer; a non-200 answer is an error.
func Scrape(ctx context.Context, url string) (Metrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: status %d", url, resp.StatusCode)
	}
	return Parse(resp.Body)
}

// Has reports whether family name has at least one series.
func (m Metrics) Has(name string) bool {
	f, ok := m[name]
	return ok && len(f.GetMetric()) > 0
}

// Value sums the series of family name whose labels include every pair in
// want: the value of counters, gauges and untyped series, the sample count
// of histograms and summaries. found is false when no series matches.
func (m Metrics) Value(name string, want map[string]string) (sum float64, found bool) {
	f, ok := m[name]
	if !ok {
		return 0, false
	}
	for _, s := range f.GetMetric() {
		if !matches(s, want) {
			continue
		}
		found = true
		switch {
		case s.Counter != nil:
			sum += s.GetCounter().GetValue()
		case s.Gauge != nil:
			sum += s.GetGauge().GetValue()
		case s.Untyped != nil:
			sum += s.GetUntyped().GetValue()
		case s.Histogram != nil:
			sum += float64(s.GetHistogram().GetSampleCount())
		case s.Summary != nil:
			sum += float64(s.GetSummary().GetSampleCount())
		}
	}
	return sum, found
}

func matches(s *dto.Metric, want map[string]string) bool {
	have := make(map[string]string, len(s.GetLabel()))
	for _, l := range s.GetLabel() {
		have[l.GetName()] = l.GetValue()
	}
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}
