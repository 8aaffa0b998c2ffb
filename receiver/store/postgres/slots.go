package postgres

import (
	"context"
	"sync"
)

// partnerSlots bounds the connections one partner's requests hold at once to a share of
// the pool: past it they wait in the receiver (their request's deadline bounds the wait)
// instead of taking the connections every other tenant's ingest, claims and attempt
// records need.
type partnerSlots struct {
	share int

	mu      sync.Mutex
	held    map[string]int
	waiting map[string][]chan struct{}
}

func newPartnerSlots(share int) *partnerSlots {
	return &partnerSlots{share: max(share, 1), held: map[string]int{}, waiting: map[string][]chan struct{}{}}
}

// acquire takes one of partner's slots, waiting for one while ctx lasts.
func (p *partnerSlots) acquire(ctx context.Context, partner string) (func(), error) {
	p.mu.Lock()
	if p.held[partner] < p.share {
		p.held[partner]++
		p.mu.Unlock()
		return func() { p.release(partner) }, nil
	}
	turn := make(chan struct{})
	p.waiting[partner] = append(p.waiting[partner], turn)
	p.mu.Unlock()
	select {
	case <-turn: // release handed its slot over
		return func() { p.release(partner) }, nil
	case <-ctx.Done():
		p.mu.Lock()
		defer p.mu.Unlock()
		for i, w := range p.waiting[partner] {
			if w == turn {
				p.waiting[partner] = append(p.waiting[partner][:i:i], p.waiting[partner][i+1:]...)
				if len(p.waiting[partner]) == 0 {
					delete(p.waiting, partner)
				}
				return nil, ctx.Err()
			}
		}
		// The slot was handed over as ctx ended: give it on.
		p.releaseLocked(partner)
		return nil, ctx.Err()
	}
}

func (p *partnerSlots) release(partner string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.releaseLocked(partner)
}

func (p *partnerSlots) releaseLocked(partner string) {
	if q := p.waiting[partner]; len(q) > 0 {
		close(q[0]) // the slot passes to the first waiter, held stays
		if p.waiting[partner] = q[1:]; len(p.waiting[partner]) == 0 {
			delete(p.waiting, partner)
		}
		return
	}
	if p.held[partner]--; p.held[partner] <= 0 {
		delete(p.held, partner)
	}
}

// partnerSlot takes one of the partner's connection slots for a partner-facing call that
// holds a connection of its own (the event list).
func (s *Store) partnerSlot(ctx context.Context, partner string) (func(), error) {
	return s.slots.acquire(ctx, partner)
}
