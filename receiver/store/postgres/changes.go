package postgres

import (
	"context"
	"strconv"
	"time"

	"github.com/hookgate/hookgate/receiver/store"
)

// changePoll is how often a replica reads the changes committed since its last read
// (on every replica: a watch may be served by any). Idle, it is one index probe.
const changePoll = 100 * time.Millisecond

// changeReadLimit bounds the changes one read takes; a busier interval is read in
// several.
const changeReadLimit = 5000

var _ store.ChangeFeed = (*Store)(nil)

// Changes implements store.ChangeFeed.
func (s *Store) Changes() *store.ChangeLog { return s.changes }

// ListPosition implements store.ChangeFeed: the oldest transaction id that may still be
// running. Every transaction below it has ended, so a read that starts later sees what
// they wrote; a watch from it is told of every change from there on (some of them
// possibly already in the read).
// It waits for the replica's change log to begin (it begins at the horizon when the
// store opens), so that a watch from the position it gives is served.
func (s *Store) ListPosition(ctx context.Context) (uint64, error) {
	if err := s.read(); err != nil {
		return 0, err
	}
	select {
	case <-s.changes.Started():
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	return s.horizon(ctx)
}

func (s *Store) horizon(ctx context.Context) (uint64, error) {
	var xmin string
	if err := s.pool.QueryRow(ctx, "SELECT pg_snapshot_xmin(pg_current_snapshot())::text").Scan(&xmin); err != nil {
		return 0, s.errClosed(err)
	}
	return strconv.ParseUint(xmin, 10, 64)
}

// followChanges reads the events changed by the transactions that ended since its last
// read into the change log, until ctx ends. After an error it restarts from the
// horizon then, and the log's watches start again (they may have missed changes).
func (s *Store) followChanges(ctx context.Context) {
	defer close(s.followerDone)
	from := uint64(0)
	for {
		if from == 0 {
			h, err := s.horizon(ctx)
			if err == nil {
				from = h
				s.changes.Restart(h)
			}
		} else {
			next, err := s.readChanges(ctx, from)
			if err != nil {
				from = 0
			} else if next != from {
				from = next
				continue // more may be waiting
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(changePoll):
		}
	}
}

// readChanges appends the changes of the transactions in [from, the horizon) and
// returns where the next read starts.
func (s *Store) readChanges(ctx context.Context, from uint64) (uint64, error) {
	to, err := s.horizon(ctx)
	if err != nil || to <= from {
		return from, err
	}
	rows, err := s.pool.Query(ctx, `SELECT uuid, partner_namespace, version, change_xid::text FROM events
		WHERE change_xid >= $1::text::xid8 AND change_xid < $2::text::xid8 ORDER BY change_xid LIMIT $3`,
		strconv.FormatUint(from, 10), strconv.FormatUint(to, 10), changeReadLimit)
	if err != nil {
		return from, err
	}
	defer rows.Close()
	var changes []store.Change
	for rows.Next() {
		var c store.Change
		var version int64
		var xid string
		if err := rows.Scan(&c.UUID, &c.Namespace, &version, &xid); err != nil {
			return from, err
		}
		if c.Position, err = strconv.ParseUint(xid, 10, 64); err != nil {
			return from, err
		}
		c.Resume, c.Kind = c.Position, store.ChangeModified
		if version <= 1 {
			c.Kind = store.ChangeAdded
		}
		changes = append(changes, c)
	}
	if err := rows.Err(); err != nil {
		return from, err
	}
	s.changes.Append(changes...)
	if len(changes) == changeReadLimit {
		// Cut short: the rest of the last transaction's rows come again with the next.
		return changes[len(changes)-1].Position, nil
	}
	return to, nil
}
