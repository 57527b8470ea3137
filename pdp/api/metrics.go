package api

import (
	"fmt"
	"strconv"

	"github.com/ciampdp/pdp/pdp"
	"github.com/prometheus/client_golang/prometheus"
)

// decisionBuckets span engine durations from 1µs to 100ms.
var decisionBuckets = []float64{
	1e-6, 2.5e-6, 5e-6,
	1e-5, 2.5e-5, 5e-5,
	1e-4, 2.5e-4, 5e-4,
	1e-3, 2.5e-3, 5e-3,
	1e-2, 2.5e-2, 5e-2,
	1e-1,
}

// metrics are the server's Prometheus collectors.
type metrics struct {
	decisions *prometheus.CounterVec
	duration  prometheus.Histogram
	requests  *prometheus.CounterVec
	// byApp caches the decision counters of the configured applications so
	// that the hot path does no label hashing. Read-only after New.
	byApp map[string]appCounters
}

type appCounters struct{ allow, deny prometheus.Counter }

// newMetrics creates the collectors and registers them on reg.
func newMetrics(reg prometheus.Registerer, policies PolicyStatus, apps []string) (*metrics, error) {
	m := &metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pdp_decisions_total",
			Help: "Decisions made, by result (allow or deny) and calling application; batch items cut off by a short-circuit semantic count too.",
		}, []string{"result", "application"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pdp_decision_duration_seconds",
			Help:    "Time the engine spent on each decision.",
			Buckets: decisionBuckets,
		}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pdp_http_requests_total",
			Help: "HTTP requests answered, by route template and status code.",
		}, []string{"route", "code"}),
		byApp: make(map[string]appCounters, len(apps)),
	}
	for _, app := range apps {
		m.byApp[app] = appCounters{
			allow: m.decisions.WithLabelValues("allow", app),
			deny:  m.decisions.WithLabelValues("deny", app),
		}
	}
	for _, c := range []prometheus.Collector{m.decisions, m.duration, m.requests, newPolicyCollector(policies)} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return m, nil
}

// observe counts one decision and its engine duration.
func (m *metrics) observe(app string, d *pdp.Decision) {
	if c, ok := m.byApp[app]; ok {
		if d.Allowed {
			c.allow.Inc()
		} else {
			c.deny.Inc()
		}
	} else {
		m.decisions.WithLabelValues(result(d.Allowed), app).Inc()
	}
	m.duration.Observe(d.Duration.Seconds())
}

// request counts one answered HTTP request.
func (m *metrics) request(route string, code int) {
	m.requests.WithLabelValues(route, codeLabel(code)).Inc()
}

func result(allowed bool) string {
	if allowed {
		return "allow"
	}
	return "deny"
}

// codeLabel avoids formatting the common status codes on every request.
func codeLabel(code int) string {
	switch code {
	case 200:
		return "200"
	case 400:
		return "400"
	case 401:
		return "401"
	case 404:
		return "404"
	case 413:
		return "413"
	case 500:
		return "500"
	case 503:
		return "503"
	}
	return strconv.Itoa(code)
}

// policyCollector reports the policy loader's state at scrape time, so the
// metrics follow reloads without the loader knowing about Prometheus.
type policyCollector struct {
	policies PolicyStatus
	info     *prometheus.Desc
	reloads  *prometheus.Desc
	failures *prometheus.Desc
}

func newPolicyCollector(p PolicyStatus) *policyCollector {
	return &policyCollector{
		policies: p,
		info: prometheus.NewDesc("pdp_policy_info",
			"The active policy version (content hash and Git commit); always 1, absent while none is loaded.",
			[]string{"hash", "commit"}, nil),
		reloads: prometheus.NewDesc("pdp_policy_reloads_total",
			"Policy bundles loaded successfully.", nil, nil),
		failures: prometheus.NewDesc("pdp_policy_reload_failures_total",
			"Policy reload attempts that failed and left the previous version active.", nil, nil),
	}
}

func (c *policyCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.info
	ch <- c.reloads
	ch <- c.failures
}

func (c *policyCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.policies.Status()
	if st.Active.Hash != "" {
		ch <- prometheus.MustNewConstMetric(c.info, prometheus.GaugeValue, 1, st.Active.Hash, st.Active.Commit)
	}
	ch <- prometheus.MustNewConstMetric(c.reloads, prometheus.CounterValue, float64(st.Reloads))
	ch <- prometheus.MustNewConstMetric(c.failures, prometheus.CounterValue, float64(st.Failures))
}
