package eventstatus

import (
	"time"

	"github.com/hookgate/hookgate/receiver/store"
)

// item is one event handed to a worker.
type item struct {
	ev *store.Event
	// gone, when set, is the refusal the event's namespace answers every write with for
	// now (being deleted, or not there): the worker records it without asking again.
	gone *refusal
}

// refusal is a permanent refusal by the API server.
type refusal struct {
	reason, message string
}

// outcome is what a worker did with an item.
type outcome struct {
	ev *store.Event
	// class is 0 when the version is done (written, or refused for good and recorded).
	class   errorClass
	refused *refusal
	err     error
	// took is how long the API server took.
	took time.Duration
}

// namespaceState is the scheduler's view of one namespace.
type namespaceState struct {
	queue    []*store.Event // oldest first
	inflight int
	// until and delay: the namespace is backed off until then after a transient error;
	// delay doubles with each failure and is cleared by a success.
	until time.Time
	delay time.Duration
	// gone: every write into the namespace is refused until goneUntil.
	gone      *refusal
	goneUntil time.Time
	// slowUntil: a write was slow or failed; until then the namespace gets no more
	// than its share of the workers even when they are idle.
	slowUntil time.Time
}

// scheduler holds the events to write, per namespace. Only the reflector's loop uses it,
// so it needs no lock. It hands out events round-robin across namespaces, never two
// writes of one event at a time, and none of a namespace that is backed off.
//
// A namespace has perNamespace writes in flight at most while other namespaces have
// events waiting. When every namespace with events waiting is at that share, one whose
// writes are fast may take idle workers beyond it (a single namespace catching up uses
// most of the workers), but never the last perNamespace idle ones: those stay free for
// a namespace whose events arrive next. A namespace whose write was slow (over
// slowWrite) or failed in the last minute keeps to its share.
type scheduler struct {
	workers      int
	perNamespace int
	namespaces   map[string]*namespaceState
	ring         []string // namespaces with queued events, in round-robin order
	cursor       int
	queued       map[string]*store.Event // uuid -> its queued state
	queuedCount  int
	inflight     map[string]bool // uuids being written
	// marked holds the versions done since the current scan began: that scan may have
	// read the store before they were marked.
	marked map[string]uint64
	// until and delay back off every write after a connection or store error.
	until time.Time
	delay time.Duration
}

func newScheduler(workers, perNamespace int) *scheduler {
	return &scheduler{
		workers:      workers,
		perNamespace: min(perNamespace, workers),
		namespaces:   map[string]*namespaceState{},
		queued:       map[string]*store.Event{},
		inflight:     map[string]bool{},
		marked:       map[string]uint64{},
	}
}

func (s *scheduler) state(ns string) *namespaceState {
	st := s.namespaces[ns]
	if st == nil {
		st = &namespaceState{}
		s.namespaces[ns] = st
	}
	return st
}

// offer queues the scanned events that are not queued, in flight or done yet, and
// updates queued ones to their newest state (coalescing). It reports how many it added,
// and how many it held back because their namespace is backed off.
func (s *scheduler) offer(events []store.Event, now time.Time) (added, heldBack int) {
	for i := range events {
		ev := &events[i]
		if s.inflight[ev.UUID] {
			continue // its newer state is written after this write
		}
		if v, ok := s.marked[ev.UUID]; ok && v >= ev.Version {
			continue
		}
		if q := s.queued[ev.UUID]; q != nil {
			if ev.Version > q.Version {
				*q = *ev
			}
			continue
		}
		ns := ev.PartnerNamespace
		st := s.state(ns)
		if now.Before(st.until) {
			heldBack++
			continue
		}
		if len(st.queue) == 0 {
			s.ring = append(s.ring, ns)
		}
		st.queue = append(st.queue, ev)
		s.queued[ev.UUID] = ev
		s.queuedCount++
		added++
	}
	return added, heldBack
}

// next is the event to hand out now, or nil: the oldest queued event of the next
// namespace in round-robin order that is below its share of the workers, else of the
// next one that may borrow idle workers.
func (s *scheduler) next(now time.Time) *item {
	if len(s.ring) == 0 || now.Before(s.until) {
		return nil
	}
	borrow := len(s.inflight) < s.workers-s.perNamespace
	var lender *namespaceState
	for i := range s.ring {
		ns := s.ring[(s.cursor+i)%len(s.ring)]
		st := s.namespaces[ns]
		if len(st.queue) == 0 {
			continue
		}
		if st.inflight < s.perNamespace {
			return st.item(now)
		}
		if lender == nil && borrow && !now.Before(st.slowUntil) {
			lender = st
		}
	}
	if lender != nil {
		return lender.item(now)
	}
	return nil
}

func (st *namespaceState) item(now time.Time) *item {
	it := &item{ev: st.queue[0]}
	if st.gone != nil && now.Before(st.goneUntil) {
		it.gone = st.gone
	}
	return it
}

// take records that it, as returned by next, went to a worker.
func (s *scheduler) take(it *item) {
	ns := it.ev.PartnerNamespace
	st := s.namespaces[ns]
	st.queue = st.queue[1:]
	st.inflight++
	delete(s.queued, it.ev.UUID)
	s.queuedCount--
	s.inflight[it.ev.UUID] = true
	i := s.ringIndex(ns)
	s.cursor = i + 1
	if len(st.queue) == 0 {
		s.removeFromRing(i)
	}
	if s.cursor >= len(s.ring) {
		s.cursor = 0
	}
}

func (s *scheduler) ringIndex(ns string) int {
	for i, n := range s.ring {
		if n == ns {
			return i
		}
	}
	return -1
}

func (s *scheduler) removeFromRing(i int) {
	if i < 0 {
		return
	}
	s.ring = append(s.ring[:i], s.ring[i+1:]...)
	if s.cursor > i {
		s.cursor--
	}
}

// finished releases an event's write.
func (s *scheduler) finished(ev *store.Event) *namespaceState {
	delete(s.inflight, ev.UUID)
	st := s.state(ev.PartnerNamespace)
	st.inflight--
	return st
}

// slow keeps ev's namespace to its share of the workers for a while.
func (s *scheduler) slow(ev *store.Event, now time.Time) {
	s.state(ev.PartnerNamespace).slowUntil = now.Add(slowFor)
}

// succeeded records that ev's version is done (written, or refused for good).
func (s *scheduler) succeeded(ev *store.Event, now time.Time) {
	st := s.finished(ev)
	s.marked[ev.UUID] = ev.Version
	st.delay, s.delay = 0, 0
	if st.gone != nil && !now.Before(st.goneUntil) {
		st.gone = nil
	}
	s.forget(ev.PartnerNamespace, st, now)
}

// gone records that every write into ns is refused for the given reason until until.
func (s *scheduler) gone(ns string, r *refusal, until time.Time) {
	st := s.state(ns)
	if st.gone == nil || until.After(st.goneUntil) {
		st.gone, st.goneUntil = r, until
	}
}

// backoffNamespace backs off ev's namespace after a transient error and drops its
// queued events (later scans offer them again). It reports the delay, and whether the
// backoff started now (not already running).
func (s *scheduler) backoffNamespace(ev *store.Event, now time.Time) (time.Duration, bool) {
	ns := ev.PartnerNamespace
	st := s.finished(ev)
	if now.Before(st.until) {
		return st.delay, false
	}
	st.delay = min(max(2*st.delay, minBackoff), maxBackoff)
	st.until = now.Add(st.delay)
	for _, q := range st.queue {
		delete(s.queued, q.UUID)
	}
	s.queuedCount -= len(st.queue)
	if len(st.queue) > 0 {
		s.removeFromRing(s.ringIndex(ns))
		if s.cursor >= len(s.ring) {
			s.cursor = 0
		}
	}
	st.queue = nil
	return st.delay, true
}

// backoffAll pauses every write after a connection or store error.
func (s *scheduler) backoffAll(now time.Time) (time.Duration, bool) {
	if now.Before(s.until) {
		return s.delay, false
	}
	s.delay = min(max(2*s.delay, minBackoff), maxBackoff)
	s.until = now.Add(s.delay)
	return s.delay, true
}

// forget drops the state of a namespace that has nothing left to remember.
func (s *scheduler) forget(ns string, st *namespaceState, now time.Time) {
	if len(st.queue) == 0 && st.inflight == 0 && st.delay == 0 && st.gone == nil && !now.Before(st.until) && !now.Before(st.slowUntil) {
		delete(s.namespaces, ns)
	}
}
