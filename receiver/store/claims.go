package store

import (
	"bytes"
	"context"
	"fmt"
	"time"
)

// bucketLeases holds the claims: uuid \x00 queue key -> lease end(8) + owner. A claimed
// delivery's queue key is moved to its lease end, so that the queue scans (DueQueues,
// Due, Claim) need no second look: it is due again exactly when its lease runs out.
var bucketLeases = []byte("leases")

func leaseKey(e *Event, destination string) []byte {
	return []byte(e.UUID + "\x00" + QueueKey(e.EndpointKey(), destination))
}

// lease reads a delivery's claim, if it has one.
func lease(tx kvTx, e *Event, destination string) (owner string, until time.Time, ok bool) {
	v := tx.Bucket(bucketLeases).Get(leaseKey(e, destination))
	if len(v) < 8 {
		return "", time.Time{}, false
	}
	return string(v[8:]), keyTime(v[:8]), true
}

// queuedAt is the time under which an unfinished delivery sits in its queue: its lease
// end while claimed, else its due time.
func queuedAt(tx kvTx, e *Event, d *DeliveryState) time.Time {
	if _, until, ok := lease(tx, e, d.Destination); ok {
		return until
	}
	return e.DueAt(d)
}

// unqueue takes a delivery out of its queue, claim and all.
func unqueue(tx kvTx, e *Event, destination string) error {
	d := e.Delivery(destination)
	if d == nil {
		return nil
	}
	if err := tx.Bucket(bucketQueues).Delete(dueKey(e, destination, queuedAt(tx, e, d))); err != nil {
		return err
	}
	return tx.Bucket(bucketLeases).Delete(leaseKey(e, destination))
}

// setLease moves the delivery under until and records owner's claim.
func setLease(tx kvTx, e *Event, d *DeliveryState, owner string, until time.Time) error {
	queues := tx.Bucket(bucketQueues)
	if err := queues.Delete(dueKey(e, d.Destination, queuedAt(tx, e, d))); err != nil {
		return err
	}
	if err := queues.Put(dueKey(e, d.Destination, until), nil); err != nil {
		return err
	}
	return tx.Bucket(bucketLeases).Put(leaseKey(e, d.Destination), append(timeKey(until), owner...))
}

// dropLease gives the delivery back to its queue at its own due time.
func dropLease(tx kvTx, e *Event, d *DeliveryState) error {
	if err := unqueue(tx, e, d.Destination); err != nil {
		return err
	}
	return tx.Bucket(bucketQueues).Put(dueKey(e, d.Destination, e.DueAt(d)), nil)
}

// heldDelivery is the event and delivery of ref while owner's claim on it holds.
func heldDelivery(tx kvTx, ref DeliveryRef, owner string) (*Event, *DeliveryState, bool) {
	e, err := getEvent(tx, ref.UUID)
	if err != nil {
		return nil, nil, false
	}
	d := e.Delivery(ref.Destination)
	if d == nil {
		return nil, nil, false
	}
	if holder, _, ok := lease(tx, e, d.Destination); !ok || holder != owner {
		return nil, nil, false
	}
	return e, d, true
}

// Claim implements Store.
func (s *Embedded) Claim(ctx context.Context, queue, owner string, now time.Time, lease time.Duration, limit int) ([]Delivery, error) {
	if limit <= 0 {
		return nil, nil
	}
	_, _, destination, err := ParseQueueKey(queue)
	if err != nil {
		return nil, err
	}
	var out []Delivery
	err = s.write(ctx, func(tx kvTx) error {
		out = out[:0]
		c := tx.Bucket(bucketQueues).Cursor()
		prefix := []byte(queue + "\x00")
		end := timeKey(now)
		var uuids []string
		for k, _ := c.Seek(prefix); k != nil && len(uuids) < limit && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			rest := k[len(prefix):]
			if bytes.Compare(rest[:8], end) > 0 {
				break
			}
			uuids = append(uuids, string(rest[8:]))
		}
		until := now.Add(lease)
		for _, uuid := range uuids {
			e, err := getEvent(tx, uuid)
			if err != nil {
				return err
			}
			d := e.Delivery(destination)
			if d == nil {
				return fmt.Errorf("queue %q holds event %s, which has no such destination", queue, uuid)
			}
			if err := setLease(tx, e, d, owner, until); err != nil {
				return err
			}
			out = append(out, Delivery{Event: *e, Destination: destination})
		}
		return nil
	})
	return out, err
}

// RenewLeases implements Store.
func (s *Embedded) RenewLeases(ctx context.Context, owner string, refs []DeliveryRef, until time.Time) ([]DeliveryRef, error) {
	var lost []DeliveryRef
	err := s.write(ctx, func(tx kvTx) error {
		lost = lost[:0]
		for _, ref := range refs {
			e, d, ok := heldDelivery(tx, ref, owner)
			if !ok {
				lost = append(lost, ref)
				continue
			}
			if err := setLease(tx, e, d, owner, until); err != nil {
				return err
			}
		}
		return nil
	})
	return lost, err
}

// Release implements Store.
func (s *Embedded) Release(ctx context.Context, owner string, refs []DeliveryRef) error {
	if len(refs) == 0 {
		return nil
	}
	return s.write(ctx, func(tx kvTx) error {
		for _, ref := range refs {
			if e, d, ok := heldDelivery(tx, ref, owner); ok {
				if err := dropLease(tx, e, d); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// releaseDeadLeases gives back every claim in the file at open: the file lock means no
// other process holds it, so whoever made those claims is gone, and its deliveries need
// not wait for their leases to run out.
func releaseDeadLeases(tx kvTx) error {
	var held []DeliveryRef
	if err := tx.Bucket(bucketLeases).ForEach(func(k, _ []byte) error {
		uuid, queue, ok := bytes.Cut(k, []byte{0})
		if !ok {
			return nil
		}
		if _, _, dest, err := ParseQueueKey(string(queue)); err == nil {
			held = append(held, DeliveryRef{UUID: string(uuid), Destination: dest})
		}
		return nil
	}); err != nil {
		return err
	}
	for _, ref := range held {
		e, err := getEvent(tx, ref.UUID)
		if err != nil {
			continue
		}
		if d := e.Delivery(ref.Destination); d != nil {
			if err := dropLease(tx, e, d); err != nil {
				return err
			}
		}
	}
	return nil
}
