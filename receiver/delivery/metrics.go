package delivery

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookgate/hookgate/receiver/store"
)

// Metrics of delivery (docs/architecture.md).
type Metrics struct {
	queueDepth  prometheus.Gauge
	dueQueues   prometheus.Gauge
	oldestDue   prometheus.Gauge
	circuitOpen *prometheus.GaugeVec
	attempts    *prometheus.CounterVec
	latency     prometheus.Histogram
	endToEnd    prometheus.Histogram
	abandoned   *prometheus.CounterVec
}

// NewMetrics creates and registers the delivery metrics.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		queueDepth: prometheus.NewGauge(prometheus.GaugeOpts{Name: "hookgate_delivery_queue_depth", Help: "Deliveries waiting, due or not, in every destination's queue."}),
		dueQueues:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "hookgate_delivery_due_destinations", Help: "Destinations with a delivery due."}),
		circuitOpen: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "hookgate_delivery_circuit_open", Help: "1 while a destination's circuit is open (its deliveries wait for a probe)."},
			[]string{"endpoint"}),
		oldestDue: prometheus.NewGauge(prometheus.GaugeOpts{Name: "hookgate_delivery_oldest_due_age_seconds", Help: "How long the oldest due delivery has been waiting."}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hookgate_delivery_attempts_total", Help: "Delivery attempts by endpoint, destination and outcome."},
			[]string{"endpoint", "destination", "outcome"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "hookgate_delivery_attempt_duration_seconds", Help: "Duration of one delivery attempt.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 14)}),
		endToEnd: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "hookgate_delivery_latency_seconds", Help: "From receipt to delivered.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 16)}),
		abandoned: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hookgate_delivery_abandoned_total", Help: "Deliveries finished as Failed without an attempt because their destination or endpoint left the routing table (reason DestinationRemoved), by namespace."},
			[]string{"namespace"}),
	}
	reg.MustRegister(m.queueDepth, m.dueQueues, m.oldestDue, m.circuitOpen, m.attempts, m.latency, m.endToEnd, m.abandoned)
	return m
}

// observeQueues records the due queues at now and, when counted (depth >= 0), every
// waiting delivery.
func (m *Metrics) observeQueues(queues []store.Queue, depth int, now time.Time) {
	if m == nil {
		return
	}
	if depth >= 0 {
		m.queueDepth.Set(float64(depth))
	}
	m.dueQueues.Set(float64(len(queues)))
	oldest := now
	for _, q := range queues {
		if q.OldestDue.Before(oldest) {
			oldest = q.OldestDue
		}
	}
	m.oldestDue.Set(now.Sub(oldest).Seconds())
}

// observeAbandoned counts deliveries of a removed destination finished as Failed.
func (m *Metrics) observeAbandoned(queue string, n int) {
	if m == nil {
		return
	}
	ns, _, _, err := store.ParseQueueKey(queue)
	if err != nil {
		return
	}
	m.abandoned.WithLabelValues(ns).Add(float64(n))
}

// observeCircuit records a destination's circuit opening or closing.
func (m *Metrics) observeCircuit(queue string, open bool) {
	if m == nil {
		return
	}
	if open {
		m.circuitOpen.WithLabelValues(queue).Set(1)
	} else {
		m.circuitOpen.DeleteLabelValues(queue)
	}
}

func (m *Metrics) observeAttempt(endpoint, destination, phase string, took time.Duration, received, now time.Time) {
	if m == nil {
		return
	}
	m.attempts.WithLabelValues(endpoint, destination, phase).Inc()
	m.latency.Observe(took.Seconds())
	if phase == store.PhaseDelivered {
		m.endToEnd.Observe(now.Sub(received).Seconds())
	}
}
