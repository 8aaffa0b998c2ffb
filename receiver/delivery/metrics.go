package delivery

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookgate/hookgate/receiver/store"
)

// Metrics of delivery (docs/architecture.md).
type Metrics struct {
	queueDepth prometheus.Gauge
	oldestDue  prometheus.Gauge
	attempts   *prometheus.CounterVec
	latency    prometheus.Histogram
	endToEnd   prometheus.Histogram
}

// NewMetrics creates and registers the delivery metrics.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		queueDepth: prometheus.NewGauge(prometheus.GaugeOpts{Name: "hookgate_delivery_queue_depth", Help: "Due deliveries seen by the last scan (capped by the scan size)."}),
		oldestDue:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "hookgate_delivery_oldest_due_age_seconds", Help: "How long the oldest due delivery has been waiting."}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hookgate_delivery_attempts_total", Help: "Delivery attempts by endpoint and outcome."},
			[]string{"endpoint", "outcome"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "hookgate_delivery_attempt_duration_seconds", Help: "Duration of one delivery attempt.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 14)}),
		endToEnd: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "hookgate_delivery_latency_seconds", Help: "From receipt to delivered.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 16)}),
	}
	reg.MustRegister(m.queueDepth, m.oldestDue, m.attempts, m.latency, m.endToEnd)
	return m
}

func (m *Metrics) observeQueue(due []store.Event, now time.Time) {
	if m == nil {
		return
	}
	m.queueDepth.Set(float64(len(due)))
	if len(due) == 0 {
		m.oldestDue.Set(0)
		return
	}
	oldest := due[0].ReceivedAt
	if due[0].NextAttemptAt != nil {
		oldest = *due[0].NextAttemptAt
	}
	m.oldestDue.Set(now.Sub(oldest).Seconds())
}

func (m *Metrics) observeAttempt(endpoint, phase string, took time.Duration, received, now time.Time) {
	if m == nil {
		return
	}
	m.attempts.WithLabelValues(endpoint, phase).Inc()
	m.latency.Observe(took.Seconds())
	if phase == store.PhaseDelivered {
		m.endToEnd.Observe(now.Sub(received).Seconds())
	}
}
