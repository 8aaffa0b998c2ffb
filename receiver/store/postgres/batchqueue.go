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
type batchQueue[T any] struct {
	ops      chan T
	maxBatch int
	mu       sync.RWMutex // held for reading by each send; stop takes it to end them
	stopped  chan struct{}
	wg       sync.WaitGroup
}

// newBatchQueue starts committers goroutines, each writing its batches with the function
// newCommitter returns for it (so that a committer can own state, such as a usage shard).
func newBatchQueue[T any](committers, maxBatch int, newCommitter func() func(batch []T)) *batchQueue[T] {
	q := &batchQueue[T]{ops: make(chan T, 4*maxBatch), maxBatch: maxBatch, stopped: make(chan struct{})}
	for range committers {
		commit := newCommitter()
		q.wg.Go(func() { q.run(commit) })
	}
	return q
}

func (q *batchQueue[T]) run(commit func(batch []T)) {
	for {
		var first T
		select {
		case first = <-q.ops:
		case <-q.stopped:
			return
		}
		batch := []T{first}
	gather:
		for len(batch) < q.maxBatch {
			select {
			case op := <-q.ops:
				batch = append(batch, op)
			default:
				break gather
			}
		}
		commit(batch)
	}
}

// send queues op for a batch: store.ErrClosed once the queue stops, ctx's error when the
// caller gives up before op is queued.
func (q *batchQueue[T]) send(ctx context.Context, op T) error {
	q.mu.RLock()
	defer q.mu.RUnlock()
	select {
	case <-q.stopped:
		return store.ErrClosed
	default:
	}
	select {
	case q.ops <- op:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stop lets the committers finish their batch, hands what is still queued to abandon
// and waits for them.
func (q *batchQueue[T]) stop(abandon func(T)) {
	q.mu.Lock()
	close(q.stopped)
	q.mu.Unlock()
	q.wg.Wait()
	for {
		select {
		case op := <-q.ops:
			abandon(op)
		default:
			return
		}
	}
}
