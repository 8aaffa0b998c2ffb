package postgres

import (
	"context"
	"time"

	"github.com/hookgate/hookgate/receiver/store"
)

// ListEvents implements store.Store: the (partner_key, uuid) index of migration 0004
// serves the order and the cursor.
func (s *Store) ListEvents(ctx context.Context, partnerKey string, q store.ListQuery) ([]store.Event, string, error) {
	if err := s.read(); err != nil {
		return nil, "", err
	}
	var since *time.Time
	if !q.Since.IsZero() {
		t := micro(q.Since)
		since = &t
	}
	evs, err := queryEvents(ctx, s.pool, `SELECT `+eventColumns+` FROM events e
		WHERE e.partner_key = $1 AND ($2 = '' OR e.phase = $2) AND ($3 = '' OR e.type = $3)
			AND ($4::timestamptz IS NULL OR e.received_at >= $4) AND ($5 = '' OR e.uuid < $5)
		ORDER BY e.uuid DESC LIMIT $6`, partnerKey, q.Phase, q.Type, since, q.Before, q.Limit)
	if err != nil {
		return nil, "", s.errClosed(err)
	}
	next := ""
	if len(evs) == q.Limit && q.Limit > 0 {
		next = evs[len(evs)-1].UUID
	}
	return evs, next, nil
}
