package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

var (
	bucketAttempts = []byte("attempts") // uuid \x00 attempt number(4) -> Attempt JSON
	bucketReflect  = []byte("reflect")  // uuid -> version(8): newest state not yet reflected
	bucketTokens   = []byte("tokens")   // name -> value
)

// putEvent writes an event record, bumping its version and marking it for reflection.
func putEvent(tx *bolt.Tx, e *Event) error {
	e.Version++
	record, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if err := tx.Bucket(bucketEvents).Put([]byte(e.UUID), record); err != nil {
		return err
	}
	v := make([]byte, 8)
	binary.BigEndian.PutUint64(v, e.Version)
	return tx.Bucket(bucketReflect).Put([]byte(e.UUID), v)
}

func dueKey(at time.Time, uuid string) []byte { return append(timeKey(at), uuid...) }

// dueAt is the time under which an unfinished event sits in the due index.
func dueAt(e *Event) time.Time {
	if e.NextAttemptAt != nil {
		return *e.NextAttemptAt
	}
	return e.ReceivedAt
}

// Due implements Store.
func (s *Bolt) Due(_ context.Context, now time.Time, limit int) ([]Event, error) {
	var out []Event
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketDue).Cursor()
		end := timeKey(now)
		for k, _ := c.First(); k != nil && len(out) < limit && bytes.Compare(k[:8], end) <= 0; k, _ = c.Next() {
			e, err := getEvent(tx, string(k[8:]))
			if err != nil {
				return err
			}
			out = append(out, *e)
		}
		return nil
	})
	return out, err
}

// RecordAttempt implements Store.
func (s *Bolt) RecordAttempt(ctx context.Context, uuid string, a Attempt, o Outcome) (*Event, error) {
	attempt, err := json.Marshal(&a)
	if err != nil {
		return nil, err
	}
	var out *Event
	err = s.write(ctx, func(tx *bolt.Tx) error {
		e, err := getEvent(tx, uuid)
		if err != nil {
			return err
		}
		if e.Finished() {
			// A redelivery raced with a late result; the finished state stands.
			out = e
			return nil
		}
		if err := tx.Bucket(bucketDue).Delete(dueKey(dueAt(e), uuid)); err != nil {
			return err
		}
		num := make([]byte, 4)
		binary.BigEndian.PutUint32(num, uint32(a.Number)) //nolint:gosec // attempt numbers are small and positive
		if err := tx.Bucket(bucketAttempts).Put(append([]byte(uuid+"\x00"), num...), attempt); err != nil {
			return err
		}
		started := a.StartedAt
		e.Attempts = a.Number
		e.LastAttemptAt = &started
		e.LastResponseCode = a.ResponseCode
		e.LastError = a.Error
		e.Phase = o.Phase
		e.NextAttemptAt = nil
		switch o.Phase {
		case PhaseDelivered:
			at := a.StartedAt.Add(a.Duration)
			e.DeliveredAt = &at
		case PhaseRetrying:
			next := o.NextAttemptAt
			e.NextAttemptAt = &next
			if err := tx.Bucket(bucketDue).Put(dueKey(next, uuid), nil); err != nil {
				return err
			}
		case PhaseFailed:
		default:
			return fmt.Errorf("an attempt cannot end in phase %q", o.Phase)
		}
		out = e
		return putEvent(tx, e)
	})
	return out, err
}

// Attempts implements Store.
func (s *Bolt) Attempts(_ context.Context, uuid string) ([]Attempt, error) {
	var out []Attempt
	err := s.db.View(func(tx *bolt.Tx) error {
		prefix := []byte(uuid + "\x00")
		c := tx.Bucket(bucketAttempts).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var a Attempt
			if err := json.Unmarshal(v, &a); err != nil {
				return err
			}
			out = append(out, a)
		}
		return nil
	})
	return out, err
}

func requeue(tx *bolt.Tx, e *Event, now time.Time) error {
	if !e.Finished() || e.Phase == PhaseStored {
		return nil
	}
	e.Phase = PhaseQueued
	e.AttemptBase = e.Attempts
	e.NextAttemptAt = &now
	e.DeliveredAt = nil
	if err := tx.Bucket(bucketDue).Put(dueKey(now, e.UUID), nil); err != nil {
		return err
	}
	return putEvent(tx, e)
}

// Requeue implements Store.
func (s *Bolt) Requeue(ctx context.Context, uuid string, now time.Time) (*Event, error) {
	var out *Event
	err := s.write(ctx, func(tx *bolt.Tx) error {
		e, err := getEvent(tx, uuid)
		if err != nil {
			return err
		}
		out = e
		return requeue(tx, e, now)
	})
	return out, err
}

// RequeueFailed implements Store. It scans the endpoint's events; redelivering a whole
// endpoint is rare and operator-driven.
func (s *Bolt) RequeueFailed(ctx context.Context, endpointKey string, now time.Time) (int, error) {
	n := 0
	err := s.write(ctx, func(tx *bolt.Tx) error {
		n = 0
		var failed []*Event
		err := tx.Bucket(bucketEvents).ForEach(func(_, v []byte) error {
			var e Event
			if err := json.Unmarshal(v, &e); err != nil {
				return err
			}
			if e.Phase == PhaseFailed && e.EndpointKey() == endpointKey {
				failed = append(failed, &e)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, e := range failed {
			if err := requeue(tx, e, now); err != nil {
				return err
			}
		}
		n = len(failed)
		return nil
	})
	return n, err
}

// Unreflected implements Store.
func (s *Bolt) Unreflected(_ context.Context, limit int) ([]Event, error) {
	var out []Event
	err := s.db.View(func(tx *bolt.Tx) error {
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
func (s *Bolt) MarkReflected(ctx context.Context, uuid string, version uint64) error {
	return s.write(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketReflect)
		v := b.Get([]byte(uuid))
		if v != nil && binary.BigEndian.Uint64(v) <= version {
			return b.Delete([]byte(uuid))
		}
		return nil
	})
}

// Token implements Store.
func (s *Bolt) Token(_ context.Context, name string) (string, error) {
	var out string
	err := s.db.View(func(tx *bolt.Tx) error {
		out = string(tx.Bucket(bucketTokens).Get([]byte(name)))
		return nil
	})
	return out, err
}

// SetToken implements Store.
func (s *Bolt) SetToken(ctx context.Context, name, value string) error {
	return s.write(ctx, func(tx *bolt.Tx) error { return tx.Bucket(bucketTokens).Put([]byte(name), []byte(value)) })
}
