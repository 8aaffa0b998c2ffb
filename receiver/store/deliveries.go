package store

import (
	"fmt"
	"strings"
	"time"
)

// DefaultDestination names the destination of an endpoint's spec.destination shorthand,
// and the one delivery of events stored before fan-out.
const DefaultDestination = "default"

// DeliveryState is one destination's delivery of an event: the unit the queue holds.
// Each destination's attempts, backoff and retry budget are its own, so that one failing
// destination never holds up or repeats another's deliveries.
type DeliveryState struct {
	Destination      string     `json:"destination"`
	Phase            string     `json:"phase"`
	Attempts         int32      `json:"attempts,omitempty"`
	LastAttemptAt    *time.Time `json:"lastAttemptAt,omitempty"`
	NextAttemptAt    *time.Time `json:"nextAttemptAt,omitempty"`
	LastResponseCode int32      `json:"lastResponseCode,omitempty"`
	LastError        string     `json:"lastError,omitempty"`
	DeliveredAt      *time.Time `json:"deliveredAt,omitempty"`
	// AttemptBase is Attempts when the delivery was last queued again by hand: its retry
	// budget counts from there.
	AttemptBase int32 `json:"attemptBase,omitempty"`
}

// Finished reports whether the delivery has no attempt pending.
func (d *DeliveryState) Finished() bool {
	return d.Phase == PhaseDelivered || d.Phase == PhaseFailed
}

// Delivery is an event as a queue hands it out: for one of its destinations.
type Delivery struct {
	Event
	Destination string
	// Payload is the event's body when the claim read it too (HasPayload), as the
	// PostgreSQL store does to spare a round trip per delivery; else the worker reads it.
	Payload    []byte
	HasPayload bool
}

// Ref names the delivery.
func (d *Delivery) Ref() DeliveryRef { return DeliveryRef{UUID: d.UUID, Destination: d.Destination} }

// State is the delivery's own state in the event (nil if the event has no such
// destination, which the stores never hand out).
func (d *Delivery) State() *DeliveryState { return d.Delivery(d.Destination) }

// DeliveryRef names one event's delivery to one destination.
type DeliveryRef struct {
	UUID        string
	Destination string
}

func (r DeliveryRef) String() string { return r.UUID + "/" + r.Destination }

// Delivery is the event's delivery to the destination, or nil.
func (e *Event) Delivery(destination string) *DeliveryState {
	for i := range e.Deliveries {
		if e.Deliveries[i].Destination == destination {
			return &e.Deliveries[i]
		}
	}
	return nil
}

// QueueKey is the queue of an endpoint's destination. The default destination's queue
// is the endpoint key itself, as it was before fan-out, so that stored queues need no
// migration; another's is the endpoint key and its name. Namespaces and names hold no
// "/", so the two never collide.
func QueueKey(endpointKey, destination string) string {
	if destination == DefaultDestination || destination == "" {
		return endpointKey
	}
	return endpointKey + "/" + destination
}

// ParseQueueKey splits a queue key into its endpoint's namespace and name and the
// destination.
func ParseQueueKey(queue string) (namespace, endpoint, destination string, err error) {
	namespace, rest, ok := strings.Cut(queue, "/")
	if !ok {
		return "", "", "", fmt.Errorf("malformed queue key %q", queue)
	}
	endpoint, destination, named := strings.Cut(rest, "/")
	if !named {
		destination = DefaultDestination
	}
	if namespace == "" || endpoint == "" || destination == "" || strings.Contains(destination, "/") {
		return "", "", "", fmt.Errorf("malformed queue key %q", queue)
	}
	return namespace, endpoint, destination, nil
}

// Normalize gives an event recorded before fan-out (no Deliveries, one implicit
// destination) its one delivery, made of its event-level state, so that everything
// after reading works on deliveries alone.
func (e *Event) Normalize() {
	if len(e.Deliveries) > 0 || e.Phase == PhaseStored || e.Phase == "" {
		return
	}
	e.Deliveries = []DeliveryState{{
		Destination: DefaultDestination, Phase: e.Phase, Attempts: e.Attempts,
		LastAttemptAt: e.LastAttemptAt, NextAttemptAt: e.NextAttemptAt,
		LastResponseCode: e.LastResponseCode, LastError: e.LastError,
		DeliveredAt: e.DeliveredAt, AttemptBase: e.AttemptBase,
	}}
}

// Aggregate sets the event-level state from its deliveries: pending while any is
// (Retrying if one waits for a retry, Queued while none has started, else Delivering);
// once all finished, Failed if any failed, else Delivered. Attempts add up; the last
// attempt's code and error are the event's; the next attempt is the earliest pending
// one. With one destination the event's state is exactly its delivery's.
func (e *Event) Aggregate() {
	if len(e.Deliveries) == 0 {
		return
	}
	var (
		attempts, base                        int32
		pending, retrying, started, anyFailed bool
		allQueued                             = true
		last                                  *DeliveryState
		next, delivered                       *time.Time
	)
	for i := range e.Deliveries {
		d := &e.Deliveries[i]
		attempts += d.Attempts
		base += d.AttemptBase
		if d.LastAttemptAt != nil && (last == nil || last.LastAttemptAt == nil || d.LastAttemptAt.After(*last.LastAttemptAt)) {
			last = d
		}
		switch d.Phase {
		case PhaseQueued, PhaseRetrying, PhaseDelivering:
			pending = true
			retrying = retrying || d.Phase == PhaseRetrying
			started = started || d.Phase == PhaseDelivering
			if d.NextAttemptAt != nil && (next == nil || d.NextAttemptAt.Before(*next)) {
				next = d.NextAttemptAt
			}
		case PhaseFailed:
			anyFailed = true
		case PhaseDelivered:
			if d.DeliveredAt != nil && (delivered == nil || d.DeliveredAt.After(*delivered)) {
				delivered = d.DeliveredAt
			}
		}
		allQueued = allQueued && d.Phase == PhaseQueued
	}
	e.Attempts, e.AttemptBase, e.NextAttemptAt, e.DeliveredAt = attempts, base, next, nil
	e.LastAttemptAt, e.LastResponseCode, e.LastError = nil, 0, ""
	if last != nil {
		e.LastAttemptAt, e.LastResponseCode, e.LastError = last.LastAttemptAt, last.LastResponseCode, last.LastError
	}
	switch {
	case pending && retrying:
		e.Phase = PhaseRetrying
	case pending && (allQueued && !started):
		e.Phase = PhaseQueued
	case pending:
		e.Phase = PhaseDelivering
	case anyFailed:
		e.Phase = PhaseFailed
	default:
		e.Phase, e.DeliveredAt = PhaseDelivered, delivered
	}
	if e.Phase == PhaseFailed && e.LastError == "" {
		// A Failed event says why, also when the failed delivery made no attempt (its
		// destination was removed) and another's attempt is the latest.
		for i := range e.Deliveries {
			if d := &e.Deliveries[i]; d.Phase == PhaseFailed && d.LastError != "" {
				e.LastError = d.LastError
				break
			}
		}
	}
}

// DeliveredCount is how many of the event's deliveries are Delivered, of how many.
func (e *Event) DeliveredCount() (delivered, total int) {
	for i := range e.Deliveries {
		if e.Deliveries[i].Phase == PhaseDelivered {
			delivered++
		}
	}
	return delivered, len(e.Deliveries)
}

// ApplyAttempt records an attempt's outcome in the delivery's state and the event's
// aggregate; an unknown phase is an error and changes nothing.
func (e *Event) ApplyAttempt(d *DeliveryState, a Attempt, o Outcome) error {
	switch o.Phase {
	case PhaseDelivered, PhaseRetrying, PhaseFailed:
	default:
		return fmt.Errorf("an attempt cannot end in phase %q", o.Phase)
	}
	started := a.StartedAt
	d.Attempts = a.Number
	d.LastAttemptAt = &started
	d.LastResponseCode = a.ResponseCode
	d.LastError = a.Error
	d.Phase = o.Phase
	d.NextAttemptAt = nil
	switch o.Phase {
	case PhaseDelivered:
		at := a.StartedAt.Add(a.Duration)
		d.DeliveredAt = &at
	case PhaseRetrying:
		next := o.NextAttemptAt
		d.NextAttemptAt = &next
	}
	e.Aggregate()
	return nil
}

// AbandonDelivery finishes d as Failed without an attempt, reason its last error.
func (e *Event) AbandonDelivery(d *DeliveryState, reason string) {
	d.Phase, d.LastError, d.NextAttemptAt = PhaseFailed, reason, nil
	e.Aggregate()
}

// RequeueDeliveries queues the event's finished deliveries again, due at now: all of
// them when destination is "", else the one named. It returns the destinations queued.
func (e *Event) RequeueDeliveries(destination string, now time.Time) []string {
	var queued []string
	for i := range e.Deliveries {
		d := &e.Deliveries[i]
		if (destination != "" && d.Destination != destination) || !d.Finished() {
			continue
		}
		due := now
		d.Phase, d.AttemptBase, d.NextAttemptAt, d.DeliveredAt = PhaseQueued, d.Attempts, &due, nil
		queued = append(queued, d.Destination)
	}
	if len(queued) > 0 {
		e.Aggregate()
	}
	return queued
}

// RequeueFailedDeliveries queues the event's Failed deliveries again: every one when
// destination is "", else the one named.
func (e *Event) RequeueFailedDeliveries(destination string, now time.Time) []string {
	var queued []string
	for i := range e.Deliveries {
		if d := &e.Deliveries[i]; d.Phase == PhaseFailed && (destination == "" || d.Destination == destination) {
			due := now
			d.Phase, d.AttemptBase, d.NextAttemptAt = PhaseQueued, d.Attempts, &due
			queued = append(queued, d.Destination)
		}
	}
	if len(queued) > 0 {
		e.Aggregate()
	}
	return queued
}

// DueAt is when a delivery waiting in its queue is due.
func (e *Event) DueAt(d *DeliveryState) time.Time {
	if d.NextAttemptAt != nil {
		return *d.NextAttemptAt
	}
	return e.ReceivedAt
}
