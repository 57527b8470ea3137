package sidecar

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metricsHandler serves the sidecar's Prometheus metrics: its spool's
// footprint (computed at each scrape), plus Go and process metrics.
func (s *Sidecar) metricsHandler() (http.Handler, error) {
	reg := prometheus.NewRegistry()
	gauges := []struct {
		name, help string
		value      func() float64
	}{
		{"pdp_sidecar_spool_bytes", "Bytes the spool's segments take on disk (their files' sizes, preallocated space included).",
			func() float64 { return float64(s.spool.diskUsage()) }},
		{"pdp_sidecar_spool_segments", "Segments of the spool on disk; shipped ones are deleted, the one written to is kept.",
			func() float64 { return float64(s.spool.segments()) }},
		{"pdp_sidecar_spool_unshipped_records", "Answers spooled and not yet acknowledged by the central PDP.",
			func() float64 {
				spooled, shipped := s.spool.spooled(), s.shippedRecords.Load()
				return float64(spooled - min(spooled, shipped))
			}},
	}
	for _, g := range gauges {
		if err := reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: g.name, Help: g.help}, g.value)); err != nil {
			return nil, err
		}
	}
	for _, c := range []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), nil
}
