package store

import (
	"bytes"
	"context"
)

// Selection picks the events of the events API's lists (kubectl get webhookevents): a
// namespace's, or every namespace's, narrowed by the label and field selectors it
// serves. An event is in its partner's namespace, as its WebhookEvent always was.
type Selection struct {
	// Namespace is the partner's namespace; "" is every namespace.
	Namespace string
	// Partner and Endpoint are names in Namespace; Phase and EventID match exactly.
	Partner, Endpoint, Phase, EventID string
	// Before is the cursor (the last uuid of the previous page); Limit bounds the page
	// (1 – MaxListLimit).
	Before string
	Limit  int
}

// Matches reports whether e is selected (the cursor aside).
func (sel Selection) Matches(e *Event) bool {
	return (sel.Namespace == "" || e.PartnerNamespace == sel.Namespace) &&
		(sel.Partner == "" || e.Partner == sel.Partner) &&
		(sel.Endpoint == "" || (e.Endpoint == sel.Endpoint && e.EndpointNamespace == e.PartnerNamespace)) &&
		(sel.Phase == "" || e.Phase == sel.Phase) &&
		(sel.EventID == "" || e.EventID == sel.EventID)
}

// The embedded store's listing indexes, each in uuid (time) order under its prefix:
//
//	bynamespace: partner namespace \x00 uuid
//	byendpoint:  endpoint key \x00 uuid
//	byphase:     partner namespace \x00 phase \x00 uuid (kept in line by reindex)
//
// A selection walks the narrowest index it names (the partner's events, an endpoint's,
// a phase's in a namespace, a namespace's, or every event) and checks the rest of the
// selection on what it reads, at most MaxListScan events a page.
var (
	bucketByNamespace = []byte("bynamespace")
	bucketByEndpoint  = []byte("byendpoint")
	bucketByPhase     = []byte("byphase")
)

func byNamespaceKey(e *Event) []byte { return []byte(e.PartnerNamespace + "\x00" + e.UUID) }
func byEndpointKey(e *Event) []byte  { return []byte(e.EndpointKey() + "\x00" + e.UUID) }
func byPhaseKey(e *Event, phase string) []byte {
	return []byte(e.PartnerNamespace + "\x00" + phase + "\x00" + e.UUID)
}

// indexForListing adds a new event's namespace and endpoint keys (its phase key is
// reindex's).
func indexForListing(tx kvTx, e *Event) error {
	if err := timeOrdered(tx, bucketByNamespace).Put(byNamespaceKey(e), nil); err != nil {
		return err
	}
	return timeOrdered(tx, bucketByEndpoint).Put(byEndpointKey(e), nil)
}

// unindexForListing removes a deleted event's listing keys.
func unindexForListing(tx kvTx, e *Event) error {
	for _, del := range []struct {
		bucket []byte
		key    []byte
	}{{bucketByNamespace, byNamespaceKey(e)}, {bucketByEndpoint, byEndpointKey(e)}, {bucketByPhase, byPhaseKey(e, e.Phase)}} {
		if err := tx.Bucket(del.bucket).Delete(del.key); err != nil {
			return err
		}
	}
	return nil
}

// reindexPhase moves e's phase key from was ("" for a new event) to its phase.
func reindexPhase(tx kvTx, e *Event, was string) error {
	if was == e.Phase {
		return nil
	}
	b := tx.Bucket(bucketByPhase)
	if was != "" {
		if err := b.Delete(byPhaseKey(e, was)); err != nil {
			return err
		}
	}
	return b.Put(byPhaseKey(e, e.Phase), nil)
}

const tokenListingIndexes = "layout/listing-indexes"

// buildListingIndexes indexes every event of a store from before the listing indexes,
// once.
func buildListingIndexes(tx kvTx) error {
	tokens := tx.Bucket(bucketTokens)
	if tokens.Get([]byte(tokenListingIndexes)) != nil {
		return nil
	}
	if err := forEachEvent(tx, func(e *Event) error {
		if err := indexForListing(tx, e); err != nil {
			return err
		}
		return tx.Bucket(bucketByPhase).Put(byPhaseKey(e, e.Phase), nil)
	}); err != nil {
		return err
	}
	return tokens.Put([]byte(tokenListingIndexes), []byte("1"))
}

// ListSelected implements Store.
func (s *Embedded) ListSelected(_ context.Context, sel Selection) ([]Event, string, error) {
	bucket, prefix := bucketEvents, ""
	switch {
	case sel.Namespace != "" && sel.Partner != "":
		bucket, prefix = bucketByPartner, sel.Namespace+"/"+sel.Partner+"\x00"
	case sel.Namespace != "" && sel.Endpoint != "":
		bucket, prefix = bucketByEndpoint, sel.Namespace+"/"+sel.Endpoint+"\x00"
	case sel.Namespace != "" && sel.Phase != "":
		bucket, prefix = bucketByPhase, sel.Namespace+"\x00"+sel.Phase+"\x00"
	case sel.Namespace != "":
		bucket, prefix = bucketByNamespace, sel.Namespace+"\x00"
	}
	var out []Event
	next := ""
	err := s.eng.view(func(tx kvTx) error {
		out, next = walkNewestFirst(tx, bucket, []byte(prefix), sel.Before, sel.Limit, func(e *Event) (bool, bool) {
			return sel.Matches(e), true
		})
		return nil
	})
	return out, next, err
}

// walkNewestFirst reads the events an index lists under prefix (its keys are prefix +
// uuid), newest first, from before the cursor on: match says whether an event is on the
// page and whether older ones may still be. It stops at limit events or MaxListScan
// looked at, and returns the page and the cursor of the next ("" at the end).
func walkNewestFirst(tx kvTx, bucket, prefix []byte, before string, limit int, match func(*Event) (take, goOn bool)) ([]Event, string) {
	var out []Event
	c := tx.Bucket(bucket).Cursor()
	// Seek lands on the first key at or after target (the cursor itself, or past the
	// prefix's last key): the page starts one step back.
	target := nextPrefixOf(prefix)
	if before != "" {
		target = append(bytes.Clone(prefix), before...)
	}
	var k []byte
	if target == nil {
		k, _ = c.Last()
	} else if k, _ = c.Seek(target); k == nil {
		k, _ = c.Last()
	} else {
		k, _ = c.Prev()
	}
	last := ""
	for scanned := 0; k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Prev() {
		uuid := string(k[len(prefix):])
		if scanned++; scanned > MaxListScan {
			return out, last // the cursor is exclusive: the next page starts at uuid
		}
		last = uuid
		e, err := getEvent(tx, uuid)
		if err != nil {
			continue // pruned while indexed: nothing to show
		}
		take, goOn := match(e)
		if !goOn {
			return out, ""
		}
		if !take {
			continue
		}
		out = append(out, *e)
		if len(out) == limit {
			return out, uuid
		}
	}
	return out, ""
}

// nextPrefixOf is the first key after every key that starts with prefix (nil: the
// prefix is empty, every key starts with it).
func nextPrefixOf(prefix []byte) []byte {
	if len(prefix) == 0 {
		return nil
	}
	next := bytes.Clone(prefix)
	next[len(next)-1]++ // prefixes end in \x00 or a printable byte: no overflow
	return next
}
