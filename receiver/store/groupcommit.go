package store

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// The embedded store's writes go through one committer goroutine: it takes whatever is
// waiting in the queue, applies it in one transaction and one fsync, and answers each
// writer once that is on disk.
//
// On an engine that can commit without waiting for the fsync (Pebble: a batch is
// applied and readable before its log write is synced, whether or not the committer
// waits), the wait is handed to a second goroutine, the syncer, and the committer goes
// on to build the next group while the disk syncs this one; the write-ahead log syncs
// the groups that arrived during one fsync with the next. Nobody is answered before
// their group is synced, so "answered" still means "durable". On bbolt, whose commit is
// its fsync, the committer waits and answers itself.

// writeOp is one write waiting for a group commit.
type writeOp struct {
	apply func(tx kvTx) error
	done  chan error
	// grows is the bytes of new data the op stores (an event), which the disk's reserve
	// must admit; 0 for updates and deletions, which always go ahead.
	grows int64
}

// pipelinedEngine is an engine whose update can return before its fsync.
type pipelinedEngine interface {
	// updateNoSyncWait is update, returning once the transaction is applied (its writes
	// visible to the next transaction) with wait, which returns once it is durable (at
	// once when it wrote nothing). wait is nil only with an error.
	updateNoSyncWait(fn func(tx kvTx) error) (wait func() error, err error)
}

// syncingGroups bounds the groups applied and waiting for their fsync: the committer
// waits for room, so memory stays bounded when the disk is slow.
const syncingGroups = 8

// syncingGroup is a group the committer applied, waiting for its fsync.
type syncingGroup struct {
	ops     []*writeOp
	failed  []error
	wait    func() error
	started time.Time
	changes []Change
}

func (s *Embedded) commitLoop() {
	defer close(s.syncing)
	for {
		var ops []*writeOp
		select {
		case op := <-s.writes:
			ops = append(make([]*writeOp, 0, 64), op)
		case <-s.closing:
			// Fail whatever is still queued.
			for {
				select {
				case op := <-s.writes:
					op.done <- ErrClosed
				default:
					return
				}
			}
		}
	fill:
		for len(ops) < maxBatch {
			select {
			case op := <-s.writes:
				ops = append(ops, op)
			default:
				break fill
			}
		}
		s.commit(ops)
	}
}

// syncLoop answers the groups the committer applied, in order, as each is synced.
func (s *Embedded) syncLoop() {
	defer close(s.done)
	for g := range s.syncing {
		err := g.wait()
		if err == nil {
			s.changes.appendSequenced(g.changes) // durable: watches may tell of it
		}
		s.finish(g.ops, g.failed, err, g.started)
	}
}

// commit applies a group in one transaction. An op whose apply fails is left out by
// re-running the group without it, so that one bad op cannot fail the others.
func (s *Embedded) commit(ops []*writeOp) {
	started := time.Now()
	failed := make([]error, len(ops))
	var grows int64
	for _, op := range ops {
		grows += op.grows
	}
	if grows > 0 {
		if err := s.room.admit(grows); err != nil {
			for i, op := range ops {
				if op.grows > 0 {
					failed[i] = err
				}
			}
		}
	}
	// Until nothing of the group is left to commit:
	for slices.ContainsFunc(failed, func(err error) bool { return err == nil }) {
		var bad = -1
		wait, changes, err := s.apply(func(tx kvTx) error {
			for i, op := range ops {
				if failed[i] != nil {
					continue
				}
				if err := op.apply(tx); err != nil {
					failed[i], bad = err, i
					return err
				}
			}
			return nil
		})
		if err != nil && bad >= 0 {
			continue // retry the group without the failed op
		}
		if s.pipelined == nil {
			if err == nil {
				s.changes.appendSequenced(changes)
			}
			s.finish(ops, failed, err, started)
			return
		}
		// Every group goes through the syncer, in order, even one that wrote nothing (a
		// duplicate): its answer rests on what the groups before it wrote, which must be
		// on disk first.
		if err != nil {
			failure := err
			wait = func() error { return failure }
		}
		s.syncing <- syncingGroup{ops: ops, failed: failed, wait: wait, started: started, changes: changes}
		return
	}
	answer(ops, failed, nil)
}

// apply runs fn in one transaction: committed and durable when it returns on an engine
// that does not pipeline, applied and durable once wait returns on one that does. It
// returns the changes of events the transaction made, for the change log once durable.
func (s *Embedded) apply(fn func(tx kvTx) error) (wait func() error, changes []Change, err error) {
	tx := &changeTx{}
	record := func(inner kvTx) error {
		tx.kvTx, tx.changes = inner, tx.changes[:0]
		return fn(tx)
	}
	if s.pipelined != nil {
		wait, err = s.pipelined.updateNoSyncWait(record)
		return wait, tx.changes, err
	}
	return nil, tx.changes, s.eng.update(record)
}

// finish records a group's commit and answers its writers.
func (s *Embedded) finish(ops []*writeOp, failed []error, err error, started time.Time) {
	if err != nil {
		s.lastErr.Store(&err)
		s.failures.Add(1)
	} else {
		s.lastErr.Store(nil)
	}
	// Observed before anyone is answered, so that a caller who got its answer also
	// sees its commit counted.
	s.observe(time.Since(started), len(ops))
	answer(ops, failed, err)
}

// answer tells each op of a group its outcome: its own failure, else the commit's.
func answer(ops []*writeOp, failed []error, err error) {
	for i, op := range ops {
		if failed[i] != nil {
			op.done <- failed[i]
		} else {
			op.done <- err
		}
	}
}

// write queues apply for the next group commit and waits until it is durable.
func (s *Embedded) write(ctx context.Context, apply func(tx kvTx) error) error {
	return s.writeGrowing(ctx, 0, apply)
}

// writeGrowing is write for an op that stores grows bytes of new data.
func (s *Embedded) writeGrowing(ctx context.Context, grows int64, apply func(tx kvTx) error) error {
	s.closeMu.RLock()
	if s.closed.Load() {
		s.closeMu.RUnlock()
		return ErrClosed
	}
	op := &writeOp{apply: apply, done: make(chan error, 1), grows: grows}
	select {
	case s.writes <- op:
	default:
		// The queue is full: wait for room, as long as ctx and the store's own bound let.
		timer := time.NewTimer(s.queueWait)
		defer timer.Stop()
		select {
		case s.writes <- op:
		case <-ctx.Done():
			s.closeMu.RUnlock()
			return ctx.Err()
		case <-timer.C:
			s.closeMu.RUnlock()
			return fmt.Errorf("the store's commit queue stayed full for %s: %w", s.queueWait, context.DeadlineExceeded)
		}
	}
	s.closeMu.RUnlock()
	// Once queued, the op is committed or failed by the loop; waiting for it even past
	// ctx keeps "answered" and "durable" the same thing.
	return <-op.done
}
