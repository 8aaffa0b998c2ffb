package store

import (
	"context"
	"sync"
	"time"
)

// ChangeKind says what a change did to an event.
type ChangeKind uint8

const (
	ChangeAdded ChangeKind = iota + 1
	ChangeModified
	ChangeDeleted
)

// Change is one committed change of an event, for the events API's watches (kubectl get
// -w), told in commit order.
type Change struct {
	UUID string
	// Namespace is the event's partner namespace, so that a watch of another namespace
	// passes over it without reading the event.
	Namespace string
	Kind      ChangeKind
	// Position orders changes against a watch's start: a watch from resource version p
	// is told of every change whose position is at least p.
	Position uint64
	// Resume is the resource version of the watch event that tells of the change: a
	// watch started again from it misses no later change (it may repeat this one).
	Resume uint64
}

// ChangeFeed is a store that tells of its changes.
type ChangeFeed interface {
	// Changes is the log of the latest changes.
	Changes() *ChangeLog
	// ListPosition is the resource version of a read made after it returns: every
	// change with a position below it is in what that read sees.
	ListPosition(ctx context.Context) (uint64, error)
}

// DefaultChangeLogSize bounds the changes kept in memory for watches to start from: a
// watch from an older resource version gets 410 Gone and lists again. At a few thousand
// changes a second it is about half a minute, for a list and its watch a few
// milliseconds apart, and about 10 MiB.
const DefaultChangeLogSize = 1 << 17

// ChangeLog keeps the latest changes in memory, in the order they were committed, and
// wakes the watches reading it.
type ChangeLog struct {
	mu   sync.Mutex
	ring []Change
	// appended counts the changes ever appended: change number n is ring[n%len(ring)].
	appended uint64
	// complete: every change with a position at or above it is in the log (or was, and
	// its position is below lostBelow); a watch from below it may have missed some.
	complete uint64
	// epoch changes when the log missed changes (the feed was interrupted): a watch of
	// an earlier epoch may have missed some and must start again.
	epoch uint64
	// sequence numbers changes as they are appended (the embedded store's positions).
	sequence uint64
	wake     chan struct{}
	// started is closed once the log hears of changes: until then no watch is served.
	started     chan struct{}
	startedOnce sync.Once
}

// NewChangeLog makes a log of at most size changes (DefaultChangeLogSize when 0).
func NewChangeLog(size int) *ChangeLog {
	if size <= 0 {
		size = DefaultChangeLogSize
	}
	return &ChangeLog{ring: make([]Change, size), wake: make(chan struct{}), started: make(chan struct{})}
}

// Started is closed once the log hears of every change: its feed began (Restart), or,
// for the embedded store's own log, at once.
func (l *ChangeLog) Started() <-chan struct{} { return l.started }

// newSequencedChangeLog is the embedded store's log: it numbers changes itself, from a
// start taken from the clock, so that resource versions go on increasing across a
// restart (a watch from the previous run's is then too old, not misread).
func newSequencedChangeLog(size int) *ChangeLog {
	l := NewChangeLog(size)
	l.sequence = uint64(time.Now().UnixMicro()) //nolint:gosec // after 1970
	l.complete = l.sequence
	l.startedOnce.Do(func() { close(l.started) })
	return l
}

// appendSequenced numbers changes and appends them.
func (l *ChangeLog) appendSequenced(changes []Change) {
	if len(changes) == 0 {
		return
	}
	l.mu.Lock()
	for i := range changes {
		changes[i].Position, changes[i].Resume = l.sequence, l.sequence
		l.sequence++
	}
	l.appendLocked(changes)
	l.mu.Unlock()
}

// nextSequence is the position the next sequenced change takes.
func (l *ChangeLog) nextSequence() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sequence
}

// Append adds changes with their positions.
func (l *ChangeLog) Append(changes ...Change) {
	if len(changes) == 0 {
		return
	}
	l.mu.Lock()
	l.appendLocked(changes)
	l.mu.Unlock()
}

func (l *ChangeLog) appendLocked(changes []Change) {
	size := uint64(len(l.ring))
	for _, c := range changes {
		if l.appended >= size {
			// The change overwritten: a watch from at or below its position can no
			// longer be told of it.
			if dropped := l.ring[l.appended%size]; dropped.Position >= l.complete {
				l.complete = dropped.Position + 1
			}
		}
		l.ring[l.appended%size] = c
		l.appended++
	}
	close(l.wake)
	l.wake = make(chan struct{})
}

// Restart says that the log may have missed changes (its feed was interrupted): every
// watch reading it must start again, and only positions at or above complete are
// served from now on.
func (l *ChangeLog) Restart(complete uint64) {
	l.mu.Lock()
	l.epoch++
	l.complete = max(l.complete, complete)
	close(l.wake)
	l.wake = make(chan struct{})
	l.mu.Unlock()
	l.startedOnce.Do(func() { close(l.started) })
}

// ChangeCursor is a watch's place in the log.
type ChangeCursor struct {
	next, epoch uint64
}

// From is a cursor for a watch from position p, at the oldest change kept (the reader
// passes over those below p), and whether the log can serve it: false when changes at
// or above p may have been missed or dropped (410 Gone: list again).
func (l *ChangeLog) From(p uint64) (ChangeCursor, bool) {
	select {
	case <-l.started:
	default:
		return ChangeCursor{}, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	oldest := uint64(0)
	if size := uint64(len(l.ring)); l.appended > size {
		oldest = l.appended - size
	}
	return ChangeCursor{next: oldest, epoch: l.epoch}, p >= l.complete
}

// Read returns up to max changes after c, the cursor past them, and a channel closed
// when more come. lost: changes after c were overwritten, or the log restarted, before c
// read them (the watch must start again).
func (l *ChangeLog) Read(c ChangeCursor, limit int) (changes []Change, next ChangeCursor, more <-chan struct{}, lost bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	size := uint64(len(l.ring))
	if c.epoch != l.epoch || (l.appended > size && c.next < l.appended-size) {
		return nil, c, nil, true
	}
	for c.next < l.appended && len(changes) < limit {
		changes = append(changes, l.ring[c.next%size])
		c.next++
	}
	return changes, c, l.wake, false
}

// changeTx is a transaction of the embedded store that notes the changes of events it
// makes (putEvent and deleteEvent note them), for the change log once it is durable.
type changeTx struct {
	kvTx
	changes []Change
}

func noteChange(tx kvTx, e *Event, kind ChangeKind) {
	if ct, ok := tx.(*changeTx); ok {
		ct.changes = append(ct.changes, Change{UUID: e.UUID, Namespace: e.PartnerNamespace, Kind: kind})
	}
}

// Changes implements ChangeFeed.
func (s *Embedded) Changes() *ChangeLog { return s.changes }

// ListPosition implements ChangeFeed: the next change's number. A change committed
// before a read but appended after this call gets a number at or above it, so a watch
// from it repeats the change rather than misses it.
func (s *Embedded) ListPosition(context.Context) (uint64, error) {
	return s.changes.nextSequence(), nil
}
