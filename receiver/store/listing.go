package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// ListQuery selects a partner's events for the partner API, newest first.
type ListQuery struct {
	// Phase and Type, when set, must match exactly.
	Phase, Type string
	// Since, when set, excludes events received before it.
	Since time.Time
	// Before is the cursor: only events older than this uuid (the last one of the
	// previous page).
	Before string
	// Limit bounds the page (1 – MaxListLimit).
	Limit int
}

// MaxListLimit bounds a page; MaxListScan bounds the events one call looks at, on every
// store, so that a selective filter over a large history costs a bounded read and hands
// back a cursor to go on from: a page shorter than its limit with a cursor stopped
// there (ListStoppedEarly).
const (
	MaxListLimit = 200
	MaxListScan  = 5000
)

// ListStoppedEarly reports whether a page of ListEvents ended at the scan bound rather
// than at the end of the partner's events or at the page's limit.
func ListStoppedEarly(q ListQuery, events int, next string) bool {
	return next != "" && events < q.Limit
}

// Matches reports whether e passes the query's filters (not the cursor).
func (q ListQuery) Matches(e *Event) bool {
	return (q.Phase == "" || e.Phase == q.Phase) && (q.Type == "" || e.Type == q.Type) && (q.Since.IsZero() || !e.ReceivedAt.Before(q.Since))
}

// bucketByPartner lists each partner's events in uuid (time) order:
// partnerKey \x00 uuid -> nil.
var bucketByPartner = []byte("bypartner")

func byPartnerKey(partnerKey, uuid string) []byte { return []byte(partnerKey + "\x00" + uuid) }

// ListEvents implements Store.
func (s *Embedded) ListEvents(_ context.Context, partnerKey string, q ListQuery) ([]Event, string, error) {
	var out []Event
	next := ""
	err := s.eng.view(func(tx kvTx) error {
		out, next = walkNewestFirst(tx, bucketByPartner, []byte(partnerKey+"\x00"), q.Before, q.Limit, func(e *Event) (bool, bool) {
			if !q.Since.IsZero() && e.ReceivedAt.Before(q.Since) {
				return false, false // older ones follow
			}
			return q.Matches(e), true
		})
		return nil
	})
	return out, next, err
}

// buildPartnerIndex indexes the events of a file from before the partner API.
func buildPartnerIndex(tx kvTx) error {
	idx := tx.Bucket(bucketByPartner)
	return tx.Bucket(bucketEvents).ForEach(func(k, v []byte) error {
		var e Event
		if err := json.Unmarshal(v, &e); err != nil {
			return fmt.Errorf("event %s is unreadable: %w", k, err)
		}
		return idx.Put(byPartnerKey(e.PartnerKey(), e.UUID), nil)
	})
}
