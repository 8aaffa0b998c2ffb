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
	release, err := s.partnerSlot(ctx, partnerKey)
	if err != nil {
		return nil, "", err
	}
	defer release()
	// At most store.MaxListScan of the partner's events are looked at (by its index, in
	// uuid order), as on the embedded store, so a selective filter over a long history
	// reads a bounded number of rows and answers with a cursor to go on from.
	var scanned int
	var oldest *string
	var oldestAt *time.Time
	if err := s.pool.QueryRow(ctx, `SELECT count(*), min(uuid), min(received_at) FROM (
			SELECT uuid, received_at FROM events WHERE partner_key = $1 AND ($2 = '' OR uuid < $2) ORDER BY uuid DESC LIMIT $3) s`,
		partnerKey, q.Before, store.MaxListScan).Scan(&scanned, &oldest, &oldestAt); err != nil {
		return nil, "", s.errClosed(err)
	}
	evs, err := queryEvents(ctx, s.pool, `SELECT `+eventColumns+` FROM events e
		WHERE e.partner_key = $1 AND ($2 = '' OR e.phase = $2) AND ($3 = '' OR e.type = $3)
			AND ($4::timestamptz IS NULL OR e.received_at >= $4) AND ($5 = '' OR e.uuid < $5) AND e.uuid >= $7
		ORDER BY e.uuid DESC LIMIT $6`, partnerKey, q.Phase, q.Type, since, q.Before, q.Limit, derefOr(oldest, ""))
	if err != nil {
		return nil, "", s.errClosed(err)
	}
	next := ""
	switch {
	case len(evs) == q.Limit && q.Limit > 0:
		next = evs[len(evs)-1].UUID
	case scanned == store.MaxListScan && oldest != nil && (since == nil || oldestAt == nil || !oldestAt.Before(*since)):
		next = *oldest // stopped at the scan bound: older events may match
	}
	return evs, next, nil
}

func derefOr(p *string, def string) string {
	if p == nil {
		return def
	}
	return *p
}
