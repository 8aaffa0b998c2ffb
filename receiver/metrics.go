package receiver

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics of the receiver, registered once with a Prometheus registry.
type Metrics struct {
	requests      *prometheus.CounterVec
	latency       *prometheus.HistogramVec
	commitLatency prometheus.Histogram
	commitBatch   prometheus.Histogram
	tableSerial   prometheus.Gauge
	partnerBytes  *prometheus.GaugeVec
	statusLeader  prometheus.Gauge
	partnerEvents *prometheus.CounterVec
	filterFails   *prometheus.CounterVec
}

// NewMetrics creates and registers the receiver's metrics.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookgate_receiver_requests_total", Help: "Requests by route, outcome, reason and status code.",
		}, []string{"route", "outcome", "reason", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "hookgate_receiver_request_duration_seconds", Help: "Time to answer a request.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route", "outcome"}),
		commitLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "hookgate_store_commit_duration_seconds", Help: "Duration of one group commit (transaction and fsync).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}),
		commitBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "hookgate_store_commit_batch_size", Help: "Writes per group commit.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 10),
		}),
		tableSerial: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hookgate_routing_table_serial", Help: "Serial of the routing table being served.",
		}),
		partnerBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "hookgate_store_partner_bytes", Help: "Payload bytes each partner has stored, against its maxStoredBytes quota.",
		}, []string{"partner"}),
		partnerEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookgate_partner_events_total", Help: "Events posted by each authenticated partner (namespace/name), by outcome (accepted, duplicate, rejected).",
		}, []string{"partner", "outcome"}),
		filterFails: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookgate_filter_failures_total", Help: "Destination filter expressions that could not be evaluated (the event did not go to that destination), by endpoint, destination and reason (evaluation, over_budget).",
		}, []string{"endpoint", "destination", "reason"}),
		statusLeader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hookgate_status_leader", Help: "1 while this replica holds the status Lease (writes WebhookEvents and prunes), else 0.",
		}),
	}
	reg.MustRegister(m.requests, m.latency, m.commitLatency, m.commitBatch, m.tableSerial, m.partnerBytes, m.statusLeader, m.partnerEvents, m.filterFails)
	return m
}

func (m *Metrics) observeFilterFailure(endpoint, destination, reason string) {
	if m == nil {
		return
	}
	m.filterFails.WithLabelValues(endpoint, destination, reason).Inc()
}

func (m *Metrics) observeRequest(route, outcome, reason string, code int, d time.Duration) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(route, outcome, reason, itoa(int64(code))).Inc()
	m.latency.WithLabelValues(route, outcome).Observe(d.Seconds())
}

// observePartnerEvent counts one event request of an authenticated partner: the label
// values are bounded by the routing table's partners.
func (m *Metrics) observePartnerEvent(partner, outcome string) {
	if m == nil {
		return
	}
	m.partnerEvents.WithLabelValues(partner, outcome).Inc()
}

// ObserveCommit records one group commit.
func (m *Metrics) ObserveCommit(d time.Duration, batch int) {
	if m == nil {
		return
	}
	m.commitLatency.Observe(d.Seconds())
	m.commitBatch.Observe(float64(batch))
}

// ObserveTable records the loaded table's serial.
func (m *Metrics) ObserveTable(serial uint64) {
	if m == nil {
		return
	}
	m.tableSerial.Set(float64(serial))
}

// ObserveStatusLeader records whether this replica holds the status Lease.
func (m *Metrics) ObserveStatusLeader(leading bool) {
	if m == nil {
		return
	}
	if leading {
		m.statusLeader.Set(1)
	} else {
		m.statusLeader.Set(0)
	}
}

// ObserveUsage records each partner's stored bytes (partners with none drop out).
func (m *Metrics) ObserveUsage(usage map[string]int64) {
	if m == nil {
		return
	}
	m.partnerBytes.Reset()
	for partner, n := range usage {
		m.partnerBytes.WithLabelValues(partner).Set(float64(n))
	}
}
