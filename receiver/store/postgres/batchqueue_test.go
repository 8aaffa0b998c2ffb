package postgres

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hookgate/hookgate/receiver/store"
)

type queuedOp struct {
	ns string
	n  int
}

// heldQueue is a queue whose one committer records each batch and then waits for the
// test's word, so that the test decides what is waiting when the next batch is taken.
type heldQueue struct {
	q       *batchQueue[queuedOp]
	batches chan []queuedOp
	proceed chan struct{}
}

func newHeldQueue(t *testing.T, maxBatch int) *heldQueue {
	h := &heldQueue{batches: make(chan []queuedOp, 100), proceed: make(chan struct{})}
	h.q = newBatchQueue(1, maxBatch, func(op queuedOp) string { return op.ns }, func() func([]queuedOp) {
		return func(batch []queuedOp) {
			h.batches <- batch
			<-h.proceed
		}
	})
	t.Cleanup(func() {
		close(h.proceed)
		h.q.stop(func(queuedOp) {})
	})
	return h
}

func (h *heldQueue) send(t *testing.T, ns string, n int) {
	t.Helper()
	if err := h.q.send(context.Background(), queuedOp{ns, n}); err != nil {
		t.Fatalf("send %s/%d: %v", ns, n, err)
	}
}

func (h *heldQueue) next(t *testing.T) []queuedOp {
	t.Helper()
	select {
	case b := <-h.batches:
		return b
	case <-time.After(10 * time.Second):
		t.Fatal("no batch was committed")
		return nil
	}
}

// A namespace that queued many operations does not keep another's out of the next batch.
func TestBatchQueueTakesFromEachNamespaceInTurn(t *testing.T) {
	h := newHeldQueue(t, 4)
	h.send(t, "loud", 0)
	if got := h.next(t); len(got) != 1 { // the committer is now held inside this batch
		t.Fatalf("first batch %v", got)
	}
	for i := 1; i <= 10; i++ {
		h.send(t, "loud", i)
	}
	h.send(t, "quiet", 1)
	h.send(t, "quiet", 2)
	h.proceed <- struct{}{}
	got := h.next(t)
	want := []queuedOp{{"loud", 1}, {"quiet", 1}, {"loud", 2}, {"quiet", 2}}
	if !slices.Equal(got, want) {
		t.Fatalf("second batch = %v, want %v", got, want)
	}
	h.proceed <- struct{}{}
	if got := h.next(t); !slices.Equal(got, []queuedOp{{"loud", 3}, {"loud", 4}, {"loud", 5}, {"loud", 6}}) {
		t.Fatalf("third batch = %v: each namespace's operations keep their order", got)
	}
}

// A batch that fills in the middle of a round starts the next batch with the namespaces
// the round did not reach.
func TestBatchQueueRoundCutShortGoesOnWhereItStopped(t *testing.T) {
	h := newHeldQueue(t, 2)
	h.send(t, "a", 0)
	h.next(t)
	for _, ns := range []string{"a", "b", "c"} {
		h.send(t, ns, 1)
		h.send(t, ns, 2)
	}
	var order []string
	for range 3 {
		h.proceed <- struct{}{}
		for _, op := range h.next(t) {
			order = append(order, op.ns)
		}
	}
	if want := []string{"a", "b", "c", "a", "b", "c"}; !slices.Equal(order, want) {
		t.Fatalf("taken in order %v, want %v", order, want)
	}
}

// A namespace whose line is full waits for room; another namespace's send does not.
func TestBatchQueueFullLineBlocksOnlyItsNamespace(t *testing.T) {
	h := newHeldQueue(t, 1)
	h.send(t, "loud", 0)
	h.next(t)
	for i := range h.q.maxQueued {
		h.send(t, "loud", i+1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := h.q.send(ctx, queuedOp{"loud", -1}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("send to a full line = %v, want it to wait until the caller gives up", err)
	}
	h.send(t, "quiet", 1) // returns at once: its line is empty

	var wg sync.WaitGroup
	sent := make(chan error, 1)
	wg.Go(func() { sent <- h.q.send(context.Background(), queuedOp{"loud", -2}) })
	h.proceed <- struct{}{} // a batch is taken: room in the loud line
	if got := h.next(t); len(got) != 1 {
		t.Fatalf("batch %v", got)
	}
	wg.Wait()
	if err := <-sent; err != nil {
		t.Fatalf("send after room was made: %v", err)
	}
}

// Stop answers what is still queued through abandon, and later sends are refused.
func TestBatchQueueStopAbandonsWhatWaits(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	q := newBatchQueue(1, 1, func(op queuedOp) string { return op.ns }, func() func([]queuedOp) {
		return func([]queuedOp) {
			started <- struct{}{}
			<-release
		}
	})
	ctx := context.Background()
	if err := q.send(ctx, queuedOp{"a", 0}); err != nil {
		t.Fatal(err)
	}
	<-started
	for i := 1; i <= 3; i++ {
		if err := q.send(ctx, queuedOp{"b", i}); err != nil {
			t.Fatal(err)
		}
	}
	var abandoned []queuedOp
	stopped := make(chan struct{})
	go func() {
		q.stop(func(op queuedOp) { abandoned = append(abandoned, op) })
		close(stopped)
	}()
	for stopping := false; !stopping; { // the committer must not take b's before stop
		time.Sleep(time.Millisecond)
		q.mu.Lock()
		stopping = q.stopped
		q.mu.Unlock()
	}
	close(release)
	<-stopped
	if want := []queuedOp{{"b", 1}, {"b", 2}, {"b", 3}}; !slices.Equal(abandoned, want) {
		t.Fatalf("abandoned %v, want %v", abandoned, want)
	}
	if err := q.send(ctx, queuedOp{"a", 9}); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("send after stop = %v, want ErrClosed", err)
	}
}
