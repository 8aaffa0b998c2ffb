package postgres

import (
	"context"
	"fmt"

	"github.com/hookgate/hookgate/receiver/store"
)

// ListSelected implements store.Store. The narrowest index the selection names serves
// the order and the cursor (a partner's, an endpoint's, a phase's in a namespace, a
// namespace's, or the primary key for every namespace; migrations 0004 and 0008), and at
// most store.MaxListScan of its rows are looked at, as on the embedded store.
func (s *Store) ListSelected(ctx context.Context, sel store.Selection) ([]store.Event, string, error) {
	if err := s.read(); err != nil {
		return nil, "", err
	}
	var scope string
	var args []any
	switch {
	case sel.Namespace != "" && sel.Partner != "":
		scope, args = "partner_key = $2", []any{sel.Namespace + "/" + sel.Partner}
	case sel.Namespace != "" && sel.Endpoint != "":
		scope, args = "endpoint_key = $2", []any{sel.Namespace + "/" + sel.Endpoint}
	case sel.Namespace != "" && sel.Phase != "":
		scope, args = "partner_namespace = $2 AND phase = $3", []any{sel.Namespace, sel.Phase}
	case sel.Namespace != "":
		scope, args = "partner_namespace = $2", []any{sel.Namespace}
	default:
		scope = "TRUE"
	}
	// The scan bound: the uuid of the MaxListScan-th row of the scope from the cursor on.
	// The page then reads no row older than it, whatever the rest of the selection.
	bound := len(args) + 2
	var scanned int
	var oldest *string
	if err := s.pool.QueryRow(ctx, fmt.Sprintf(`SELECT count(*), min(uuid) FROM (
			SELECT uuid FROM events WHERE %s AND ($1 = '' OR uuid < $1) ORDER BY uuid DESC LIMIT $%d) s`, scope, bound),
		append(append([]any{sel.Before}, args...), store.MaxListScan)...).Scan(&scanned, &oldest); err != nil {
		return nil, "", s.errClosed(err)
	}
	rest := len(args) + 2
	evs, err := queryEvents(ctx, s.pool, fmt.Sprintf(`SELECT `+eventColumns+` FROM events e
		WHERE %s AND ($1 = '' OR e.uuid < $1) AND e.uuid >= $%d
			AND ($%d = '' OR e.partner_namespace = $%d) AND ($%d = '' OR e.partner = $%d)
			AND ($%d = '' OR (e.endpoint = $%d AND e.endpoint_namespace = e.partner_namespace))
			AND ($%d = '' OR e.phase = $%d) AND ($%d = '' OR e.event_id = $%d)
		ORDER BY e.uuid DESC LIMIT $%d`, scope, rest, rest+1, rest+1, rest+2, rest+2, rest+3, rest+3, rest+4, rest+4, rest+5, rest+5, rest+6),
		append(append([]any{sel.Before}, args...), derefOr(oldest, ""), sel.Namespace, sel.Partner, sel.Endpoint, sel.Phase, sel.EventID, sel.Limit)...)
	if err != nil {
		return nil, "", s.errClosed(err)
	}
	next := ""
	switch {
	case len(evs) == sel.Limit && sel.Limit > 0:
		next = evs[len(evs)-1].UUID
	case scanned == store.MaxListScan && oldest != nil:
		next = *oldest // stopped at the scan bound: older events may be selected
	}
	return evs, next, nil
}
