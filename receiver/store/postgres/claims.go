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
	var out []store.Event
	err := s.write(ctx, func(tx pgx.Tx) error {
		var err error
		out, err = queryEvents(ctx, tx, `WITH picked AS (
				SELECT uuid, queue FROM deliveries WHERE queue = $1 AND due_at <= $2
				ORDER BY due_at, uuid LIMIT $3 FOR UPDATE SKIP LOCKED
			), claimed AS (
				-- SET reads the row as it was: an unclaimed row's due_at is its own due time.
				UPDATE deliveries d SET claimed_by = $4, lease_until = $5, due_at = $5,
					ready_at = COALESCE(d.ready_at, d.due_at)
				FROM picked WHERE d.uuid = picked.uuid AND d.queue = picked.queue
				RETURNING d.uuid, d.ready_at
			)
			SELECT `+eventColumns+` FROM claimed JOIN events e ON e.uuid = claimed.uuid
			ORDER BY claimed.ready_at, e.uuid`, queue, micro(now), limit, owner, micro(now.Add(lease)))
		return err
	})
	if err != nil {
		return nil, err
	}
	return asDeliveries(queue, out)
}

// refArrays are the uuids and queue keys of deliveries, for unnest.
func (s *Store) refArrays(ctx context.Context, tx pgx.Tx, refs []store.DeliveryRef) (uuids, queues []string, err error) {
	uuids = make([]string, len(refs))
	for i, r := range refs {
		uuids[i] = r.UUID
	}
	rows, err := tx.Query(ctx, "SELECT uuid, endpoint_key FROM events WHERE uuid = ANY($1)", uuids)
	if err != nil {
		return nil, nil, err
	}
	endpoints := map[string]string{}
	for rows.Next() {
		var u, ep string
		if err := rows.Scan(&u, &ep); err != nil {
			rows.Close()
			return nil, nil, err
		}
		endpoints[u] = ep
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	queues = make([]string, len(refs))
	for i, r := range refs {
		queues[i] = store.QueueKey(endpoints[r.UUID], r.Destination)
	}
	return uuids, queues, nil
}

// RenewLeases implements store.Store.
func (s *Store) RenewLeases(ctx context.Context, owner string, refs []store.DeliveryRef, until time.Time) ([]store.DeliveryRef, error) {
	if len(refs) == 0 {
		return nil, nil
	}
	var lost []store.DeliveryRef
	err := s.write(ctx, func(tx pgx.Tx) error {
		uuids, queues, err := s.refArrays(ctx, tx, refs)
		if err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `UPDATE deliveries d SET lease_until = $4, due_at = $4
			FROM unnest($1::text[], $2::text[]) AS r(uuid, queue)
			WHERE d.uuid = r.uuid AND d.queue = r.queue AND d.claimed_by = $3 RETURNING d.uuid, d.queue`,
			uuids, queues, owner, micro(until))
		if err != nil {
			return err
		}
		held := map[[2]string]bool{}
		for rows.Next() {
			var u, q string
			if err := rows.Scan(&u, &q); err != nil {
				rows.Close()
				return err
			}
			held[[2]string{u, q}] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		lost = lost[:0]
		for i, r := range refs {
			if !held[[2]string{uuids[i], queues[i]}] {
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
	err := s.write(ctx, func(tx pgx.Tx) error {
		uuids, queues, err := s.refArrays(ctx, tx, refs)
		if err != nil {
			return err
		}
		// Rows from before ready_at was kept are due at their event's own time.
		_, err = tx.Exec(ctx, `UPDATE deliveries d SET claimed_by = NULL, lease_until = NULL,
				due_at = COALESCE(d.ready_at, e.next_attempt_at, e.received_at)
			FROM unnest($1::text[], $2::text[]) AS r(uuid, queue), events e
			WHERE d.uuid = r.uuid AND d.queue = r.queue AND e.uuid = d.uuid AND d.claimed_by = $3`, uuids, queues, owner)
		return err
	})
	if err == nil {
		s.queued() // due again now: any replica's idle workers may take them
	}
	return err
}
