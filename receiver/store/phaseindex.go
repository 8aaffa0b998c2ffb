package store

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// The phase indexes let the maintenance work that concerns a few events find them without
// reading every event: "redeliver every Failed event of an endpoint" reads that
// endpoint's Failed events, and pruning reads the finished events past their endpoint's
// cutoff. Both run in small transactions of their own, outside the group commit, so no
// tenant's maintenance holds another's ingest for longer than one small transaction.
var (
	// endpointKey \x00 uuid -> nil: events whose aggregate phase is Failed.
	bucketFailed = []byte("failed")
	// endpointKey \x00 receivedAt(8) uuid -> nil: finished events (Delivered, Failed,
	// Stored), in the order pruning removes them.
	bucketFinished = []byte("finished")
)

// tokenPhaseIndexes marks a store whose phase indexes are complete: a store written by an
// earlier release gets them built once, at the first open.
const tokenPhaseIndexes = "layout\x00phase-indexes"

func failedKey(e *Event) []byte { return []byte(e.EndpointKey() + "\x00" + e.UUID) }

func finishedKey(e *Event) []byte {
	return append(append([]byte(e.EndpointKey()+"\x00"), timeKey(e.ReceivedAt)...), e.UUID...)
}

// reindex brings the phase indexes in line with e's phase, was being the phase the
// indexes hold it under ("" for a new event): a write adds or removes keys only when the
// phase crosses a boundary, so writing a new event, or one whose phase stays on the same
// side, costs no index write.
func reindex(tx kvTx, e *Event, was string) error {
	if err := reindexPhase(tx, e, was); err != nil {
		return err
	}
	wasFinished := was == PhaseDelivered || was == PhaseFailed || was == PhaseStored
	if failed := e.Phase == PhaseFailed; failed != (was == PhaseFailed) {
		if err := putOrDelete(tx.Bucket(bucketFailed), failedKey(e), failed); err != nil {
			return err
		}
	}
	if finished := e.Finished(); finished != wasFinished {
		if err := putOrDelete(tx.Bucket(bucketFinished), finishedKey(e), finished); err != nil {
			return err
		}
	}
	return nil
}

// unindex removes e's phase index keys (the event is being deleted).
func unindex(tx kvTx, e *Event) error {
	for _, del := range []struct {
		bucket []byte
		key    []byte
	}{{bucketFailed, failedKey(e)}, {bucketFinished, finishedKey(e)}} {
		if err := tx.Bucket(del.bucket).Delete(del.key); err != nil {
			return err
		}
	}
	return nil
}

func putOrDelete(b kvBucket, key []byte, put bool) error {
	if put {
		return b.Put(key, nil)
	}
	return b.Delete(key)
}

// forEachEvent calls fn with every stored event (for the migrations that index them).
func forEachEvent(tx kvTx, fn func(*Event) error) error {
	return tx.Bucket(bucketEvents).ForEach(func(k, v []byte) error {
		var e Event
		if err := json.Unmarshal(v, &e); err != nil {
			return fmt.Errorf("event %s is unreadable: %w", k, err)
		}
		e.Normalize()
		return fn(&e)
	})
}

// buildPhaseIndexes indexes every event of a store from before the phase indexes, once.
func buildPhaseIndexes(tx kvTx) error {
	tokens := tx.Bucket(bucketTokens)
	if tokens.Get([]byte(tokenPhaseIndexes)) != nil {
		return nil
	}
	if err := forEachEvent(tx, func(e *Event) error { return reindex(tx, e, "") }); err != nil {
		return err
	}
	if err := buildDailyDayIndex(tx); err != nil {
		return err
	}
	return tokens.Put([]byte(tokenPhaseIndexes), []byte("1"))
}

// nextPrefix is the first key after every key that starts with prefix + "\x00".
func nextPrefix(prefix []byte) []byte {
	return append(bytes.Clone(prefix), 1)
}
