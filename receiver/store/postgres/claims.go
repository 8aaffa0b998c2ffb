package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookgate/hookgate/receiver/store"
)

// Claim implements store.Store. SKIP LOCKED lets the workers of every replica claim
// from one queue at once without waiting on each other's rows; the lease end becomes the
// delivery's due time, so a dead claimant's deliveries come due again by themselves.
func (s *Store) Claim(ctx context.Context, queue, owner string, now time.Time, lease time.Duration, limit int) ([]store.Delivery, error) {
	if limit <= 0 {
		return nil, nil
	}
	_, _, destination, err := store.ParseQueueKey(queue)
	if err != nil {
		return nil, err
	}
	var out []store.Delivery
	err = s.write(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `WITH picked AS (
				SELECT uuid, queue FROM deliveries WHERE queue = $1 AND due_at <= $2
				ORDER BY due_at, uuid LIMIT $3 FOR UPDATE SKIP LOCKED
			), claimed AS (
				-- SET reads the row as it was: an unclaimed row's due_at is its own due time.
				UPDATE deliveries d SET claimed_by = $4, lease_until = $5, due_at = $5,
					ready_at = COALESCE(d.ready_at, d.due_at)
				FROM picked WHERE d.uuid = picked.uuid AND d.queue = picked.queue
				RETURNING d.uuid, d.ready_at
			)
			-- Each delivery carries its payload, so that a worker makes no read of its own.
			SELECT `+eventColumns+`, p.body FROM claimed JOIN events e ON e.uuid = claimed.uuid
			LEFT JOIN payloads p ON p.uuid = e.uuid
			ORDER BY claimed.ready_at, e.uuid`, queue, micro(now), limit, owner, micro(now.Add(lease)))
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Delivery, error) {
			var body []byte
			e, err := scanEvent(row, &body)
			if err != nil {
				return store.Delivery{}, err
			}
			// A payload that is gone (its event pruned meanwhile) is left to the worker's
			// own read, which says so.
			return store.Delivery{Event: e, Destination: destination, Payload: body, HasPayload: body != nil}, nil
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// refArrays are the uuids and destinations of deliveries, for unnest.
func refArrays(refs []store.DeliveryRef) (uuids, destinations []string) {
	uuids, destinations = make([]string, len(refs)), make([]string, len(refs))
	for i, r := range refs {
		uuids[i], destinations[i] = r.UUID, r.Destination
	}
	return uuids, destinations
}

// refQueue is the SQL of a delivery's queue key from its event e and its destination in
// r.dest: store.QueueKey, which keeps the default destination's queue the endpoint key.
const refQueue = `CASE WHEN r.dest = '` + store.DefaultDestination + `' THEN e.endpoint_key ELSE e.endpoint_key || '/' || r.dest END`

// RenewLeases implements store.Store.
func (s *Store) RenewLeases(ctx context.Context, owner string, refs []store.DeliveryRef, until time.Time) ([]store.DeliveryRef, error) {
	if len(refs) == 0 {
		return nil, nil
	}
	uuids, dests := refArrays(refs)
	var lost []store.DeliveryRef
	err := s.write(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `UPDATE deliveries d SET lease_until = $4, due_at = $4
			FROM unnest($1::text[], $2::text[]) AS r(uuid, dest), events e
			WHERE e.uuid = r.uuid AND d.uuid = r.uuid AND d.queue = `+refQueue+` AND d.claimed_by = $3
			RETURNING r.uuid, r.dest`, uuids, dests, owner, micro(until))
		if err != nil {
			return err
		}
		held := map[store.DeliveryRef]bool{}
		for rows.Next() {
			var r store.DeliveryRef
			if err := rows.Scan(&r.UUID, &r.Destination); err != nil {
				rows.Close()
				return err
			}
			held[r] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		lost = lost[:0]
		for _, r := range refs {
			if !held[r] {
				lost = append(lost, r)
			}
		}
		return nil
	})
	return lost, err
}

// Release implements store.Store.
func (s *Store) Release(ctx context.Context, owner string, refs []store.DeliveryRef) error {
	if len(refs) == 0 {
		return nil
	}
	uuids, dests := refArrays(refs)
	err := s.write(ctx, func(tx pgx.Tx) error {
		// Rows from before ready_at was kept are due at their event's own time.
		_, err := tx.Exec(ctx, `UPDATE deliveries d SET claimed_by = NULL, lease_until = NULL,
				due_at = COALESCE(d.ready_at, e.next_attempt_at, e.received_at)
			FROM unnest($1::text[], $2::text[]) AS r(uuid, dest), events e
			WHERE e.uuid = r.uuid AND d.uuid = r.uuid AND d.queue = `+refQueue+` AND d.claimed_by = $3`, uuids, dests, owner)
		return err
	})
	if err == nil {
		s.queued() // due again now: any replica's idle workers may take them
	}
	return err
}
