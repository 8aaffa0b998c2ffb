package postgres

import (
	"context"
	"sync"

	"github.com/hookgate/hookgate/receiver/store"
)

// batchQueue gathers concurrent calls for group commits: callers send their operation
// and wait for it to be answered; each of a few committers takes whatever is waiting (up
// to a batch's size, with no added wait: under load the queue fills while the previous
// batch commits) and writes it in one transaction. Ingest and attempt records each have
// one (ingestbatch.go, attemptbatch.go).
//
// The queue is fair between tenants: each namespace waits in a line of its own, bounded
// on its own, and a batch takes from the lines in turn. A namespace sending on hundreds
// of connections therefore fills its own line only; another namespace's operation goes
// into the next batch instead of waiting behind all of them, and its send never blocks
// because the busy namespace's line is full.
type batchQueue[T any] struct {
	maxBatch int
	// maxQueued bounds one namespace's line: past it, its senders wait for room.
	maxQueued int
	tenant    func(T) string

	mu sync.Mutex
	// lines holds each namespace's waiting operations; turns lists the namespaces with
	// any, in the order the next batch visits them.
	lines   map[string][]T
	turns   []string
	room    chan struct{} // closed, and replaced, each time a batch is taken
	stopped bool

	ready chan struct{} // a token for a committer: something is waiting
	done  chan struct{} // closed by stop
	wg    sync.WaitGroup
}

// newBatchQueue starts committers goroutines, each writing its batches with the function
// newCommitter returns for it (so that a committer can own state, such as a usage shard).
// tenant names the namespace an operation counts against.
func newBatchQueue[T any](committers, maxBatch int, tenant func(T) string, newCommitter func() func(batch []T)) *batchQueue[T] {
	q := &batchQueue[T]{
		maxBatch: maxBatch, maxQueued: 4 * maxBatch, tenant: tenant,
		lines: map[string][]T{}, room: make(chan struct{}),
		ready: make(chan struct{}, 1), done: make(chan struct{}),
	}
	for range committers {
		commit := newCommitter()
		q.wg.Go(func() { q.run(commit) })
	}
	return q
}

func (q *batchQueue[T]) run(commit func(batch []T)) {
	for {
		batch, more := q.take()
		if more {
			q.wake() // what this batch left is another committer's
		}
		if len(batch) > 0 {
			commit(batch)
			continue
		}
		select {
		case <-q.ready:
		case <-q.done:
			return
		}
	}
}

// take removes up to maxBatch operations, one from each namespace's line in turn, and
// says whether any are left.
func (q *batchQueue[T]) take() (batch []T, more bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.stopped || len(q.turns) == 0 {
		return nil, false
	}
	for len(batch) < q.maxBatch && len(q.turns) > 0 {
		// One round: one operation from each line. A round the batch cuts short leaves the
		// namespaces it did not reach first in line for the next batch.
		var visited []string
		i := 0
		for ; i < len(q.turns) && len(batch) < q.maxBatch; i++ {
			ns := q.turns[i]
			line := q.lines[ns]
			batch = append(batch, line[0])
			var zero T
			line[0] = zero // the line's array must not keep an answered operation alive
			if line = line[1:]; len(line) == 0 {
				delete(q.lines, ns)
				continue
			}
			q.lines[ns] = line
			visited = append(visited, ns)
		}
		q.turns = append(q.turns[i:len(q.turns):len(q.turns)], visited...)
	}
	close(q.room)
	q.room = make(chan struct{})
	return batch, len(q.turns) > 0
}

func (q *batchQueue[T]) wake() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// send queues op for a batch: store.ErrClosed once the queue stops, ctx's error when the
// caller gives up before op is queued (while its namespace's line is full).
func (q *batchQueue[T]) send(ctx context.Context, op T) error {
	ns := q.tenant(op)
	for {
		q.mu.Lock()
		if q.stopped {
			q.mu.Unlock()
			return store.ErrClosed
		}
		line, waiting := q.lines[ns]
		if len(line) < q.maxQueued {
			if !waiting {
				q.turns = append(q.turns, ns)
			}
			q.lines[ns] = append(line, op)
			q.mu.Unlock()
			q.wake()
			return nil
		}
		room := q.room
		q.mu.Unlock()
		select {
		case <-room:
		case <-q.done:
			return store.ErrClosed
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// stop lets the committers finish their batch, hands what is still queued to abandon
// and waits for them.
func (q *batchQueue[T]) stop(abandon func(T)) {
	q.mu.Lock()
	q.stopped = true
	close(q.done)
	q.mu.Unlock()
	q.wg.Wait()
	for _, ns := range q.turns {
		for _, op := range q.lines[ns] {
			abandon(op)
		}
	}
	q.lines, q.turns = nil, nil
}
