package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookgate/hookgate/receiver/store"
)

// Attempt records are group-committed as ingest is: each worker's RecordAttempt waits in
// one queue, and a committer writes whatever is waiting in one transaction of set-based
// statements, sent in one round trip, so that a delivery costs its share of one WAL
// flush instead of a transaction of its own. Every caller is answered after COMMIT.
const (
	attemptCommitters = 2
	maxAttemptBatch   = 128
	// attemptBatchTimeout bounds one batch's transaction.
	attemptBatchTimeout = 30 * time.Second
)

// attemptOp is one RecordAttempt call waiting for its batch.
type attemptOp struct {
	owner, uuid string
	attempt     store.Attempt
	outcome     store.Outcome

	// The outcome, set by the committer before done is closed.
	result *store.Event
	err    error
	done   chan struct{}
}

func (s *Store) startAttemptCommitters() {
	// Attempts wait in one line: an attempt names no namespace, and the dispatcher already
	// bounds each namespace's deliveries in flight, so no namespace can fill it alone.
	s.attemptQ = newBatchQueue(attemptCommitters, maxAttemptBatch, func(*attemptOp) string { return "" }, func() func([]*attemptOp) {
		return s.commitAttempts
	})
}

func (s *Store) stopAttemptCommitters() {
	s.attemptQ.stop(func(op *attemptOp) {
		op.err = store.ErrClosed
		close(op.done)
	})
}

// RecordAttempt implements store.Store. The caller waits for its batch's COMMIT even
// when ctx ends meanwhile: an attempt answered "not recorded" must not be.
func (s *Store) RecordAttempt(ctx context.Context, owner, uuid string, a store.Attempt, o store.Outcome) (*store.Event, error) {
	if s.closed.Load() {
		return nil, store.ErrClosed
	}
	if a.Destination == "" {
		a.Destination = store.DefaultDestination
	}
	op := &attemptOp{owner: owner, uuid: uuid, attempt: a, outcome: o, done: make(chan struct{})}
	if err := s.attemptQ.send(ctx, op); err != nil {
		return nil, err
	}
	<-op.done
	return op.result, op.err
}

// commitAttempts writes a batch and answers its callers; a batch that fails is written
// again one attempt at a time, so that one attempt's failure is its own.
func (s *Store) commitAttempts(batch []*attemptOp) {
	ctx, cancel := context.WithTimeout(context.Background(), attemptBatchTimeout)
	defer cancel()
	started := time.Now()
	err := s.retryTx(ctx, func(tx pgx.Tx) error { return recordAttempts(ctx, tx, batch) })
	switch {
	case err == nil:
		s.observe(time.Since(started), len(batch))
	case len(batch) > 1 && !s.closed.Load():
		for _, op := range batch {
			s.commitAttempts([]*attemptOp{op})
		}
		return
	default:
		err = s.errClosed(err)
		for _, op := range batch {
			op.result, op.err = nil, err
		}
	}
	// No NOTIFY: a retry is due after its backoff, which the dispatchers' polling finds.
	for _, op := range batch {
		close(op.done)
	}
}

// recordAttempts writes a batch of attempts in one transaction: the events are locked in
// uuid order and then their delivery rows in (uuid, queue) order, the order a single
// record takes them in, so that batches of two replicas never deadlock; each attempt is
// then checked and applied in arrival order (two destinations of one event apply to the
// one record), and the changes are written by five statements for the whole batch.
func recordAttempts(ctx context.Context, tx pgx.Tx, batch []*attemptOp) error {
	for _, op := range batch {
		op.result, op.err = nil, nil
	}
	ids := make([]string, 0, len(batch))
	for _, op := range batch {
		ids = append(ids, op.uuid)
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	evs, err := queryEvents(ctx, tx, "SELECT "+eventColumns+" FROM events e WHERE e.uuid = ANY($1) ORDER BY e.uuid FOR UPDATE", ids)
	if err != nil {
		return err
	}
	events := make(map[string]*store.Event, len(evs))
	for i := range evs {
		events[evs[i].UUID] = &evs[i]
	}
	holders, err := lockDeliveryRows(ctx, tx, batch, events)
	if err != nil {
		return err
	}

	var w attemptWrites
	changed := map[string]*store.Event{}
	for _, op := range batch {
		e := events[op.uuid]
		if e == nil {
			op.err = fmt.Errorf("event %s: %w", op.uuid, store.ErrNotFound)
			continue
		}
		destination := op.attempt.Destination
		d := e.Delivery(destination)
		switch {
		case d == nil && len(e.Deliveries) == 0:
			op.result = cloneEvent(e) // Stored: no delivery to record an attempt of
			continue
		case d == nil:
			op.err = fmt.Errorf("event %s has no delivery to destination %q: %w", op.uuid, destination, store.ErrNotFound)
			continue
		case d.Finished():
			op.result = cloneEvent(e) // a redelivery raced with a late result; the finished state stands
			continue
		}
		queue := store.QueueKey(e.EndpointKey(), destination)
		if holder, claimed := holders[[2]string{op.uuid, queue}]; (claimed && holder != op.owner) || op.attempt.Number <= d.Attempts {
			op.result, op.err = cloneEvent(e), store.ErrClaimLost
			continue
		}
		if err := e.ApplyAttempt(d, op.attempt, op.outcome); err != nil {
			op.err = err
			continue
		}
		w.add(e, queue, op.attempt, d)
		changed[e.UUID] = e
	}
	if len(changed) == 0 {
		return nil
	}
	if err := w.write(ctx, tx, changed); err != nil {
		return err
	}
	for _, op := range batch {
		if e := changed[op.uuid]; e != nil && op.err == nil && op.result == nil {
			op.result = cloneEvent(e)
		}
	}
	return nil
}

// lockDeliveryRows locks the batch's delivery rows and reads who holds each claim (an
// unclaimed row holds ""; a row that is gone is absent). A claim under way is waited
// for and then seen.
func lockDeliveryRows(ctx context.Context, tx pgx.Tx, batch []*attemptOp, events map[string]*store.Event) (map[[2]string]string, error) {
	refs := make([][2]string, 0, len(batch))
	for _, op := range batch {
		if e := events[op.uuid]; e != nil {
			refs = append(refs, [2]string{op.uuid, store.QueueKey(e.EndpointKey(), op.attempt.Destination)})
		}
	}
	slices.SortFunc(refs, func(a, b [2]string) int {
		if c := strings.Compare(a[0], b[0]); c != 0 {
			return c
		}
		return strings.Compare(a[1], b[1])
	})
	refs = slices.Compact(refs)
	uuids, queues := make([]string, len(refs)), make([]string, len(refs))
	for i, r := range refs {
		uuids[i], queues[i] = r[0], r[1]
	}
	rows, err := tx.Query(ctx, `SELECT d.uuid, d.queue, COALESCE(d.claimed_by, '') FROM deliveries d
		JOIN unnest($1::text[], $2::text[]) AS r (uuid, queue) ON d.uuid = r.uuid AND d.queue = r.queue
		ORDER BY d.uuid, d.queue FOR UPDATE OF d`, uuids, queues)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	holders := make(map[[2]string]string, len(refs))
	for rows.Next() {
		var ref [2]string
		var holder string
		if err := rows.Scan(&ref[0], &ref[1], &holder); err != nil {
			return nil, err
		}
		if holder != "" {
			holders[ref] = holder
		}
	}
	return holders, rows.Err()
}

// attemptWrites are a batch's changes, as the columns of its statements.
type attemptWrites struct {
	doneUUIDs, doneQueues []string // delivery rows the attempts end

	attUUIDs, attQueues []string
	attNumbers          []int32
	attStarted          []time.Time
	attDurations        []int64
	attCodes            []int32
	attErrors           []string

	retryUUIDs, retryQueues []string
	retryDue                []time.Time
}

func (w *attemptWrites) add(e *store.Event, queue string, a store.Attempt, d *store.DeliveryState) {
	w.doneUUIDs, w.doneQueues = append(w.doneUUIDs, e.UUID), append(w.doneQueues, queue)
	w.attUUIDs, w.attQueues = append(w.attUUIDs, e.UUID), append(w.attQueues, queue)
	w.attNumbers, w.attStarted = append(w.attNumbers, a.Number), append(w.attStarted, micro(a.StartedAt))
	w.attDurations, w.attCodes, w.attErrors = append(w.attDurations, int64(a.Duration)), append(w.attCodes, a.ResponseCode), append(w.attErrors, a.Error)
	if d.Phase == store.PhaseRetrying {
		w.retryUUIDs, w.retryQueues = append(w.retryUUIDs, e.UUID), append(w.retryQueues, queue)
		w.retryDue = append(w.retryDue, micro(*d.NextAttemptAt))
	}
}

// write sends the batch's statements in one round trip: the delivery rows ended, the
// attempts, the retries queued again, each changed event's state (its next version) and
// its reflection mark. Rows go in key order.
func (w *attemptWrites) write(ctx context.Context, tx pgx.Tx, changed map[string]*store.Event) error {
	ids := make([]string, 0, len(changed))
	for id := range changed {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	n := len(ids)
	var (
		phases, lastErrors          = make([]string, n), make([]string, n)
		attempts, codes, bases      = make([]int32, n), make([]int32, n), make([]int32, n)
		lastAt, nextAt, deliveredAt = make([]*time.Time, n), make([]*time.Time, n), make([]*time.Time, n)
		deliveries                  = make([][]byte, n)
		versions                    = make([]int64, n)
	)
	for i, id := range ids {
		e := changed[id]
		*e = asStored(*e)
		e.Version++
		js, err := deliveriesJSON(e)
		if err != nil {
			return err
		}
		phases[i], lastErrors[i] = string(e.Phase), e.LastError
		attempts[i], codes[i], bases[i] = e.Attempts, e.LastResponseCode, e.AttemptBase
		lastAt[i], nextAt[i], deliveredAt[i] = e.LastAttemptAt, e.NextAttemptAt, e.DeliveredAt
		deliveries[i], versions[i] = js, int64(e.Version) //nolint:gosec // versions are small
	}
	b := &pgx.Batch{}
	b.Queue(`DELETE FROM deliveries d USING unnest($1::text[], $2::text[]) AS r (uuid, queue)
		WHERE d.uuid = r.uuid AND d.queue = r.queue`, w.doneUUIDs, w.doneQueues)
	b.Queue(`INSERT INTO attempts (uuid, queue, number, started_at, duration_ns, response_code, error)
		SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::timestamptz[], $5::bigint[], $6::int[], $7::text[])
		ORDER BY 1, 2, 3
		ON CONFLICT (uuid, queue, number) DO UPDATE SET started_at = EXCLUDED.started_at,
			duration_ns = EXCLUDED.duration_ns, response_code = EXCLUDED.response_code, error = EXCLUDED.error`,
		w.attUUIDs, w.attQueues, w.attNumbers, w.attStarted, w.attDurations, w.attCodes, w.attErrors)
	if len(w.retryUUIDs) > 0 {
		b.Queue(`INSERT INTO deliveries (uuid, queue, due_at, ready_at)
			SELECT u, q, t, t FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS r (u, q, t) ORDER BY u, q
			ON CONFLICT (uuid, queue) DO UPDATE SET due_at = EXCLUDED.due_at, ready_at = EXCLUDED.ready_at,
				claimed_by = NULL, lease_until = NULL`, w.retryUUIDs, w.retryQueues, w.retryDue)
	}
	b.Queue(`UPDATE events e SET phase = s.phase, attempts = s.attempts, last_attempt_at = s.last_at,
			next_attempt_at = s.next_at, last_response_code = s.code, last_error = s.last_error,
			delivered_at = s.delivered_at, attempt_base = s.base, deliveries = s.deliveries, version = s.version
		FROM unnest($1::text[], $2::text[], $3::int[], $4::timestamptz[], $5::timestamptz[], $6::int[], $7::text[],
			$8::timestamptz[], $9::int[], $10::jsonb[], $11::bigint[])
			AS s (uuid, phase, attempts, last_at, next_at, code, last_error, delivered_at, base, deliveries, version)
		WHERE e.uuid = s.uuid`,
		ids, phases, attempts, lastAt, nextAt, codes, lastErrors, deliveredAt, bases, deliveries, versions)
	b.Queue(`INSERT INTO reflect (uuid, version) SELECT * FROM unnest($1::text[], $2::bigint[]) ORDER BY 1
		ON CONFLICT (uuid) DO UPDATE SET version = EXCLUDED.version`, ids, versions)
	return tx.SendBatch(ctx, b).Close()
}

// cloneEvent is a copy of e whose deliveries a later attempt of the batch cannot change.
func cloneEvent(e *store.Event) *store.Event {
	c := *e
	c.Deliveries = slices.Clone(e.Deliveries)
	return &c
}
