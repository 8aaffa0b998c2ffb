package store

import (
	"bytes"
	"context"
	"time"

	bolt "go.etcd.io/bbolt"
)

// bucketLeases holds the claims: uuid \x00 queue key -> lease end(8) + owner. A claimed
// delivery's queue key is moved to its lease end, so that the queue scans (DueQueues,
// Due, Claim) need no second look: it is due again exactly when its lease runs out.
var bucketLeases = []byte("leases")

func leaseKey(e *Event) []byte { return []byte(e.UUID + "\x00" + QueueKey(e)) }

// lease reads an event's claim, if it has one.
func lease(tx *bolt.Tx, e *Event) (owner string, until time.Time, ok bool) {
	v := tx.Bucket(bucketLeases).Get(leaseKey(e))
	if len(v) < 8 {
		return "", time.Time{}, false
	}
	return string(v[8:]), keyTime(v[:8]), true
}

// queuedAt is the time under which an unfinished event's delivery sits in its queue:
// its lease end while claimed, else its due time.
func queuedAt(tx *bolt.Tx, e *Event) time.Time {
	if _, until, ok := lease(tx, e); ok {
		return until
	}
	return dueAt(e)
}

// unqueue takes an event's delivery out of its queue, claim and all.
func unqueue(tx *bolt.Tx, e *Event) error {
	if err := tx.Bucket(bucketQueues).Delete(dueKey(e, queuedAt(tx, e))); err != nil {
		return err
	}
	return tx.Bucket(bucketLeases).Delete(leaseKey(e))
}

// setLease moves the delivery under until and records owner's claim.
func setLease(tx *bolt.Tx, e *Event, owner string, until time.Time) error {
	queues := tx.Bucket(bucketQueues)
	if err := queues.Delete(dueKey(e, queuedAt(tx, e))); err != nil {
		return err
	}
	if err := queues.Put(dueKey(e, until), nil); err != nil {
		return err
	}
	return tx.Bucket(bucketLeases).Put(leaseKey(e), append(timeKey(until), owner...))
}

// dropLease gives the delivery back to its queue at its own due time.
func dropLease(tx *bolt.Tx, e *Event) error {
	if err := unqueue(tx, e); err != nil {
		return err
	}
	return tx.Bucket(bucketQueues).Put(dueKey(e, dueAt(e)), nil)
}

// Claim implements Store.
func (s *Bolt) Claim(ctx context.Context, queue, owner string, now time.Time, lease time.Duration, limit int) ([]Event, error) {
	if limit <= 0 {
		return nil, nil
	}
	var out []Event
	err := s.write(ctx, func(tx *bolt.Tx) error {
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
			if err := setLease(tx, e, owner, until); err != nil {
				return err
			}
			out = append(out, *e)
		}
		return nil
	})
	return out, err
}

// RenewLeases implements Store.
func (s *Bolt) RenewLeases(ctx context.Context, owner string, uuids []string, until time.Time) ([]string, error) {
	var lost []string
	err := s.write(ctx, func(tx *bolt.Tx) error {
		lost = lost[:0]
		for _, uuid := range uuids {
			e, err := getEvent(tx, uuid)
			if err != nil {
				lost = append(lost, uuid)
				continue
			}
			if holder, _, ok := lease(tx, e); !ok || holder != owner {
				lost = append(lost, uuid)
				continue
			}
			if err := setLease(tx, e, owner, until); err != nil {
				return err
			}
		}
		return nil
	})
	return lost, err
}

// Release implements Store.
func (s *Bolt) Release(ctx context.Context, owner string, uuids []string) error {
	if len(uuids) == 0 {
		return nil
	}
	return s.write(ctx, func(tx *bolt.Tx) error {
		for _, uuid := range uuids {
			e, err := getEvent(tx, uuid)
			if err != nil {
				continue
			}
			if holder, _, ok := lease(tx, e); ok && holder == owner {
				if err := dropLease(tx, e); err != nil {
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
func releaseDeadLeases(tx *bolt.Tx) error {
	var held []string
	if err := tx.Bucket(bucketLeases).ForEach(func(k, _ []byte) error {
		if i := bytes.IndexByte(k, 0); i > 0 {
			held = append(held, string(k[:i]))
		}
		return nil
	}); err != nil {
		return err
	}
	for _, uuid := range held {
		e, err := getEvent(tx, uuid)
		if err != nil {
			continue
		}
		if err := dropLease(tx, e); err != nil {
			return err
		}
	}
	return nil
}
