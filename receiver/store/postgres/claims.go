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
func (s *Store) Claim(ctx context.Context, queue, owner string, now time.Time, lease time.Duration, limit int) ([]store.Event, error) {
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
				UPDATE deliveries d SET claimed_by = $4, lease_until = $5, due_at = $5
				FROM picked WHERE d.uuid = picked.uuid AND d.queue = picked.queue
				RETURNING d.uuid
			)
			SELECT `+eventColumns+` FROM claimed JOIN events e ON e.uuid = claimed.uuid
			ORDER BY COALESCE(e.next_attempt_at, e.received_at), e.uuid`, queue, micro(now), limit, owner, micro(now.Add(lease)))
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// RenewLeases implements store.Store.
func (s *Store) RenewLeases(ctx context.Context, owner string, uuids []string, until time.Time) ([]string, error) {
	if len(uuids) == 0 {
		return nil, nil
	}
	var lost []string
	err := s.write(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `UPDATE deliveries SET lease_until = $3, due_at = $3
			WHERE uuid = ANY($1) AND claimed_by = $2 RETURNING uuid`, uuids, owner, micro(until))
		if err != nil {
			return err
		}
		renewed, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		held := make(map[string]bool, len(renewed))
		for _, u := range renewed {
			held[u] = true
		}
		lost = lost[:0]
		for _, u := range uuids {
			if !held[u] {
				lost = append(lost, u)
			}
		}
		return nil
	})
	return lost, err
}

// Release implements store.Store.
func (s *Store) Release(ctx context.Context, owner string, uuids []string) error {
	if len(uuids) == 0 {
		return nil
	}
	err := s.write(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE deliveries d SET claimed_by = NULL, lease_until = NULL,
				due_at = COALESCE(e.next_attempt_at, e.received_at)
			FROM events e WHERE e.uuid = d.uuid AND d.uuid = ANY($1) AND d.claimed_by = $2`, uuids, owner)
		return err
	})
	if err == nil {
		s.queued() // due again now: any replica's idle workers may take them
	}
	return err
}
