package postgres

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/hookgate/hookgate/receiver/store"
)

// Ingest is group-committed: concurrent Ingest calls wait in a queue fair between
// namespaces (batchqueue.go), and each of a few committers takes whatever is waiting (up
// to maxIngestBatch, with no added wait: under load the queue fills while the previous
// batch commits) and writes it in one
// transaction of set-based statements. Every caller is answered after that COMMIT with
// its own outcome. A partner's ingest therefore holds no connection of its own, and the
// one WAL flush of a batch serves all of its events.
const (
	ingestCommitters = 4
	maxIngestBatch   = 128
	// ingestBatchTimeout bounds one batch's transaction; each statement has the session's
	// statement timeout besides.
	ingestBatchTimeout = 30 * time.Second
)

// ingestOp is one Ingest call waiting for its batch.
type ingestOp struct {
	in         store.Ingest
	ev         store.Event // as stored: normalised, aggregated, version 1
	payload    []byte
	deliveries []byte

	// The outcome, set by the committer before done is closed.
	result store.IngestResult
	err    error
	done   chan struct{}
}

func (s *Store) startIngestCommitters() {
	s.ingestQ = newBatchQueue(ingestCommitters, maxIngestBatch, func(op *ingestOp) string { return op.ev.EndpointNamespace }, func() func([]*ingestOp) {
		writer := usageWriter()
		return func(batch []*ingestOp) { s.commitBatch(writer, batch) }
	})
}

// stopIngestCommitters lets the committers finish their batch, answers what is still
// queued with ErrClosed and waits for them.
func (s *Store) stopIngestCommitters() {
	s.ingestQ.stop(func(op *ingestOp) {
		op.err = store.ErrClosed
		close(op.done)
	})
}

// submit queues op for a batch and waits for its outcome, or for ctx: a caller that gives
// up is told so, though its event may still be committed with its batch (a resend is
// then answered as its duplicate).
func (s *Store) submit(ctx context.Context, op *ingestOp) (store.IngestResult, error) {
	if err := s.ingestQ.send(ctx, op); err != nil {
		return store.IngestResult{}, err
	}
	select {
	case <-op.done:
		return op.result, op.err
	case <-ctx.Done():
		return store.IngestResult{}, ctx.Err()
	}
}

// usageWriter names a committer's usage shard: unique per committer of every process,
// so that no two transactions update one shard row.
func usageWriter() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// commitBatch writes a batch and answers its callers. A batch that fails for another
// reason than a closed store is written again one event at a time, so that one event's
// failure is its own and not its batch's.
func (s *Store) commitBatch(writer string, batch []*ingestOp) {
	ctx, cancel := context.WithTimeout(context.Background(), ingestBatchTimeout)
	defer cancel()
	started := time.Now()
	err := s.retryTx(ctx, func(tx pgx.Tx) error { return ingestBatch(ctx, tx, writer, batch) })
	switch {
	case err == nil:
		s.observe(time.Since(started), len(batch))
	case len(batch) > 1 && !s.closed.Load():
		for _, op := range batch {
			s.commitBatch(writer, []*ingestOp{op})
		}
		return
	default:
		err = s.errClosed(err)
		for _, op := range batch {
			op.result, op.err = store.IngestResult{}, err
		}
	}
	queued := false
	for _, op := range batch {
		if op.err == nil && !op.result.Duplicate && op.result.Event.Phase == store.PhaseQueued {
			queued = true
		}
		close(op.done)
	}
	if queued {
		s.queued()
	}
}

// ingestBatch writes a batch in one transaction, in this order, each step one statement
// for the whole batch and every row in key order (so that two replicas' batches never
// deadlock):
//  1. the dedup keys already stored are locked and read; a live one whose event is
//     still stored makes its event a duplicate of that one;
//  2. in arrival order, each remaining event is a duplicate of an earlier one of the
//     batch with its key, or refused for its partner's quota (the stored usage read
//     without a lock, plus the batch's own accepted bytes), or accepted;
//  3. the accepted events' dedup keys, records, payloads, reflection marks and queued
//     deliveries are written, and each partner's usage once, by the batch's total.
//
// A key another transaction claims meanwhile (step 3 finds it taken) reruns the batch
// as a serialization failure: the next run finds that key in step 1.
func ingestBatch(ctx context.Context, tx pgx.Tx, writer string, batch []*ingestOp) error {
	for _, op := range batch {
		op.result, op.err = store.IngestResult{}, nil
	}
	// 1. stored dedup keys
	var keys [][]byte
	seen := map[string]bool{}
	for _, op := range batch {
		if k := op.in.DedupKey; k != "" && !seen[k] {
			seen[k] = true
			keys = append(keys, []byte(k))
		}
	}
	slices.SortFunc(keys, bytes.Compare)
	stored := map[string]storedKey{}
	if len(keys) > 0 {
		rows, err := tx.Query(ctx, "SELECT key, expires_at, uuid FROM dedup WHERE key = ANY($1) ORDER BY key FOR UPDATE", keys)
		if err != nil {
			return err
		}
		for rows.Next() {
			var k []byte
			var sk storedKey
			if err := rows.Scan(&k, &sk.expires, &sk.uuid); err != nil {
				rows.Close()
				return err
			}
			stored[string(k)] = sk
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	originals := map[string]*store.Event{}
	if len(stored) > 0 {
		ids := make([]string, 0, len(stored))
		for _, sk := range stored {
			ids = append(ids, sk.uuid)
		}
		evs, err := queryEvents(ctx, tx, "SELECT "+eventColumns+" FROM events e WHERE e.uuid = ANY($1)", ids)
		if err != nil {
			return err
		}
		for i := range evs {
			originals[evs[i].UUID] = &evs[i]
		}
	}

	// 2. outcomes, in arrival order
	partners := map[string]bool{}
	for _, op := range batch {
		partners[op.ev.PartnerKey()] = true
	}
	used, err := readUsage(ctx, tx, partners)
	if err != nil {
		return err
	}
	acceptedBy := map[string]*ingestOp{} // dedup key -> the batch's event holding it
	var accepted []*ingestOp
	var reclaimed []*ingestOp // keys stored but expired, or whose event was pruned
	for _, op := range batch {
		key := op.in.DedupKey
		if key != "" {
			if sk, ok := stored[key]; ok && sk.expires.After(op.ev.ReceivedAt) {
				if original := originals[sk.uuid]; original != nil {
					op.result = store.IngestResult{Event: *original, Duplicate: true}
					continue
				}
			}
			if first := acceptedBy[key]; first != nil {
				op.result = store.IngestResult{Event: first.ev, Duplicate: true}
				continue
			}
		}
		partner := op.ev.PartnerKey()
		size := int64(len(op.payload))
		if op.in.QuotaBytes > 0 && used[partner]+size > op.in.QuotaBytes {
			op.err = store.ErrQuotaExceeded
			continue
		}
		used[partner] += size
		op.result = store.IngestResult{Event: op.ev}
		accepted = append(accepted, op)
		if key != "" {
			acceptedBy[key] = op
			if _, ok := stored[key]; ok {
				reclaimed = append(reclaimed, op)
			}
		}
	}
	if len(accepted) == 0 {
		return nil
	}
	return writeAccepted(ctx, tx, writer, accepted, acceptedBy, stored, reclaimed)
}

// storedKey is a dedup key as the database holds it.
type storedKey struct {
	expires time.Time
	uuid    string
}

// readUsage reads the partners' stored bytes, without a lock: the quota may be overshot
// by the batches that commit at the same time (docs/security.md).
func readUsage(ctx context.Context, tx pgx.Tx, partners map[string]bool) (map[string]int64, error) {
	keys := make([]string, 0, len(partners))
	for p := range partners {
		keys = append(keys, p)
	}
	used := make(map[string]int64, len(keys))
	rows, err := tx.Query(ctx, `SELECT partner_key, sum(bytes)::bigint FROM (
			SELECT partner_key, bytes FROM usage WHERE partner_key = ANY($1)
			UNION ALL SELECT partner_key, bytes FROM usage_shards WHERE partner_key = ANY($1)) u
		GROUP BY partner_key`, keys)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var k string
		var n int64
		if err := rows.Scan(&k, &n); err != nil {
			return nil, err
		}
		used[k] = n
	}
	return used, rows.Err()
}

// writeAccepted writes step 3 of ingestBatch.
func writeAccepted(ctx context.Context, tx pgx.Tx, writer string, accepted []*ingestOp, acceptedBy map[string]*ingestOp, stored map[string]storedKey, reclaimed []*ingestOp) error {
	// Dedup keys: new ones inserted, in key order; stored ones (expired, or their event
	// pruned) pointed at the new event.
	var newKeys [][]byte
	var newExpires []time.Time
	var newIDs []string
	for key, op := range acceptedBy {
		if _, ok := stored[key]; ok {
			continue
		}
		newKeys = append(newKeys, []byte(key))
		newExpires = append(newExpires, micro(op.ev.ReceivedAt.Add(op.in.DedupWindow)))
		newIDs = append(newIDs, op.ev.UUID)
	}
	if len(newKeys) > 0 {
		tag, err := tx.Exec(ctx, `INSERT INTO dedup (key, expires_at, uuid)
			SELECT k, x, u FROM unnest($1::bytea[], $2::timestamptz[], $3::text[]) AS t (k, x, u) ORDER BY k
			ON CONFLICT (key) DO NOTHING`, newKeys, newExpires, newIDs)
		if err != nil {
			return err
		}
		if int(tag.RowsAffected()) != len(newKeys) {
			return &pgconn.PgError{Code: "40001", Message: "a dedup key was claimed by another transaction meanwhile"}
		}
	}
	if len(reclaimed) > 0 {
		slices.SortFunc(reclaimed, func(a, b *ingestOp) int { return bytes.Compare([]byte(a.in.DedupKey), []byte(b.in.DedupKey)) })
		keys := make([][]byte, len(reclaimed))
		expires := make([]time.Time, len(reclaimed))
		ids := make([]string, len(reclaimed))
		for i, op := range reclaimed {
			keys[i], expires[i], ids[i] = []byte(op.in.DedupKey), micro(op.ev.ReceivedAt.Add(op.in.DedupWindow)), op.ev.UUID
		}
		if _, err := tx.Exec(ctx, `UPDATE dedup d SET expires_at = t.x, uuid = t.u
			FROM unnest($1::bytea[], $2::timestamptz[], $3::text[]) AS t (k, x, u) WHERE d.key = t.k`, keys, expires, ids); err != nil {
			return err
		}
	}

	events := make([][]any, 0, len(accepted))
	payloads := make([][]any, 0, len(accepted))
	reflects := make([][]any, 0, len(accepted))
	var deliveries [][]any
	delta := map[string]int64{}
	for _, op := range accepted {
		ev := &op.ev
		events = append(events, []any{ev.UUID, ev.PartnerKey(), ev.EndpointKey(), ev.EventID, ev.Type,
			ev.PartnerNamespace, ev.Partner, ev.EndpointNamespace, ev.Endpoint, ev.ReceivedAt, ev.PayloadSHA256, ev.SizeBytes,
			ev.ContentType, ev.Phase, ev.Attempts, ev.LastAttemptAt, ev.NextAttemptAt, ev.LastResponseCode, ev.LastError,
			ev.DeliveredAt, ev.AttemptBase, int64(ev.Version), int64(len(op.payload)), ev.SubType, ev.Tenant, ev.Reason, op.deliveries}) //nolint:gosec // version 1
		payloads = append(payloads, []any{ev.UUID, op.payload})
		reflects = append(reflects, []any{ev.UUID, int64(ev.Version)}) //nolint:gosec // version 1
		for i := range ev.Deliveries {
			if d := &ev.Deliveries[i]; d.Phase == store.PhaseQueued {
				due := micro(ev.DueAt(d))
				deliveries = append(deliveries, []any{ev.UUID, store.QueueKey(ev.EndpointKey(), d.Destination), due, due})
			}
		}
		delta[ev.PartnerKey()] += int64(len(op.payload))
	}
	for _, c := range []struct {
		table   string
		columns []string
		rows    [][]any
	}{
		{"events", []string{"uuid", "partner_key", "endpoint_key", "event_id", "type", "partner_namespace", "partner", "endpoint_namespace", "endpoint",
			"received_at", "payload_sha256", "size_bytes", "content_type", "phase", "attempts", "last_attempt_at", "next_attempt_at",
			"last_response_code", "last_error", "delivered_at", "attempt_base", "version", "payload_bytes", "sub_type", "tenant", "reason", "deliveries"}, events},
		{"payloads", []string{"uuid", "body"}, payloads},
		{"reflect", []string{"uuid", "version"}, reflects},
		{"deliveries", []string{"uuid", "queue", "due_at", "ready_at"}, deliveries},
	} {
		if len(c.rows) == 0 {
			continue
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{c.table}, c.columns, pgx.CopyFromRows(c.rows)); err != nil {
			return err
		}
	}
	// Each partner's usage once for the batch, in key order, in this committer's own
	// shard: no other transaction writes that row, so no batch waits for another's
	// COMMIT here.
	partners := make([]string, 0, len(delta))
	for p := range delta {
		partners = append(partners, p)
	}
	slices.Sort(partners)
	sums := make([]int64, len(partners))
	for i, p := range partners {
		sums[i] = delta[p]
	}
	_, err := tx.Exec(ctx, `INSERT INTO usage_shards (partner_key, writer, bytes)
		SELECT p, $3, b FROM unnest($1::text[], $2::bigint[]) AS t (p, b) ORDER BY p
		ON CONFLICT (partner_key, writer) DO UPDATE SET bytes = usage_shards.bytes + EXCLUDED.bytes`, partners, sums, writer)
	return err
}
