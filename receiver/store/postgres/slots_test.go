package postgres

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// One partner holds at most its share of the slots; its further calls wait, and a wait
// whose context ends gives up without taking a slot, while another partner is never
// held up.
func TestPartnerSlots(t *testing.T) {
	slots := newPartnerSlots(2)
	ctx := context.Background()
	var held []func()
	for range 2 {
		release, err := slots.acquire(ctx, "a/busy")
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, release)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := slots.acquire(short, "a/busy"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a third slot for a/busy: %v, want to wait until the deadline", err)
	}
	other, err := slots.acquire(ctx, "b/quiet")
	if err != nil {
		t.Fatalf("another partner waits for a/busy: %v", err)
	}
	other()
	var wg sync.WaitGroup
	got := make(chan func(), 1)
	wg.Go(func() {
		release, err := slots.acquire(ctx, "a/busy")
		if err != nil {
			t.Error(err)
			return
		}
		got <- release
	})
	time.Sleep(20 * time.Millisecond)
	held[0]() // hands the slot to the waiter
	wg.Wait()
	(<-got)()
	held[1]()
	slots.mu.Lock()
	defer slots.mu.Unlock()
	if len(slots.held) != 0 || len(slots.waiting) != 0 {
		t.Fatalf("after every release: held %v, waiting %v; want none", slots.held, slots.waiting)
	}
}
