package delivery

import (
	"sync"
	"time"
)

// A destination that keeps failing (timeouts, connection errors, 429 and 5xx) gets its
// circuit opened: its deliveries wait instead of holding workers, and after a cool-down
// one probe delivery is let through. A probe that succeeds closes the circuit; one that
// fails opens it again for twice as long, up to circuitMaxCooldown.
const (
	circuitThreshold       = 5 // consecutive failed attempts that open a circuit
	circuitInitialCooldown = 30 * time.Second
	circuitMaxCooldown     = 10 * time.Minute
)

type circuitState int

const (
	circuitClosed circuitState = iota
	circuitOpen
	circuitHalfOpen // open, cooled down, one probe in flight
)

type circuit struct {
	state     circuitState
	failures  int
	openUntil time.Time
	cooldown  time.Duration
}

// circuits keeps one breaker per delivery queue (destination).
type circuits struct {
	mu sync.Mutex
	by map[string]*circuit
	// onChange, when set, hears every opening and closing (events, metrics, logs).
	onChange func(queue string, open bool)
}

func newCircuits(onChange func(queue string, open bool)) *circuits {
	return &circuits{by: map[string]*circuit{}, onChange: onChange}
}

// admit reports whether a delivery of queue may start now; for an open circuit whose
// cool-down is over it admits exactly one, the probe.
func (c *circuits) admit(queue string, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	cb := c.by[queue]
	switch {
	case cb == nil || cb.state == circuitClosed:
		return true
	case cb.state == circuitOpen && !now.Before(cb.openUntil):
		cb.state = circuitHalfOpen
		return true
	default:
		return false
	}
}

// mayAdmit reports, without admitting, whether admit would: the dispatcher claims no
// delivery for a destination it could not start.
func (c *circuits) mayAdmit(queue string, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	cb := c.by[queue]
	return cb == nil || cb.state == circuitClosed || cb.state == circuitOpen && !now.Before(cb.openUntil)
}

// probing reports whether queue's circuit is not closed: it admits one delivery at a time.
func (c *circuits) probing(queue string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	cb := c.by[queue]
	return cb != nil && cb.state != circuitClosed
}

// record takes the result of an attempt of queue.
func (c *circuits) record(queue string, failed bool, now time.Time) {
	c.mu.Lock()
	cb := c.by[queue]
	if cb == nil {
		if !failed {
			c.mu.Unlock()
			return
		}
		cb = &circuit{}
		c.by[queue] = cb
	}
	var changed, open bool
	switch {
	case !failed:
		changed = cb.state != circuitClosed
		delete(c.by, queue)
	case cb.state == circuitHalfOpen:
		cb.cooldown = min(2*cb.cooldown, circuitMaxCooldown)
		cb.state, cb.openUntil = circuitOpen, now.Add(cb.cooldown)
	case cb.state == circuitClosed:
		cb.failures++
		if cb.failures >= circuitThreshold {
			cb.cooldown = circuitInitialCooldown
			cb.state, cb.openUntil = circuitOpen, now.Add(cb.cooldown)
			changed, open = true, true
		}
	}
	onChange := c.onChange
	c.mu.Unlock()
	if changed && onChange != nil {
		onChange(queue, open)
	}
}

// open lists the queues whose circuits are open (half-open included).
func (c *circuits) open() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for q, cb := range c.by {
		if cb.state != circuitClosed {
			out = append(out, q)
		}
	}
	return out
}

// abandon gives back an admission that made no attempt (the event changed meanwhile, or
// the receiver is shutting down): a half-open circuit may probe again.
func (c *circuits) abandon(queue string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cb := c.by[queue]; cb != nil && cb.state == circuitHalfOpen {
		cb.state = circuitOpen
	}
}
