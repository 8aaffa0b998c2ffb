// Package postgres is the PostgreSQL implementation of store.Store, for several receiver
// replicas sharing one database. It behaves as the embedded bbolt store does (the
// storetest suite is the contract); what differs is where the data lives and that
// several processes may write at once, which the transactions here are written for.
package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hookgate/hookgate/receiver/store"
)

// DefaultMaxConns is each replica's pool size unless --database-max-conns (or the URL's
// pool_max_conns) says otherwise: room for ingest, claims, attempt records, the LISTEN
// connection and maintenance at once, and three replicas within PostgreSQL's default 100
// connections.
const DefaultMaxConns = 16

// DefaultStatementTimeout bounds every statement of the receiver's sessions unless
// --database-statement-timeout says otherwise: a partner-facing request answers 503
// instead of holding a connection behind a slow statement. Migrations run without it.
const DefaultStatementTimeout = 10 * time.Second

// PartnerShareDivisor sets one partner's share of the pool for the calls that take a
// connection each (the event list): at most MaxConns / PartnerShareDivisor (and at least
// one) of them at once. Ingest takes none of its own (ingestbatch.go).
const PartnerShareDivisor = 4

// Options tunes the store. The zero value is usable.
type Options struct {
	// MaxConns bounds the connection pool; zero means DefaultMaxConns, unless the
	// database URL sets pool_max_conns.
	MaxConns int32
	// StatementTimeout bounds each statement (zero: DefaultStatementTimeout; negative:
	// none).
	StatementTimeout time.Duration
	// Observe, when set, receives each write transaction's duration, commit included
	// (batch is always 1: PostgreSQL groups commits itself).
	Observe store.CommitObserver
	// OnListenError, when set, hears why the LISTEN connection broke (it reconnects).
	OnListenError func(error)
}

// Store is the PostgreSQL event store.
type Store struct {
	pool       *pgxpool.Pool
	connConfig *pgx.ConnConfig
	observe    store.CommitObserver
	closed     atomic.Bool
	slots      *partnerSlots
	ingestQ    *batchQueue[*ingestOp]
	attemptQ   *batchQueue[*attemptOp]

	notify        chan struct{}
	stopNotifier  context.CancelFunc
	notifierDone  chan struct{}
	onListenError func(error)
	// changes is the log of committed changes of events, for the events API's
	// watches; followChanges fills it.
	changes      *store.ChangeLog
	followerDone chan struct{}
}

var (
	_ store.Store    = (*Store)(nil)
	_ store.Listener = (*Store)(nil)
)

// durableCommits makes a session's COMMIT return only once the transaction would survive
// a failover, since ingest answers 202 right after it. off and local return before a
// standby has the WAL, and remote_write once a standby has it in memory but not on disk:
// a promoted standby, or one that crashed with the primary, loses events already
// acknowledged. on waits for the standbys' flush (or the local one without synchronous
// standbys) and remote_apply waits longer still, so only remote_apply is kept.
func durableCommits(ctx context.Context, conn *pgx.Conn) error {
	var mode string
	if err := conn.QueryRow(ctx, "SELECT current_setting('synchronous_commit')").Scan(&mode); err != nil {
		return err
	}
	if mode == "on" || mode == "remote_apply" {
		return nil
	}
	_, err := conn.Exec(ctx, "SET synchronous_commit TO on")
	return err
}

// Open connects to databaseURL (a PostgreSQL URL or keyword/value string, as pgx
// accepts), creates or migrates the schema in its search_path and returns the store.
// A database migrated by a newer receiver is refused.
func Open(ctx context.Context, databaseURL string, opts Options) (*Store, error) {
	config, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("parsing the database URL: %w", err)
	}
	switch {
	case opts.MaxConns > 0:
		config.MaxConns = opts.MaxConns
	case !strings.Contains(databaseURL, "pool_max_conns"):
		config.MaxConns = DefaultMaxConns
	}
	timeout := opts.StatementTimeout
	if timeout == 0 {
		timeout = DefaultStatementTimeout
	}
	if timeout > 0 {
		config.ConnConfig.RuntimeParams["statement_timeout"] = strconv.FormatInt(timeout.Milliseconds(), 10)
	}
	config.AfterConnect = durableCommits
	pool, err := pgxpool.NewWithConfig(ctx, config)
	if err != nil {
		return nil, fmt.Errorf("connecting to the database: %w", err)
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		if errors.Is(err, ErrSchemaTooNew) {
			return nil, err
		}
		return nil, fmt.Errorf("preparing the event store: %w", err)
	}
	observe := opts.Observe
	if observe == nil {
		observe = func(time.Duration, int) {}
	}
	notifyCtx, stopNotifier := context.WithCancel(context.Background())
	s := &Store{
		pool: pool, connConfig: config.ConnConfig, observe: observe, slots: newPartnerSlots(int(config.MaxConns) / PartnerShareDivisor),
		notify: make(chan struct{}, 1), stopNotifier: stopNotifier, notifierDone: make(chan struct{}),
		onListenError: opts.OnListenError, changes: store.NewChangeLog(0), followerDone: make(chan struct{}),
	}
	go s.notifyLoop(notifyCtx)
	go s.followChanges(notifyCtx)
	s.startIngestCommitters()
	s.startAttemptCommitters()
	return s, nil
}

// ---------------------------------------------------------------------------- plumbing

// errClosed maps the errors of a closed store to store.ErrClosed.
func (s *Store) errClosed(err error) error {
	if err != nil && s.closed.Load() && !errors.Is(err, store.ErrClosed) {
		return fmt.Errorf("%w (%w)", store.ErrClosed, err)
	}
	return err
}

// maxTxRetries bounds the reruns of a transaction PostgreSQL aborted for a deadlock or a
// serialization failure: both leave nothing written, so the transaction can run again.
const maxTxRetries = 5

func retryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40001" || pgErr.Code == "40P01")
}

// write runs fn in a transaction of its own and returns once it is committed (durable)
// or rolled back.
func (s *Store) write(ctx context.Context, fn func(tx pgx.Tx) error) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	started := time.Now()
	err := s.retryTx(ctx, fn)
	if err == nil {
		s.observe(time.Since(started), 1)
	}
	return s.errClosed(err)
}

// retryTx runs fn in a transaction, again after a deadlock or a serialization failure.
func (s *Store) retryTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	var err error
	for range maxTxRetries {
		if err = s.runTx(ctx, fn); !retryable(err) {
			break
		}
	}
	return err
}

// runTx runs fn in a transaction. The work follows ctx, but COMMIT does not: a caller
// that gave up while COMMIT was under way would otherwise be told "failed" about a
// transaction that may well be durable, and "answered" must mean "durable".
func (s *Store) runTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return err
	}
	return tx.Commit(context.WithoutCancel(ctx))
}

// read checks that the store is open before a read.
func (s *Store) read() error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	return nil
}

// querier is a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// eventColumns are the events columns scanEvent reads, in its order.
const eventColumns = `e.uuid, e.event_id, e.type, e.partner_namespace, e.partner, e.endpoint_namespace, e.endpoint,
	e.received_at, e.payload_sha256, e.size_bytes, e.content_type, e.phase, e.attempts, e.last_attempt_at,
	e.next_attempt_at, e.last_response_code, e.last_error, e.delivered_at, e.attempt_base, e.version,
	e.sub_type, e.tenant, e.reason, e.deliveries`

// scanEvent reads eventColumns, and then into extra the columns a query selects after
// them.
func scanEvent(row pgx.Row, extra ...any) (store.Event, error) {
	var e store.Event
	var version int64
	var deliveries []byte
	err := row.Scan(append([]any{&e.UUID, &e.EventID, &e.Type, &e.PartnerNamespace, &e.Partner, &e.EndpointNamespace, &e.Endpoint,
		&e.ReceivedAt, &e.PayloadSHA256, &e.SizeBytes, &e.ContentType, &e.Phase, &e.Attempts, &e.LastAttemptAt,
		&e.NextAttemptAt, &e.LastResponseCode, &e.LastError, &e.DeliveredAt, &e.AttemptBase, &version,
		&e.SubType, &e.Tenant, &e.Reason, &deliveries}, extra...)...)
	if err != nil {
		return e, err
	}
	e.Version = uint64(version) //nolint:gosec // versions start at 1 and only grow
	if len(deliveries) > 0 {
		if err := json.Unmarshal(deliveries, &e.Deliveries); err != nil {
			return e, fmt.Errorf("event %s: its deliveries are unreadable: %w", e.UUID, err)
		}
	}
	e.Normalize()
	return e, nil
}

// deliveriesJSON is the deliveries column of an event (NULL when it has none).
func deliveriesJSON(e *store.Event) ([]byte, error) {
	if len(e.Deliveries) == 0 {
		return nil, nil
	}
	return json.Marshal(e.Deliveries)
}

// getEvent reads one event; lock takes its row lock for the rest of the transaction.
func getEvent(ctx context.Context, q querier, uuid string, lock bool) (*store.Event, error) {
	sql := "SELECT " + eventColumns + " FROM events e WHERE e.uuid = $1"
	if lock {
		sql += " FOR UPDATE"
	}
	e, err := scanEvent(q.QueryRow(ctx, sql, uuid))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return &e, nil
}

func queryEvents(ctx context.Context, q querier, sql string, args ...any) ([]store.Event, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Event, error) { return scanEvent(row) })
}

// micro is a time as PostgreSQL keeps it: whole microseconds.
func micro(t time.Time) time.Time { return t.Truncate(time.Microsecond) }

func microPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	m := micro(*t)
	return &m
}

// asStored is the event as the database keeps it, so that what Ingest answers equals
// what Get reads back.
func asStored(e store.Event) store.Event {
	e.ReceivedAt = micro(e.ReceivedAt)
	e.LastAttemptAt = microPtr(e.LastAttemptAt)
	e.NextAttemptAt = microPtr(e.NextAttemptAt)
	e.DeliveredAt = microPtr(e.DeliveredAt)
	if len(e.Deliveries) > 0 {
		ds := make([]store.DeliveryState, len(e.Deliveries))
		for i, d := range e.Deliveries {
			d.LastAttemptAt, d.NextAttemptAt, d.DeliveredAt = microPtr(d.LastAttemptAt), microPtr(d.NextAttemptAt), microPtr(d.DeliveredAt)
			ds[i] = d
		}
		e.Deliveries = ds
	}
	return e
}

// enqueue puts an event's delivery to destination in its queue at due (or moves it
// there), unclaimed.
func enqueue(ctx context.Context, tx pgx.Tx, e *store.Event, destination string, due time.Time) error {
	due = micro(due)
	_, err := tx.Exec(ctx, `INSERT INTO deliveries (uuid, queue, due_at, ready_at) VALUES ($1, $2, $3, $3)
		ON CONFLICT (uuid, queue) DO UPDATE SET due_at = EXCLUDED.due_at, ready_at = EXCLUDED.ready_at,
			claimed_by = NULL, lease_until = NULL`, e.UUID, store.QueueKey(e.EndpointKey(), destination), due)
	return err
}

// saveState writes an event's delivery state (its deliveries and their aggregate) with
// the next version, and marks it unreflected.
func saveState(ctx context.Context, tx pgx.Tx, e *store.Event) error {
	*e = asStored(*e)
	deliveries, err := deliveriesJSON(e)
	if err != nil {
		return err
	}
	e.Version++
	if _, err := tx.Exec(ctx, `UPDATE events SET phase = $2, attempts = $3, last_attempt_at = $4,
		next_attempt_at = $5, last_response_code = $6, last_error = $7, delivered_at = $8, attempt_base = $9,
		deliveries = $10, version = $11 WHERE uuid = $1`,
		e.UUID, e.Phase, e.Attempts, e.LastAttemptAt, e.NextAttemptAt, e.LastResponseCode, e.LastError,
		e.DeliveredAt, e.AttemptBase, deliveries, int64(e.Version)); err != nil { //nolint:gosec // versions are small
		return err
	}
	return markChanged(ctx, tx, e)
}

// markChanged records that the event's version is not reflected yet.
func markChanged(ctx context.Context, tx pgx.Tx, e *store.Event) error {
	_, err := tx.Exec(ctx, `INSERT INTO reflect (uuid, version) VALUES ($1, $2)
		ON CONFLICT (uuid) DO UPDATE SET version = EXCLUDED.version`, e.UUID, int64(e.Version)) //nolint:gosec // small
	return err
}

// ---------------------------------------------------------------------------- Ingest

// Ingest implements store.Store. The dedup key, the event and the partner's usage are
// written in one transaction; it returns after COMMIT.
//
// Concurrent ingests of one key: the first INSERT of the key wins, and the others wait
// on its row until the winner commits (then they find it and answer a duplicate) or
// rolls back (then one of them inserts). A live key naming an event that is gone, or an
// expired key, is taken over under its row lock, which serialises takeovers the same way.
func (s *Store) Ingest(ctx context.Context, in store.Ingest) (store.IngestResult, error) {
	if s.closed.Load() {
		return store.IngestResult{}, store.ErrClosed
	}
	payload := in.Payload
	if payload == nil {
		payload = []byte{} // NULL is not an empty body
	}
	ev := in.Event
	ev.Normalize()
	ev.Aggregate()
	ev = asStored(ev)
	ev.Version = 1
	deliveries, err := deliveriesJSON(&ev)
	if err != nil {
		return store.IngestResult{}, err
	}
	return s.submit(ctx, &ingestOp{in: in, ev: ev, payload: payload, deliveries: deliveries, done: make(chan struct{})})
}

// ---------------------------------------------------------------------------- reads

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, uuid string) (*store.Event, error) {
	if err := s.read(); err != nil {
		return nil, err
	}
	e, err := getEvent(ctx, s.pool, uuid, false)
	return e, s.errClosed(err)
}

// FindByEventID implements store.Store.
func (s *Store) FindByEventID(ctx context.Context, partnerKey, eventID string) (*store.Event, error) {
	if err := s.read(); err != nil {
		return nil, err
	}
	e, err := scanEvent(s.pool.QueryRow(ctx, "SELECT "+eventColumns+` FROM events e
		WHERE e.partner_key = $1 AND e.event_id = $2 ORDER BY e.uuid DESC LIMIT 1`, partnerKey, eventID))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, s.errClosed(err)
	}
	return &e, nil
}

// Payload implements store.Store.
func (s *Store) Payload(ctx context.Context, uuid string) ([]byte, error) {
	if err := s.read(); err != nil {
		return nil, err
	}
	var body []byte
	err := s.pool.QueryRow(ctx, "SELECT body FROM payloads WHERE uuid = $1", uuid).Scan(&body)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, s.errClosed(err)
	}
	if body == nil {
		body = []byte{}
	}
	return body, nil
}

// Usage implements store.Store.
func (s *Store) Usage(ctx context.Context) (map[string]int64, error) {
	if err := s.read(); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT partner_key, sum(bytes)::bigint FROM (
		SELECT partner_key, bytes FROM usage UNION ALL SELECT partner_key, bytes FROM usage_shards) u
		GROUP BY partner_key HAVING sum(bytes) > 0`)
	if err != nil {
		return nil, s.errClosed(err)
	}
	out := map[string]int64{}
	var key string
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&key, &n}, func() error {
		out[key] = n
		return nil
	})
	if err != nil {
		return nil, s.errClosed(err)
	}
	return out, nil
}

// ---------------------------------------------------------------------------- queues

// DueQueues implements store.Store. It walks the distinct queues with a recursive
// skip scan of the (queue, due_at) index and reads each one's oldest due time from the
// same index, so a long queue costs one index descent, not one row per delivery.
func (s *Store) DueQueues(ctx context.Context, now time.Time) ([]store.Queue, error) {
	if err := s.read(); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `WITH RECURSIVE queues (queue) AS (
			(SELECT queue FROM deliveries ORDER BY queue LIMIT 1)
			UNION ALL
			SELECT (SELECT d.queue FROM deliveries d WHERE d.queue > q.queue ORDER BY d.queue LIMIT 1)
			FROM queues q WHERE q.queue IS NOT NULL
		)
		SELECT q.queue, head.due_at FROM queues q
		CROSS JOIN LATERAL (SELECT d.due_at FROM deliveries d WHERE d.queue = q.queue ORDER BY d.due_at LIMIT 1) head
		WHERE q.queue IS NOT NULL AND head.due_at <= $1
		ORDER BY q.queue`, now)
	if err != nil {
		return nil, s.errClosed(err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Queue, error) {
		var q store.Queue
		err := row.Scan(&q.Key, &q.OldestDue)
		return q, err
	})
	return out, s.errClosed(err)
}

// Due implements store.Store.
func (s *Store) Due(ctx context.Context, queue string, now time.Time, limit int) ([]store.Delivery, error) {
	if err := s.read(); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, nil
	}
	evs, err := queryEvents(ctx, s.pool, "SELECT "+eventColumns+` FROM deliveries d JOIN events e ON e.uuid = d.uuid
		WHERE d.queue = $1 AND d.due_at <= $2 ORDER BY d.due_at, d.uuid LIMIT $3`, queue, now, limit)
	if err != nil {
		return nil, s.errClosed(err)
	}
	return asDeliveries(queue, evs)
}

// asDeliveries are the events of a queue as its deliveries.
func asDeliveries(queue string, evs []store.Event) ([]store.Delivery, error) {
	_, _, destination, err := store.ParseQueueKey(queue)
	if err != nil {
		return nil, err
	}
	out := make([]store.Delivery, len(evs))
	for i, e := range evs {
		out[i] = store.Delivery{Event: e, Destination: destination}
	}
	return out, nil
}

// QueueDepth implements store.Store.
func (s *Store) QueueDepth(ctx context.Context) (int, error) {
	if err := s.read(); err != nil {
		return 0, err
	}
	var n int64
	err := s.pool.QueryRow(ctx, "SELECT count(*) FROM deliveries").Scan(&n)
	return int(n), s.errClosed(err)
}

// ---------------------------------------------------------------------------- attempts

// Abandon implements store.Store.
func (s *Store) Abandon(ctx context.Context, uuid, destination, reason string) (*store.Event, error) {
	var out *store.Event
	err := s.write(ctx, func(tx pgx.Tx) error {
		out = nil
		e, err := getEvent(ctx, tx, uuid, true)
		if err != nil {
			return err
		}
		out = e
		d := e.Delivery(destination)
		if d == nil {
			return fmt.Errorf("event %s has no delivery to destination %q: %w", uuid, destination, store.ErrNotFound)
		}
		if d.Finished() {
			return nil
		}
		if _, err := tx.Exec(ctx, "DELETE FROM deliveries WHERE uuid = $1 AND queue = $2", uuid, store.QueueKey(e.EndpointKey(), destination)); err != nil {
			return err
		}
		e.AbandonDelivery(d, reason)
		return saveState(ctx, tx, e)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Attempts implements store.Store.
func (s *Store) Attempts(ctx context.Context, uuid string) ([]store.Attempt, error) {
	if err := s.read(); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT queue, number, started_at, duration_ns, response_code, error
		FROM attempts WHERE uuid = $1 ORDER BY number, queue`, uuid)
	if err != nil {
		return nil, s.errClosed(err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Attempt, error) {
		var a store.Attempt
		var ns int64
		var queue string
		if err := row.Scan(&queue, &a.Number, &a.StartedAt, &ns, &a.ResponseCode, &a.Error); err != nil {
			return a, err
		}
		a.Duration = time.Duration(ns)
		_, _, a.Destination, err = store.ParseQueueKey(queue)
		return a, err
	})
	return out, s.errClosed(err)
}

// ---------------------------------------------------------------------------- requeue

// Requeue implements store.Store.
func (s *Store) Requeue(ctx context.Context, uuid, destination string, now time.Time) (*store.Event, error) {
	var out *store.Event
	queued := false
	err := s.write(ctx, func(tx pgx.Tx) error {
		out, queued = nil, false
		e, err := getEvent(ctx, tx, uuid, true)
		if err != nil {
			return err
		}
		if destination != "" && e.Delivery(destination) == nil {
			return fmt.Errorf("event %s has no delivery to destination %q: %w", uuid, destination, store.ErrNotFound)
		}
		out = e
		n, err := enqueueAll(ctx, tx, e, e.RequeueDeliveries(destination, micro(now)), now)
		queued = n > 0
		return err
	})
	if err != nil {
		return nil, err
	}
	if queued {
		s.queued()
	}
	return out, nil
}

// enqueueAll queues the named deliveries of e at now and saves its state.
func enqueueAll(ctx context.Context, tx pgx.Tx, e *store.Event, destinations []string, now time.Time) (int, error) {
	if len(destinations) == 0 {
		return 0, nil
	}
	for _, dest := range destinations {
		if err := enqueue(ctx, tx, e, dest, now); err != nil {
			return 0, err
		}
	}
	return len(destinations), saveState(ctx, tx, e)
}

// RequeueFailed implements store.Store. The endpoint's Failed events are read through
// their partial index in uuid order, a batch per transaction under its rows' locks.
func (s *Store) RequeueFailed(ctx context.Context, endpointKey, destination string, now time.Time) (int, error) {
	total, after := 0, ""
	for {
		n, full := 0, false
		err := s.write(ctx, func(tx pgx.Tx) error {
			n = 0
			evs, err := queryEvents(ctx, tx, "SELECT "+eventColumns+` FROM events e
				WHERE e.endpoint_key = $1 AND e.phase = 'Failed' AND e.uuid > $2
				ORDER BY e.uuid LIMIT $3 FOR UPDATE`, endpointKey, after, pruneBatch)
			if err != nil {
				return err
			}
			for i := range evs {
				e := &evs[i]
				queued, err := enqueueAll(ctx, tx, e, e.RequeueFailedDeliveries(destination, micro(now)), now)
				if err != nil {
					return err
				}
				if queued > 0 {
					n++
				}
			}
			if full = len(evs) == pruneBatch; full {
				after = evs[len(evs)-1].UUID
			}
			return nil
		})
		if err != nil {
			return total, err
		}
		total += n
		if !full {
			break
		}
	}
	if total > 0 {
		s.queued()
	}
	return total, nil
}

// ---------------------------------------------------------------------------- reflection

// Unreflected implements store.Store.
func (s *Store) Unreflected(ctx context.Context, limit int) ([]store.Event, error) {
	if err := s.read(); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, nil
	}
	evs, err := queryEvents(ctx, s.pool, "SELECT "+eventColumns+` FROM reflect r JOIN events e ON e.uuid = r.uuid
		ORDER BY r.uuid LIMIT $1`, limit)
	return evs, s.errClosed(err)
}

// MarkReflected implements store.Store.
func (s *Store) MarkReflected(ctx context.Context, uuid string, version uint64) error {
	return s.write(ctx, func(tx pgx.Tx) error {
		// A version beyond int64 is beyond every stored one.
		v := int64(min(version, uint64(1<<63-1))) //nolint:gosec // clamped
		_, err := tx.Exec(ctx, "DELETE FROM reflect WHERE uuid = $1 AND version <= $2", uuid, v)
		return err
	})
}

// ---------------------------------------------------------------------------- tokens

// Token implements store.Store.
func (s *Store) Token(ctx context.Context, name string) (string, error) {
	if err := s.read(); err != nil {
		return "", err
	}
	var value string
	err := s.pool.QueryRow(ctx, "SELECT value FROM tokens WHERE name = $1", name).Scan(&value)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	return value, s.errClosed(err)
}

// SetToken implements store.Store.
func (s *Store) SetToken(ctx context.Context, name, value string) error {
	return s.write(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO tokens (name, value) VALUES ($1, $2)
			ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value`, name, value)
		return err
	})
}

// ---------------------------------------------------------------------------- Prune

// foldUsage moves the usage shards into their partners' usage rows, so that the shards
// of committers long gone (replicas restarted since) do not pile up; the sum a quota
// check reads is the same before and after. Rows are locked in key order, as the
// committers lock theirs, so that no fold and batch wait for each other in a cycle.
func (s *Store) foldUsage(ctx context.Context) error {
	return s.write(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `WITH moved AS (
				DELETE FROM usage_shards WHERE (partner_key, writer) IN (
					SELECT partner_key, writer FROM usage_shards ORDER BY partner_key, writer FOR UPDATE)
				RETURNING partner_key, bytes),
			summed AS (SELECT partner_key, sum(bytes)::bigint AS bytes FROM moved GROUP BY partner_key)
			INSERT INTO usage (partner_key, bytes) SELECT partner_key, bytes FROM summed ORDER BY partner_key
			ON CONFLICT (partner_key) DO UPDATE SET bytes = usage.bytes + EXCLUDED.bytes`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "DELETE FROM usage WHERE bytes <= 0")
		return err
	})
}

// pruneBatch bounds the rows one Prune transaction removes, so that no ingest waits
// long behind it.
const pruneBatch = 256

// Prune implements store.Store. Expired dedup keys go first, then finished events in
// receipt order, each batch in a transaction of its own that also gives the removed
// payload bytes back to their partners.
func (s *Store) Prune(ctx context.Context, cutoff store.Cutoff, now time.Time) (int, error) {
	if err := s.foldUsage(ctx); err != nil {
		return 0, err
	}
	for {
		var n int64
		err := s.write(ctx, func(tx pgx.Tx) error {
			tag, err := tx.Exec(ctx, `DELETE FROM dedup WHERE key IN (
				SELECT key FROM dedup WHERE expires_at < $1 ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)`,
				now, pruneBatch)
			n = tag.RowsAffected()
			return err
		})
		if err != nil {
			return 0, err
		}
		if n < pruneBatch {
			break
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
	}

	endpoints := make([]string, 0, len(cutoff.ByEndpoint))
	cutoffs := make([]time.Time, 0, len(cutoff.ByEndpoint))
	for k, t := range cutoff.ByEndpoint {
		endpoints = append(endpoints, k)
		cutoffs = append(cutoffs, t)
	}
	latest := cutoff.Latest()
	// The batches walk the finished events in (received_at, uuid) order from where the
	// last one stopped, so events kept for their endpoint's longer retention are looked
	// at once per Prune, not once per batch.
	var fromAt time.Time
	fromID := ""
	removed := 0
	for {
		var n int
		var lastAt time.Time
		var lastID string
		err := s.write(ctx, func(tx pgx.Tx) error {
			n, lastID = 0, ""
			rows, err := tx.Query(ctx, `WITH doomed AS (
					SELECT e.uuid, e.received_at FROM events e
					LEFT JOIN unnest($3::text[], $4::timestamptz[]) AS c (endpoint_key, cutoff) ON c.endpoint_key = e.endpoint_key
					WHERE e.phase IN ('Delivered', 'Failed', 'Stored')
						AND e.received_at < $2
						AND e.received_at < coalesce(c.cutoff, $1)
						AND (e.received_at, e.uuid) > ($5, $6)
					ORDER BY e.received_at, e.uuid
					LIMIT $7
					FOR UPDATE OF e
				), removed AS (
					DELETE FROM events e USING doomed WHERE e.uuid = doomed.uuid
					RETURNING e.uuid, e.received_at, e.partner_key, e.payload_bytes
				)
				SELECT uuid, received_at, partner_key, payload_bytes FROM removed`,
				cutoff.Default, latest, endpoints, cutoffs, fromAt, fromID, pruneBatch)
			if err != nil {
				return err
			}
			freed := map[string]int64{}
			var id, partnerKey string
			var received time.Time
			var bytes int64
			if _, err := pgx.ForEachRow(rows, []any{&id, &received, &partnerKey, &bytes}, func() error {
				n++
				freed[partnerKey] += bytes
				if received.After(lastAt) || received.Equal(lastAt) && id > lastID || lastID == "" {
					lastAt, lastID = received, id
				}
				return nil
			}); err != nil {
				return err
			}
			// The bytes go back under the prune shard, partners in key order, so that
			// concurrent prunes lock its rows alike; the sum of a partner's rows is exact
			// whether or not its ingest shards were folded yet.
			partners := make([]string, 0, len(freed))
			for k := range freed {
				partners = append(partners, k)
			}
			slices.Sort(partners)
			for _, k := range partners {
				if _, err := tx.Exec(ctx, `INSERT INTO usage_shards (partner_key, writer, bytes) VALUES ($1, 'prune', $2)
					ON CONFLICT (partner_key, writer) DO UPDATE SET bytes = usage_shards.bytes + EXCLUDED.bytes`, k, -freed[k]); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return removed, err
		}
		removed += n
		if n < pruneBatch {
			return removed, nil
		}
		if err := ctx.Err(); err != nil {
			return removed, err
		}
		fromAt, fromID = lastAt, lastID
	}
}

// ---------------------------------------------------------------------------- health

// Healthy implements store.Store: nil while the database answers.
func (s *Store) Healthy() error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("the database does not answer: %w", s.errClosed(err))
	}
	return nil
}

// Close implements store.Store: it waits for the operations under way and closes the
// pool. Closing twice is harmless.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.stopIngestCommitters()
	s.stopAttemptCommitters()
	s.stopNotifier()
	<-s.notifierDone
	<-s.followerDone
	s.pool.Close()
	return nil
}
