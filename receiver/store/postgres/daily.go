package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/hookgate/hookgate/receiver/store"
)

// AddDailyCounts implements store.Store: one statement adds a batch, whichever replica
// counted it.
func (s *Store) AddDailyCounts(ctx context.Context, counts []store.DailyCount) error {
	if len(counts) == 0 {
		return nil
	}
	partners, days, outcomes, reasons, ns := make([]string, len(counts)), make([]string, len(counts)), make([]string, len(counts)), make([]string, len(counts)), make([]int64, len(counts))
	for i, c := range counts {
		partners[i], days[i], outcomes[i], reasons[i], ns[i] = c.PartnerKey, c.Day, c.Outcome, c.Reason, c.N
	}
	return s.write(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO daily_counts (partner_key, day, outcome, reason, n)
			SELECT * FROM unnest($1::text[], $2::date[], $3::text[], $4::text[], $5::bigint[])
			ON CONFLICT (partner_key, day, outcome, reason) DO UPDATE SET n = daily_counts.n + EXCLUDED.n`,
			partners, days, outcomes, reasons, ns)
		return err
	})
}

// DailyCounts implements store.Store.
func (s *Store) DailyCounts(ctx context.Context, partnerKey, sinceDay string) ([]store.DailyCount, error) {
	if err := s.read(); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT to_char(day, 'YYYY-MM-DD'), outcome, reason, n FROM daily_counts
		WHERE partner_key = $1 AND day >= $2::date ORDER BY day, outcome, reason`, partnerKey, sinceDay)
	if err != nil {
		return nil, s.errClosed(err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.DailyCount, error) {
		c := store.DailyCount{PartnerKey: partnerKey}
		return c, row.Scan(&c.Day, &c.Outcome, &c.Reason, &c.N)
	})
	return out, s.errClosed(err)
}

// PruneDailyCounts implements store.Store.
func (s *Store) PruneDailyCounts(ctx context.Context, beforeDay string) error {
	return s.write(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "DELETE FROM daily_counts WHERE day < $1::date", beforeDay)
		return err
	})
}
