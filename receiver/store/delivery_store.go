package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

var (
	// uuid \x00 attempt number(4) [\x00 destination] -> Attempt JSON. The default
	// destination's attempts have no suffix, as before fan-out.
	bucketAttempts = []byte("attempts")
	bucketReflect  = []byte("reflect") // uuid -> version(8): newest state not yet reflected
	bucketTokens   = []byte("tokens")  // name -> value
)

// putEvent writes an event record, bumping its version, marking it for reflection and
// keeping the phase indexes in line; was is the phase it had when read ("" when new).
func putEvent(tx kvTx, e *Event, was string) error {
	if err := reindex(tx, e, was); err != nil {
		return err
	}
	if was == "" {
		noteChange(tx, e, ChangeAdded)
	} else {
		noteChange(tx, e, ChangeModified)
	}
	e.Version++
	record, err := encodeEvent(e)
	if err != nil {
		return err
	}
	if err := timeOrdered(tx, bucketEvents).Put([]byte(e.UUID), record); err != nil {
		return err
	}
	v := make([]byte, 8)
	binary.BigEndian.PutUint64(v, e.Version)
	return timeOrdered(tx, bucketReflect).Put([]byte(e.UUID), v)
}

// dueKey is a delivery's key in its destination's queue: the queue, then the due time
// and the uuid, so that each queue is in due order.
func dueKey(e *Event, destination string, at time.Time) []byte {
	return append(append([]byte(QueueKey(e.EndpointKey(), destination)+"\x00"), timeKey(at)...), e.UUID...)
}

// attemptKey orders an event's attempts by number, then destination.
func attemptKey(uuid string, a *Attempt) []byte {
	num := make([]byte, 4)
	binary.BigEndian.PutUint32(num, uint32(a.Number)) //nolint:gosec // attempt numbers are small and positive
	key := append([]byte(uuid+"\x00"), num...)
	if a.Destination != "" && a.Destination != DefaultDestination {
		key = append(append(key, 0), a.Destination...)
	}
	return key
}

// DueQueues implements Store. It reads the first key of each queue and seeks past the
// rest, so a long queue costs one read, not one per delivery.
func (s *Embedded) DueQueues(_ context.Context, now time.Time) ([]Queue, error) {
	var out []Queue
	err := s.eng.view(func(tx kvTx) error {
		c := tx.Bucket(bucketQueues).Cursor()
		end := timeKey(now)
		for k, _ := c.First(); k != nil; {
			i := bytes.IndexByte(k, 0)
			if i < 0 || len(k) < i+9 {
				return fmt.Errorf("malformed queue key %q", k)
			}
			queue := string(k[:i])
			if due := k[i+1 : i+9]; bytes.Compare(due, end) <= 0 {
				out = append(out, Queue{Key: queue, OldestDue: keyTime(due)})
			}
			// The next queue starts after every key of this one ("\x01" > "\x00...").
			k, _ = c.Seek([]byte(queue + "\x01"))
		}
		return nil
	})
	return out, err
}

// Due implements Store.
func (s *Embedded) Due(_ context.Context, queue string, now time.Time, limit int) ([]Delivery, error) {
	var out []Delivery
	_, _, destination, err := ParseQueueKey(queue)
	if err != nil {
		return nil, err
	}
	err = s.eng.view(func(tx kvTx) error {
		c := tx.Bucket(bucketQueues).Cursor()
		prefix := []byte(queue + "\x00")
		end := timeKey(now)
		for k, _ := c.Seek(prefix); k != nil && len(out) < limit && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			rest := k[len(prefix):]
			if bytes.Compare(rest[:8], end) > 0 {
				break
			}
			e, err := getEvent(tx, string(rest[8:]))
			if err != nil {
				return err
			}
			out = append(out, Delivery{Event: *e, Destination: destination})
		}
		return nil
	})
	return out, err
}

// QueueDepth implements Store.
func (s *Embedded) QueueDepth(_ context.Context) (int, error) {
	return s.eng.count(bucketQueues)
}

// migrateDueIndex moves the single due index of an older file into per-queue keys.
func migrateDueIndex(raw *bolt.Tx) error {
	old := raw.Bucket(bucketDueV1)
	if old == nil {
		return nil
	}
	tx := boltTx{raw}
	queues := tx.Bucket(bucketQueues)
	if err := old.ForEach(func(k, _ []byte) error {
		if len(k) <= 8 {
			return nil
		}
		e, err := getEvent(tx, string(k[8:]))
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return queues.Put(dueKey(e, DefaultDestination, keyTime(k[:8])), nil)
	}); err != nil {
		return err
	}
	return raw.DeleteBucket(bucketDueV1)
}

// RecordAttempt implements Store.
func (s *Embedded) RecordAttempt(ctx context.Context, owner, uuid string, a Attempt, o Outcome) (*Event, error) {
	attempt, err := json.Marshal(&a)
	if err != nil {
		return nil, err
	}
	var out *Event
	err = s.write(ctx, func(tx kvTx) error {
		e, err := getEvent(tx, uuid)
		if err != nil {
			return err
		}
		was := e.Phase
		d := e.Delivery(destinationOf(&a))
		if d == nil && len(e.Deliveries) == 0 {
			out = e // Stored: no delivery to record an attempt of
			return nil
		}
		if d == nil {
			return fmt.Errorf("event %s has no delivery to destination %q: %w", uuid, destinationOf(&a), ErrNotFound)
		}
		if d.Finished() {
			// A redelivery raced with a late result; the finished state stands.
			out = e
			return nil
		}
		if holder, _, claimed := lease(tx, e, d.Destination); (claimed && holder != owner) || a.Number <= d.Attempts {
			out = e
			return ErrClaimLost
		}
		if err := unqueue(tx, e, d.Destination); err != nil {
			return err
		}
		if err := e.ApplyAttempt(d, a, o); err != nil {
			return err
		}
		if err := tx.Bucket(bucketAttempts).Put(attemptKey(uuid, &a), attempt); err != nil {
			return err
		}
		if d.Phase == PhaseRetrying {
			if err := tx.Bucket(bucketQueues).Put(dueKey(e, d.Destination, *d.NextAttemptAt), nil); err != nil {
				return err
			}
		}
		out = e
		return putEvent(tx, e, was)
	})
	return out, err
}

// Abandon implements Store.
func (s *Embedded) Abandon(ctx context.Context, uuid, destination, reason string) (*Event, error) {
	var out *Event
	err := s.write(ctx, func(tx kvTx) error {
		e, err := getEvent(tx, uuid)
		if err != nil {
			return err
		}
		out = e
		d := e.Delivery(destination)
		if d == nil {
			return fmt.Errorf("event %s has no delivery to destination %q: %w", uuid, destination, ErrNotFound)
		}
		if d.Finished() {
			return nil
		}
		was := e.Phase
		if err := unqueue(tx, e, destination); err != nil {
			return err
		}
		e.AbandonDelivery(d, reason)
		return putEvent(tx, e, was)
	})
	return out, err
}

// Attempts implements Store.
func (s *Embedded) Attempts(_ context.Context, uuid string) ([]Attempt, error) {
	var out []Attempt
	err := s.eng.view(func(tx kvTx) error {
		prefix := []byte(uuid + "\x00")
		c := tx.Bucket(bucketAttempts).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var a Attempt
			if err := json.Unmarshal(v, &a); err != nil {
				return err
			}
			a.Destination = destinationOf(&a)
			out = append(out, a)
		}
		return nil
	})
	return out, err
}

// enqueueAll puts the named deliveries in their queues at now and writes the event, which
// had phase was when read.
func enqueueAll(tx kvTx, e *Event, destinations []string, now time.Time, was string) error {
	if len(destinations) == 0 {
		return nil
	}
	for _, dest := range destinations {
		if err := tx.Bucket(bucketQueues).Put(dueKey(e, dest, now), nil); err != nil {
			return err
		}
	}
	return putEvent(tx, e, was)
}

// destinationOf is an attempt's destination, the default one for older records.
func destinationOf(a *Attempt) string {
	if a.Destination == "" {
		return DefaultDestination
	}
	return a.Destination
}

// Requeue implements Store.
func (s *Embedded) Requeue(ctx context.Context, uuid, destination string, now time.Time) (*Event, error) {
	var out *Event
	err := s.write(ctx, func(tx kvTx) error {
		e, err := getEvent(tx, uuid)
		if err != nil {
			return err
		}
		if destination != "" && e.Delivery(destination) == nil {
			return fmt.Errorf("event %s has no delivery to destination %q: %w", uuid, destination, ErrNotFound)
		}
		out = e
		was := e.Phase
		return enqueueAll(tx, e, e.RequeueDeliveries(destination, now), now, was)
	})
	return out, err
}

// RequeueFailed implements Store. It reads the endpoint's Failed events from their index,
// requeueBatch to a transaction of its own outside the group commit, so that one
// tenant's redelivery, however often repeated, reads only its own events and holds the
// other tenants' ingest for at most one small transaction.
func (s *Embedded) RequeueFailed(ctx context.Context, endpointKey, destination string, now time.Time) (int, error) {
	requeued := 0
	prefix := []byte(endpointKey + "\x00")
	from := prefix
	for {
		var n int
		var next []byte
		err := s.update(func(tx kvTx) error {
			n, next = 0, nil
			var uuids []string
			c := tx.Bucket(bucketFailed).Cursor()
			for k, _ := c.Seek(from); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
				if len(uuids) == requeueBatch {
					next = bytes.Clone(k)
					break
				}
				uuids = append(uuids, string(k[len(prefix):]))
			}
			for _, uuid := range uuids {
				e, err := getEvent(tx, uuid)
				if errors.Is(err, ErrNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				// Events left Failed (another destination's delivery failed) stay behind
				// the next batch's start, so they are not read again.
				was := e.Phase
				queued := e.RequeueFailedDeliveries(destination, now)
				if err := enqueueAll(tx, e, queued, now, was); err != nil {
					return err
				}
				if len(queued) > 0 {
					n++
				}
			}
			return nil
		})
		if err != nil {
			return requeued, err
		}
		requeued += n
		if next == nil {
			return requeued, nil
		}
		if err := ctx.Err(); err != nil {
			return requeued, err
		}
		from = next
	}
}

// requeueBatch bounds the events one RequeueFailed transaction queues again.
const requeueBatch = 256

// Unreflected implements Store.
func (s *Embedded) Unreflected(_ context.Context, limit int) ([]Event, error) {
	var out []Event
	err := s.eng.view(func(tx kvTx) error {
		c := tx.Bucket(bucketReflect).Cursor()
		for k, _ := c.First(); k != nil && len(out) < limit; k, _ = c.Next() {
			e, err := getEvent(tx, string(k))
			if err != nil {
				continue // pruned meanwhile
			}
			out = append(out, *e)
		}
		return nil
	})
	return out, err
}

// MarkReflected implements Store.
func (s *Embedded) MarkReflected(ctx context.Context, uuid string, version uint64) error {
	return s.write(ctx, func(tx kvTx) error {
		b := tx.Bucket(bucketReflect)
		v := b.Get([]byte(uuid))
		if v != nil && binary.BigEndian.Uint64(v) <= version {
			return b.Delete([]byte(uuid))
		}
		return nil
	})
}

// Token implements Store.
func (s *Embedded) Token(_ context.Context, name string) (string, error) {
	var out string
	err := s.eng.view(func(tx kvTx) error {
		out = string(tx.Bucket(bucketTokens).Get([]byte(name)))
		return nil
	})
	return out, err
}

// SetToken implements Store.
func (s *Embedded) SetToken(ctx context.Context, name, value string) error {
	return s.write(ctx, func(tx kvTx) error { return tx.Bucket(bucketTokens).Put([]byte(name), []byte(value)) })
}
