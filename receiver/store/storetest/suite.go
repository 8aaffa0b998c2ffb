// Package storetest is the behaviour every store.Store must have, written as tests that
// any implementation runs: the embedded bbolt store today, PostgreSQL next. What the
// receiver relies on is encoded here once, so that a second implementation cannot
// quietly differ from the first.
//
//	func TestMyStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { return openMine(t) })
//	}
//
// The suite passes every time in explicitly (a store must not read the clock for
// anything the interface hands it), keeps times to whole microseconds (PostgreSQL's
// precision) and makes time-ordered v7 uuids from each event's ReceivedAt, because
// stores may rely on uuid order being receive order (Prune does).
package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/hookgate/hookgate/receiver/store"
)

// Run runs every Store behaviour against stores made by open; each subtest gets a fresh, empty store.
//
// open must return an empty store that is ready to write, and may register its own
// cleanup with t. Run closes every store it opens when the subtest ends, also after the
// subtest closed it itself, so Close must be idempotent.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	h := &harness{open: open}
	t.Run("Ingest", h.testIngest)
	t.Run("Lookup", h.testLookup)
	t.Run("Payload", h.testPayload)
	t.Run("Due", h.testDue)
	t.Run("Queues", h.testQueues)
	t.Run("Claims", h.testClaims)
	t.Run("FanOut", h.testFanOut)
	t.Run("ListEvents", h.testListEvents)
	t.Run("ListScanBound", h.testListScanBound)
	t.Run("ListSelected", h.testListSelected)
	t.Run("ListSelectedScanBound", h.testListSelectedScanBound)
	t.Run("ChangeFeed", h.testChangeFeed)
	t.Run("DailyCounts", h.testDailyCounts)
	t.Run("RecordAttempt", h.testRecordAttempt)
	t.Run("Attempts", h.testAttempts)
	t.Run("Requeue", h.testRequeue)
	t.Run("RequeueFailed", h.testRequeueFailed)
	t.Run("Abandon", h.testAbandon)
	t.Run("Reflection", h.testReflection)
	t.Run("Tokens", h.testTokens)
	t.Run("Prune", h.testPrune)
	t.Run("Budgets", h.testBudgets)
	t.Run("Concurrency", h.testConcurrency)
	t.Run("Close", h.testClose)
}

type harness struct {
	open func(t *testing.T) store.Store
}

// fresh opens the store for one subtest and checks that it is empty and healthy.
func (h *harness) fresh(t *testing.T) store.Store {
	t.Helper()
	s := h.open(t)
	if s == nil {
		t.Fatal("open returned a nil store")
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("closing the store: %v", err)
		}
	})
	if err := s.Healthy(); err != nil {
		t.Fatalf("a freshly opened store is not healthy: %v", err)
	}
	if evs, err := s.Unreflected(t.Context(), 1); err != nil || len(evs) != 0 {
		t.Fatalf("open returned a store that is not empty: %d events (%v)", len(evs), err)
	}
	return s
}

// t0 is the suite's "now": fixed, in the past and with sub-second (but not sub-µs) digits.
var t0 = time.Date(2025, time.March, 14, 9, 26, 53, 589793000, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

// forever is a "now" at which everything pending is due.
var forever = at(10000 * time.Hour)

var idSeq atomic.Uint64

// newID makes a v7 uuid whose time is received: ids made for later times sort after
// earlier ones, and ids made for the same millisecond sort in the order they were made.
func newID(received time.Time) string {
	var u uuid.UUID
	binary.BigEndian.PutUint64(u[0:8], uint64(received.UnixMilli())<<16) //nolint:gosec // times after 1970
	u[6] = 0x70                                                          // version 7
	binary.BigEndian.PutUint64(u[8:16], idSeq.Add(1))
	u[8] = u[8]&0x3f | 0x80 // RFC 9562 variant
	return u.String()
}

type option func(*store.Ingest)

func partner(ns, name string) option {
	return func(in *store.Ingest) { in.Event.PartnerNamespace, in.Event.Partner = ns, name }
}

func endpoint(ns, name string) option {
	return func(in *store.Ingest) { in.Event.EndpointNamespace, in.Event.Endpoint = ns, name }
}

// stored is an event of an endpoint without a destination: kept, never delivered.
func stored() option {
	return func(in *store.Ingest) {
		in.Event.Phase, in.Event.Reason = store.PhaseStored, "no destination's filter matches"
	}
}

func nextAttemptAt(next time.Time) option {
	return func(in *store.Ingest) { in.Event.NextAttemptAt = &next }
}

func window(d time.Duration) option { return func(in *store.Ingest) { in.DedupWindow = d } }

// noDedup is an event without a partner event id: the server then sets no dedup key.
func noDedup() option { return func(in *store.Ingest) { in.DedupKey = "" } }

func body(b []byte) option { return func(in *store.Ingest) { in.Payload = b } }

const autoDedupKey = "\x00auto"

// newIngest makes an Ingest as the server does: a Queued event of partner ns/acme to
// endpoint ns/orders, deduplicated for an hour by partner, endpoint and event id.
func newIngest(received time.Time, eventID string, opts ...option) store.Ingest {
	id := newID(received)
	in := store.Ingest{
		Event: store.Event{
			UUID: id, EventID: eventID, Type: "order.created",
			PartnerNamespace: "ns", Partner: "acme", EndpointNamespace: "ns", Endpoint: "orders",
			ReceivedAt: received, ContentType: "application/json", Phase: store.PhaseQueued,
			SubType: "product:adv/adv-120", Tenant: "OU1243",
		},
		Payload:     fmt.Appendf(nil, `{"id":%q,"delivery":%q}`, eventID, id),
		DedupKey:    autoDedupKey,
		DedupWindow: time.Hour,
	}
	for _, o := range opts {
		o(&in)
	}
	if in.DedupKey == autoDedupKey {
		in.DedupKey = in.Event.PartnerKey() + "\x00" + in.Event.EndpointKey() + "\x00" + eventID
	}
	sum := sha256.Sum256(in.Payload)
	in.Event.PayloadSHA256 = hex.EncodeToString(sum[:])
	in.Event.SizeBytes = int64(len(in.Payload))
	return in
}

func mustIngest(t *testing.T, s store.Store, in store.Ingest) store.IngestResult {
	t.Helper()
	res, err := s.Ingest(t.Context(), in)
	if err != nil {
		t.Fatalf("ingesting %s: %v", in.Event.EventID, err)
	}
	return res
}

// add ingests an event that must be new and returns its uuid.
func add(t *testing.T, s store.Store, in store.Ingest) string {
	t.Helper()
	if res := mustIngest(t, s, in); res.Duplicate {
		t.Fatalf("ingesting %s: a duplicate of %s", in.Event.EventID, res.Event.UUID)
	}
	return in.Event.UUID
}

func mustGet(t *testing.T, s store.Store, id string) store.Event {
	t.Helper()
	e, err := s.Get(t.Context(), id)
	if err != nil {
		t.Fatalf("Get(%s): %v", id, err)
	}
	return *e
}

func attempt(number int32, started time.Time, took time.Duration, code int32, msg string) store.Attempt {
	return store.Attempt{Number: number, StartedAt: started, Duration: took, ResponseCode: code, Error: msg}
}

func retrying(next time.Time) store.Outcome {
	return store.Outcome{Phase: store.PhaseRetrying, NextAttemptAt: next}
}

var (
	delivered = store.Outcome{Phase: store.PhaseDelivered}
	failed    = store.Outcome{Phase: store.PhaseFailed}
)

// worker is the owner of the tests' claims (claimOne) and attempts (mustRecord).
const worker = "w"

func mustRecord(t *testing.T, s store.Store, id string, a store.Attempt, o store.Outcome) store.Event {
	t.Helper()
	return mustRecordAs(t, s, worker, id, a, o)
}

func mustRecordAs(t *testing.T, s store.Store, owner, id string, a store.Attempt, o store.Outcome) store.Event {
	t.Helper()
	e, err := s.RecordAttempt(t.Context(), owner, id, a, o)
	if err != nil {
		t.Fatalf("RecordAttempt(%s, %s, #%d, %s): %v", owner, id, a.Number, o.Phase, err)
	}
	return *e
}

func dueIDs(t *testing.T, s store.Store, now time.Time, limit int) []string {
	t.Helper()
	evs, err := allDue(t.Context(), s, now, limit)
	if err != nil {
		t.Fatalf("Due: %v", err)
	}
	ids := make([]string, len(evs))
	for i := range evs {
		ids[i] = evs[i].UUID
	}
	return ids
}

// allDue is every queue's due deliveries at now, oldest due first, at most limit: what
// the dispatcher could deliver if it could deliver everywhere.
func allDue(ctx context.Context, s store.Store, now time.Time, limit int) ([]store.Event, error) {
	queues, err := s.DueQueues(ctx, now)
	if err != nil {
		return nil, err
	}
	var out []store.Event
	for _, q := range queues {
		ds, err := s.Due(ctx, q.Key, now, limit)
		if err != nil {
			return nil, err
		}
		for _, d := range ds {
			out = append(out, d.Event)
		}
	}
	dueTime := func(e store.Event) time.Time {
		if e.NextAttemptAt != nil {
			return *e.NextAttemptAt
		}
		return e.ReceivedAt
	}
	slices.SortStableFunc(out, func(a, b store.Event) int {
		if c := dueTime(a).Compare(dueTime(b)); c != 0 {
			return c
		}
		return strings.Compare(a.UUID, b.UUID)
	})
	return out[:min(len(out), limit)], nil
}

// dueCount is how often id is in the due list at now.
func dueCount(t *testing.T, s store.Store, now time.Time, id string) int {
	t.Helper()
	n := 0
	for _, d := range dueIDs(t, s, now, 10000) {
		if d == id {
			n++
		}
	}
	return n
}

// unreflected maps every unreflected event to the version listed.
func unreflected(t *testing.T, s store.Store) map[string]uint64 {
	t.Helper()
	evs, err := s.Unreflected(t.Context(), 10000)
	if err != nil {
		t.Fatalf("Unreflected: %v", err)
	}
	out := make(map[string]uint64, len(evs))
	for _, e := range evs {
		if _, twice := out[e.UUID]; twice {
			t.Errorf("Unreflected lists %s twice", e.UUID)
		}
		out[e.UUID] = e.Version
	}
	return out
}

func mark(t *testing.T, s store.Store, id string, version uint64) {
	t.Helper()
	if err := s.MarkReflected(t.Context(), id, version); err != nil {
		t.Fatalf("MarkReflected(%s, %d): %v", id, version, err)
	}
}

func wantNotFound(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("%s: error %v, want ErrNotFound", what, err)
	}
}

func normTime(tm time.Time) time.Time { return tm.Round(0).UTC() }

func normTimePtr(tm *time.Time) *time.Time {
	if tm == nil {
		return nil
	}
	n := normTime(*tm)
	return &n
}

// normalize drops what a store need not keep of a time: monotonic reading, location.
func normalize(e store.Event) store.Event {
	e.ReceivedAt = normTime(e.ReceivedAt)
	e.LastAttemptAt = normTimePtr(e.LastAttemptAt)
	e.NextAttemptAt = normTimePtr(e.NextAttemptAt)
	e.DeliveredAt = normTimePtr(e.DeliveredAt)
	if len(e.Deliveries) == 1 && e.Deliveries[0].Destination == store.DefaultDestination {
		// One delivery's state is the event's own (Aggregate): the cases written for one
		// destination compare it there; the FanOut group compares deliveries.
		e.Deliveries = nil
	}
	if len(e.Deliveries) > 0 {
		ds := make([]store.DeliveryState, len(e.Deliveries))
		for i, d := range e.Deliveries {
			d.LastAttemptAt, d.NextAttemptAt, d.DeliveredAt = normTimePtr(d.LastAttemptAt), normTimePtr(d.NextAttemptAt), normTimePtr(d.DeliveredAt)
			ds[i] = d
		}
		e.Deliveries = ds
	}
	return e
}

func show(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%+v", v)
	}
	return string(b)
}

// sameEvent checks every field of an event.
func sameEvent(t *testing.T, label string, got, want store.Event) {
	t.Helper()
	if g, w := normalize(got), normalize(want); !reflect.DeepEqual(g, w) {
		t.Errorf("%s:\n got %s\nwant %s", label, show(g), show(w))
	}
}

func sameAttempts(t *testing.T, label string, got, want []store.Attempt) {
	t.Helper()
	norm := func(as []store.Attempt) []store.Attempt {
		out := make([]store.Attempt, len(as))
		for i, a := range as {
			a.StartedAt = normTime(a.StartedAt)
			if a.Destination == store.DefaultDestination {
				a.Destination = "" // as recorded by the single-destination cases
			}
			out[i] = a
		}
		return out
	}
	if g, w := norm(got), norm(want); !reflect.DeepEqual(g, w) {
		t.Errorf("%s:\n got %s\nwant %s", label, show(g), show(w))
	}
}

func mustAttempts(t *testing.T, s store.Store, id string) []store.Attempt {
	t.Helper()
	as, err := s.Attempts(t.Context(), id)
	if err != nil {
		t.Fatalf("Attempts(%s): %v", id, err)
	}
	return as
}

// storedAs is what the store must keep of an ingested event: all of it, with the
// store's own version.
func storedAs(in store.Ingest, version uint64) store.Event {
	e := in.Event
	e.Version = version
	return e
}

// ---------------------------------------------------------------------------- Ingest

func (h *harness) testIngest(t *testing.T) {
	// The server stores Queued events (the endpoint has a destination) and Stored ones
	// (it has none); a Queued event may name its first attempt's time.
	t.Run("new event", func(t *testing.T) {
		for _, tc := range []struct {
			name    string
			in      store.Ingest
			dueFrom *time.Time // nil: never due
		}{
			{name: "queued is due from its receipt", in: newIngest(t0, "evt_1"), dueFrom: &t0},
			{name: "stored is never due", in: newIngest(t0, "evt_1", stored())},
			{name: "queued with a next attempt time is due from then", in: newIngest(t0, "evt_1", nextAttemptAt(at(time.Minute))), dueFrom: new(at(time.Minute))},
		} {
			t.Run(tc.name, func(t *testing.T) {
				s := h.fresh(t)
				res := mustIngest(t, s, tc.in)
				// The answer to the partner names this uuid and phase.
				if res.Duplicate {
					t.Fatal("a first event is reported a duplicate")
				}
				sameEvent(t, "the ingest result", res.Event, storedAs(tc.in, res.Event.Version))
				sameEvent(t, "Get after ingest", mustGet(t, s, tc.in.Event.UUID), res.Event)
				if as := mustAttempts(t, s, tc.in.Event.UUID); len(as) != 0 {
					t.Errorf("a new event has attempts: %s", show(as))
				}
				// The status reflector must create the WebhookEvent of every new event.
				if v, ok := unreflected(t, s)[tc.in.Event.UUID]; !ok || v != res.Event.Version {
					t.Errorf("new event unreflected=%v at version %d, want version %d", ok, v, res.Event.Version)
				}
				if tc.dueFrom == nil {
					if n := dueCount(t, s, forever, tc.in.Event.UUID); n != 0 {
						t.Errorf("a stored event is due %d times", n)
					}
					return
				}
				if n := dueCount(t, s, tc.dueFrom.Add(-time.Millisecond), tc.in.Event.UUID); n != 0 {
					t.Errorf("due before its time")
				}
				if n := dueCount(t, s, *tc.dueFrom, tc.in.Event.UUID); n != 1 {
					t.Errorf("due %d times at its time, want once", n)
				}
			})
		}
	})

	// Deduplication: a partner that resends (after a timeout, say) gets the original's
	// uuid back with 200 instead of the event being delivered twice. The key is the
	// server's partner \x00 endpoint \x00 event id; the window is the first event's.
	t.Run("dedup", func(t *testing.T) {
		for _, tc := range []struct {
			name          string
			first, second store.Ingest
			wantDuplicate bool
		}{
			{
				name:  "same key within the window is a duplicate",
				first: newIngest(t0, "evt_1"), second: newIngest(at(59*time.Minute), "evt_1"),
				wantDuplicate: true,
			},
			{
				name:  "same key a microsecond before the window ends is a duplicate",
				first: newIngest(t0, "evt_1"), second: newIngest(at(time.Hour-time.Microsecond), "evt_1"),
				wantDuplicate: true,
			},
			{
				name:  "same key exactly at the window's end is new",
				first: newIngest(t0, "evt_1"), second: newIngest(at(time.Hour), "evt_1"),
			},
			{
				name:  "same key after the window is new",
				first: newIngest(t0, "evt_1"), second: newIngest(at(61*time.Minute), "evt_1"),
			},
			{
				name:  "the first event's window counts, not the second's",
				first: newIngest(t0, "evt_1", window(10*time.Minute)), second: newIngest(at(30*time.Minute), "evt_1", window(time.Hour)),
			},
			{
				name:  "same event id from another partner is new",
				first: newIngest(t0, "evt_1"), second: newIngest(at(time.Minute), "evt_1", partner("ns", "globex")),
			},
			{
				name:  "same event id from a same-named partner in another namespace is new",
				first: newIngest(t0, "evt_1"), second: newIngest(at(time.Minute), "evt_1", partner("other", "acme")),
			},
			{
				name:  "same event id to another endpoint is new",
				first: newIngest(t0, "evt_1"), second: newIngest(at(time.Minute), "evt_1", endpoint("ns", "invoices")),
			},
			{
				name:  "an empty dedup key never dedups",
				first: newIngest(t0, "evt_1", noDedup()), second: newIngest(at(time.Second), "evt_1", noDedup()),
			},
		} {
			t.Run(tc.name, func(t *testing.T) {
				s := h.fresh(t)
				first := mustIngest(t, s, tc.first)
				if first.Duplicate {
					t.Fatal("the first event is reported a duplicate")
				}
				second := mustIngest(t, s, tc.second)
				if second.Duplicate != tc.wantDuplicate {
					t.Fatalf("second event Duplicate=%v, want %v (result %s)", second.Duplicate, tc.wantDuplicate, show(second.Event))
				}
				firstID, secondID := tc.first.Event.UUID, tc.second.Event.UUID
				if tc.wantDuplicate {
					// The answer names the original, and nothing of the resend is kept:
					// no event, no payload, no second delivery, no second WebhookEvent.
					sameEvent(t, "the duplicate's result", second.Event, mustGet(t, s, firstID))
					_, err := s.Get(t.Context(), secondID)
					wantNotFound(t, "Get of the duplicate", err)
					_, err = s.Payload(t.Context(), secondID)
					wantNotFound(t, "Payload of the duplicate", err)
					if p, err := s.Payload(t.Context(), firstID); err != nil || !bytes.Equal(p, tc.first.Payload) {
						t.Errorf("the original's payload is %q (%v), want %q", p, err, tc.first.Payload)
					}
					if got := dueIDs(t, s, forever, 100); !slices.Equal(got, []string{firstID}) {
						t.Errorf("due %v, want only the original %s", got, firstID)
					}
					if u := unreflected(t, s); len(u) != 1 {
						t.Errorf("unreflected %v, want only the original", u)
					}
					return
				}
				if second.Event.UUID != secondID {
					t.Fatalf("a new event's result names %s, want its own uuid %s", second.Event.UUID, secondID)
				}
				sameEvent(t, "the first event", mustGet(t, s, firstID), first.Event)
				sameEvent(t, "the second event", mustGet(t, s, secondID), second.Event)
				if p, err := s.Payload(t.Context(), secondID); err != nil || !bytes.Equal(p, tc.second.Payload) {
					t.Errorf("the second event's payload is %q (%v), want %q", p, err, tc.second.Payload)
				}
				if got := dueIDs(t, s, forever, 100); !slices.Equal(got, []string{firstID, secondID}) {
					t.Errorf("due %v, want both %v", got, []string{firstID, secondID})
				}
			})
		}
	})

	// The duplicate's answer carries the original's status now (the partner sees
	// "Delivered"), and answering it writes nothing: the status is not rewritten.
	t.Run("duplicate answers with the original's current state and changes nothing", func(t *testing.T) {
		s := h.fresh(t)
		id := add(t, s, newIngest(t0, "evt_1"))
		done := mustRecord(t, s, id, attempt(1, at(time.Second), 80*time.Millisecond, 200, ""), delivered)
		mark(t, s, id, done.Version)
		dup := mustIngest(t, s, newIngest(at(10*time.Minute), "evt_1"))
		if !dup.Duplicate {
			t.Fatal("a resend within the window is not a duplicate")
		}
		sameEvent(t, "the duplicate's result", dup.Event, done)
		sameEvent(t, "the original after the duplicate", mustGet(t, s, id), done)
		if u := unreflected(t, s); len(u) != 0 {
			t.Errorf("a duplicate made events unreflected: %v", u)
		}
		if as := mustAttempts(t, s, id); len(as) != 1 {
			t.Errorf("the original has %d attempts, want 1", len(as))
		}
	})

	// After the window a resend is a new event, and the window starts again from it: a
	// further resend is a duplicate of the newer event, not of the first.
	t.Run("after the window the key belongs to the newer event", func(t *testing.T) {
		s := h.fresh(t)
		add(t, s, newIngest(t0, "evt_1"))
		newer := add(t, s, newIngest(at(2*time.Hour), "evt_1"))
		again := mustIngest(t, s, newIngest(at(2*time.Hour+30*time.Minute), "evt_1"))
		if !again.Duplicate || again.Event.UUID != newer {
			t.Fatalf("resend: duplicate=%v of %s, want a duplicate of %s", again.Duplicate, again.Event.UUID, newer)
		}
	})
}

// ---------------------------------------------------------------------------- Get, FindByEventID

// The status API looks an id up as the authenticated partner's event id, then as a uuid.
// Partners must never see each other's events, and a resent id names the latest event.
func (h *harness) testLookup(t *testing.T) {
	type fixture struct{ first, second, otherEndpoint, ten, globex, acme2, otherNS string }
	setup := func(t *testing.T, s store.Store) fixture {
		return fixture{
			first:         add(t, s, newIngest(t0, "evt_1", noDedup())),
			second:        add(t, s, newIngest(at(time.Minute), "evt_1", noDedup())),
			otherEndpoint: add(t, s, newIngest(at(2*time.Minute), "evt_1", endpoint("ns", "invoices"))),
			ten:           add(t, s, newIngest(at(3*time.Minute), "evt_10")),
			globex:        add(t, s, newIngest(at(4*time.Minute), "evt_1", partner("ns", "globex"))),
			acme2:         add(t, s, newIngest(at(5*time.Minute), "evt_1", partner("ns", "acme2"))),
			otherNS:       add(t, s, newIngest(at(6*time.Minute), "evt_1", partner("other", "acme"))),
		}
	}

	t.Run("FindByEventID", func(t *testing.T) {
		for _, tc := range []struct {
			name       string
			partnerKey string
			eventID    string
			want       func(fixture) string // nil: ErrNotFound
		}{
			{name: "the latest of a partner's events with the id, across endpoints", partnerKey: "ns/acme", eventID: "evt_1",
				want: func(f fixture) string { return f.otherEndpoint }},
			{name: "the id is matched whole, not as a prefix", partnerKey: "ns/acme", eventID: "evt_10",
				want: func(f fixture) string { return f.ten }},
			{name: "a prefix of an id is not found", partnerKey: "ns/acme", eventID: "evt_"},
			{name: "another partner's own event", partnerKey: "ns/globex", eventID: "evt_1",
				want: func(f fixture) string { return f.globex }},
			{name: "the partner is matched whole", partnerKey: "ns/acme2", eventID: "evt_1",
				want: func(f fixture) string { return f.acme2 }},
			{name: "a prefix of a partner is not found", partnerKey: "ns/acm", eventID: "evt_1"},
			{name: "a same-named partner in another namespace", partnerKey: "other/acme", eventID: "evt_1",
				want: func(f fixture) string { return f.otherNS }},
			{name: "a partner without the id is not found", partnerKey: "ns/initech", eventID: "evt_1"},
			{name: "an unknown id is not found", partnerKey: "ns/acme", eventID: "evt_2"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				s := h.fresh(t)
				f := setup(t, s)
				got, err := s.FindByEventID(t.Context(), tc.partnerKey, tc.eventID)
				if tc.want == nil {
					wantNotFound(t, "FindByEventID", err)
					return
				}
				if err != nil {
					t.Fatalf("FindByEventID: %v", err)
				}
				sameEvent(t, "FindByEventID", *got, mustGet(t, s, tc.want(f)))
			})
		}
	})

	t.Run("Get", func(t *testing.T) {
		s := h.fresh(t)
		f := setup(t, s)
		for _, id := range []string{f.first, f.second, f.otherEndpoint, f.ten, f.globex, f.acme2, f.otherNS} {
			if e := mustGet(t, s, id); e.UUID != id {
				t.Errorf("Get(%s) returned %s", id, e.UUID)
			}
		}
		_, err := s.Get(t.Context(), newID(t0))
		wantNotFound(t, "Get of an unknown uuid", err)
	})
}

// ---------------------------------------------------------------------------- Payload

// The destination receives exactly the bytes the partner sent: signatures over the body
// (and the PayloadSHA256 shown in the status) depend on it.
func (h *harness) testPayload(t *testing.T) {
	everyByte := make([]byte, 512) // 0x00 to 0xff, twice
	var b byte
	for i := range everyByte {
		everyByte[i] = b
		b++
	}
	large := make([]byte, 1<<20) // deterministic noise
	for i := range large {
		large[i] = b
		b = b*13 + 7
	}
	for _, tc := range []struct {
		name    string
		payload []byte
	}{
		{name: "json", payload: []byte(`{"id":"evt_1","amount":12.50,"note":"caf\u00e9 ☕"}` + "\n")},
		{name: "every byte value, NULs and invalid UTF-8 included", payload: everyByte},
		{name: "trailing whitespace is kept", payload: []byte("{}\r\n\t ")},
		{name: "one MiB", payload: large},
		{name: "empty", payload: []byte{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := h.fresh(t)
			in := newIngest(t0, "evt_1", body(slices.Clone(tc.payload)))
			id := add(t, s, in)
			// The request's buffer is reused once the answer is written.
			for i := range in.Payload {
				in.Payload[i] ^= 0xff
			}
			got, err := s.Payload(t.Context(), id)
			if err != nil {
				t.Fatalf("Payload: %v", err)
			}
			if !bytes.Equal(got, tc.payload) {
				t.Fatalf("Payload returned %d bytes that differ from the %d ingested", len(got), len(tc.payload))
			}
			// A caller may modify what it was given.
			for i := range got {
				got[i] ^= 0xff
			}
			if again, err := s.Payload(t.Context(), id); err != nil || !bytes.Equal(again, tc.payload) {
				t.Fatalf("Payload after modifying an earlier result: %d bytes (%v), want the original", len(again), err)
			}
		})
	}
	t.Run("unknown uuid", func(t *testing.T) {
		s := h.fresh(t)
		_, err := s.Payload(t.Context(), newID(t0))
		wantNotFound(t, "Payload of an unknown uuid", err)
	})
}

// ---------------------------------------------------------------------------- Due

// Due is the dispatcher's queue: it reads a page of due events every tick and delivers
// them. A finished event read as due would be delivered again; a due event left out
// would never be delivered; the order is what keeps the oldest waiting from starving.
func (h *harness) testDue(t *testing.T) {
	type fixture struct{ retrying, delivered, failed, stored, queued1, queued2, later string }
	setup := func(t *testing.T, s store.Store) fixture {
		var f fixture
		// Received first but due last but one: order is by due time, not receipt.
		f.retrying = add(t, s, newIngest(at(-10*time.Minute), "retrying"))
		mustRecord(t, s, f.retrying, attempt(1, at(-9*time.Minute), time.Second, 503, "503 Service Unavailable"), retrying(at(5*time.Minute)))
		f.delivered = add(t, s, newIngest(at(-8*time.Minute), "delivered"))
		mustRecord(t, s, f.delivered, attempt(1, at(-8*time.Minute), time.Second, 204, ""), delivered)
		f.failed = add(t, s, newIngest(at(-7*time.Minute), "failed"))
		mustRecord(t, s, f.failed, attempt(1, at(-7*time.Minute), time.Second, 400, "400 Bad Request"), failed)
		f.stored = add(t, s, newIngest(at(-6*time.Minute), "stored", stored()))
		f.queued1 = add(t, s, newIngest(t0, "queued1"))
		f.queued2 = add(t, s, newIngest(at(time.Minute), "queued2"))
		f.later = add(t, s, newIngest(at(2*time.Minute), "later", nextAttemptAt(at(time.Hour))))
		return f
	}
	for _, tc := range []struct {
		name  string
		now   time.Time
		limit int
		want  func(fixture) []string
	}{
		{name: "nothing before the first due time", now: at(-time.Second), limit: 100,
			want: func(fixture) []string { return nil }},
		{name: "an event due exactly now is due", now: t0, limit: 100,
			want: func(f fixture) []string { return []string{f.queued1} }},
		{name: "a retry is not due before its next attempt time", now: at(5*time.Minute - time.Millisecond), limit: 100,
			want: func(f fixture) []string { return []string{f.queued1, f.queued2} }},
		{name: "oldest due first, by due time", now: at(5 * time.Minute), limit: 100,
			want: func(f fixture) []string { return []string{f.queued1, f.queued2, f.retrying} }},
		{name: "a queued event with a future next attempt is due from then", now: at(time.Hour), limit: 100,
			want: func(f fixture) []string { return []string{f.queued1, f.queued2, f.retrying, f.later} }},
		{name: "the limit keeps the oldest due", now: at(time.Hour), limit: 2,
			want: func(f fixture) []string { return []string{f.queued1, f.queued2} }},
		{name: "a limit of one", now: forever, limit: 1,
			want: func(f fixture) []string { return []string{f.queued1} }},
		{name: "a limit of zero returns nothing", now: forever, limit: 0,
			want: func(fixture) []string { return nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := h.fresh(t)
			f := setup(t, s)
			evs, err := allDue(t.Context(), s, tc.now, tc.limit)
			if err != nil {
				t.Fatalf("Due: %v", err)
			}
			got := make([]string, len(evs))
			for i := range evs {
				got[i] = evs[i].UUID
				// The dispatcher compares the version it read here with a fresh Get
				// before delivering: the due list must carry the current state.
				sameEvent(t, "a due event", evs[i], mustGet(t, s, evs[i].UUID))
			}
			if want := tc.want(f); !slices.Equal(got, want) {
				t.Errorf("Due(%v, %d) = %v, want %v", tc.now.Sub(t0), tc.limit, got, want)
			}
			// Reading claims nothing: the next tick sees the same.
			if again := dueIDs(t, s, tc.now, tc.limit); !slices.Equal(again, got) {
				t.Errorf("Due again = %v, first %v", again, got)
			}
		})
	}
}

// ---------------------------------------------------------------------------- RecordAttempt

type step struct {
	a store.Attempt
	o store.Outcome
}

// RecordAttempt is the dispatcher's only write. Its result is what the status API and
// the WebhookEvent show, and it decides whether (and when) the event is due again.
func (h *harness) testRecordAttempt(t *testing.T) {
	t.Run("outcomes", func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			steps []step
		}{
			{name: "delivered at the first attempt", steps: []step{
				{attempt(1, at(time.Second), 120*time.Millisecond, 204, ""), delivered},
			}},
			{name: "failed at the first attempt", steps: []step{
				{attempt(1, at(time.Second), 95*time.Millisecond, 400, "400 Bad Request"), failed},
			}},
			{name: "retried twice, then delivered", steps: []step{
				{attempt(1, at(time.Second), 250*time.Millisecond, 503, "503 Service Unavailable"), retrying(at(time.Minute))},
				{attempt(2, at(time.Minute+time.Second), 30*time.Second, 0, "timed out"), retrying(at(5 * time.Minute))},
				{attempt(3, at(5*time.Minute), 80*time.Millisecond, 200, ""), delivered},
			}},
			{name: "retried until the budget is spent", steps: []step{
				{attempt(1, at(time.Second), 10*time.Millisecond, 0, "connection refused"), retrying(at(time.Minute))},
				{attempt(2, at(time.Minute), 10*time.Millisecond, 429, "429 Too Many Requests"), failed},
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				s := h.fresh(t)
				id := add(t, s, newIngest(t0, "evt_1"))
				prev := mustGet(t, s, id)
				var attempts []store.Attempt
				for _, st := range tc.steps {
					label := fmt.Sprintf("after attempt %d (%s)", st.a.Number, st.o.Phase)
					got := mustRecord(t, s, id, st.a, st.o)
					cur := mustGet(t, s, id)
					sameEvent(t, label+": the result and Get", got, cur)
					// Version increases with every change: the reflector writes the
					// WebhookEvent again only when it does.
					if cur.Version <= prev.Version {
						t.Errorf("%s: version %d, not above %d", label, cur.Version, prev.Version)
					}
					want := prev
					want.Phase = st.o.Phase
					want.Attempts = st.a.Number
					want.LastAttemptAt = new(st.a.StartedAt)
					want.LastResponseCode = st.a.ResponseCode
					want.LastError = st.a.Error // cleared by a success
					want.NextAttemptAt = nil
					if st.o.Phase == store.PhaseRetrying {
						want.NextAttemptAt = new(st.o.NextAttemptAt)
					}
					if st.o.Phase == store.PhaseDelivered {
						want.DeliveredAt = new(st.a.StartedAt.Add(st.a.Duration))
					}
					want.Version = cur.Version
					sameEvent(t, label, cur, want)

					attempts = append(attempts, st.a)
					sameAttempts(t, label+": Attempts", mustAttempts(t, s, id), attempts)

					if st.o.Phase == store.PhaseRetrying {
						if n := dueCount(t, s, st.o.NextAttemptAt.Add(-time.Millisecond), id); n != 0 {
							t.Errorf("%s: due before the next attempt time", label)
						}
						// Once: the earlier due entry is gone.
						if n := dueCount(t, s, st.o.NextAttemptAt, id); n != 1 {
							t.Errorf("%s: due %d times at the next attempt time, want once", label, n)
						}
					} else if n := dueCount(t, s, forever, id); n != 0 {
						t.Errorf("%s: a finished event is due %d times", label, n)
					}
					if v, ok := unreflected(t, s)[id]; !ok || v != cur.Version {
						t.Errorf("%s: unreflected=%v at version %d, want version %d", label, ok, v, cur.Version)
					}
					mark(t, s, id, cur.Version)
					prev = cur
				}
			})
		}
	})

	// A result that arrives after the event finished (a redelivery raced with it, or a
	// worker of a replica that lost track) must not reopen or rewrite it.
	t.Run("a finished event keeps its state", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			finish func(t *testing.T, s store.Store) string
		}{
			{name: "delivered", finish: func(t *testing.T, s store.Store) string {
				id := add(t, s, newIngest(t0, "evt_1"))
				mustRecord(t, s, id, attempt(1, at(time.Second), time.Second, 204, ""), delivered)
				return id
			}},
			{name: "failed", finish: func(t *testing.T, s store.Store) string {
				id := add(t, s, newIngest(t0, "evt_1"))
				mustRecord(t, s, id, attempt(1, at(time.Second), time.Second, 404, "404 Not Found"), failed)
				return id
			}},
			{name: "stored", finish: func(t *testing.T, s store.Store) string {
				return add(t, s, newIngest(t0, "evt_1", stored()))
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				s := h.fresh(t)
				id := tc.finish(t, s)
				before := mustGet(t, s, id)
				attemptsBefore := mustAttempts(t, s, id)
				for _, o := range []store.Outcome{retrying(at(time.Hour)), delivered, failed} {
					got := mustRecord(t, s, id, attempt(before.Attempts+1, at(time.Minute), time.Second, 503, "late"), o)
					sameEvent(t, "the late result", got, before)
					sameEvent(t, "the event after a late "+o.Phase, mustGet(t, s, id), before)
				}
				sameAttempts(t, "attempts after late results", mustAttempts(t, s, id), attemptsBefore)
				if n := dueCount(t, s, forever, id); n != 0 {
					t.Errorf("a finished event is due %d times after a late result", n)
				}
			})
		}
	})

	// An attempt ends Delivered, Retrying or Failed; anything else is a bug in the
	// caller and must not leave the event half-changed.
	t.Run("an attempt cannot end in another phase", func(t *testing.T) {
		for _, phase := range []string{"", store.PhaseQueued, store.PhaseDelivering, store.PhaseStored, "Bogus"} {
			t.Run(fmt.Sprintf("%q", phase), func(t *testing.T) {
				s := h.fresh(t)
				id := add(t, s, newIngest(t0, "evt_1"))
				before := mustGet(t, s, id)
				if _, err := s.RecordAttempt(t.Context(), worker, id, attempt(1, at(time.Second), time.Second, 200, ""), store.Outcome{Phase: phase, NextAttemptAt: at(time.Hour)}); err == nil {
					t.Fatalf("an attempt ending in %q was accepted", phase)
				}
				sameEvent(t, "the event after a refused attempt", mustGet(t, s, id), before)
				if as := mustAttempts(t, s, id); len(as) != 0 {
					t.Errorf("a refused attempt was kept: %s", show(as))
				}
				if n := dueCount(t, s, t0, id); n != 1 {
					t.Errorf("due %d times after a refused attempt, want once", n)
				}
			})
		}
	})

	t.Run("unknown uuid", func(t *testing.T) {
		s := h.fresh(t)
		_, err := s.RecordAttempt(t.Context(), worker, newID(t0), attempt(1, t0, time.Second, 200, ""), delivered)
		wantNotFound(t, "RecordAttempt of an unknown uuid", err)
	})
}

// ---------------------------------------------------------------------------- Attempts

// The attempt history is shown per event; it must not mix events.
func (h *harness) testAttempts(t *testing.T) {
	s := h.fresh(t)
	a := add(t, s, newIngest(t0, "evt_a"))
	b := add(t, s, newIngest(at(time.Millisecond), "evt_b"))
	none := add(t, s, newIngest(at(2*time.Millisecond), "evt_c"))
	a1 := attempt(1, at(time.Second), 10*time.Millisecond, 500, "500 Internal Server Error")
	b1 := attempt(1, at(2*time.Second), 20*time.Millisecond, 0, "connection reset")
	a2 := attempt(2, at(time.Minute), 30*time.Millisecond, 202, "")
	mustRecord(t, s, a, a1, retrying(at(time.Minute)))
	mustRecord(t, s, b, b1, retrying(at(time.Minute)))
	mustRecord(t, s, a, a2, delivered)
	for _, tc := range []struct {
		name string
		id   string
		want []store.Attempt
	}{
		{name: "first first", id: a, want: []store.Attempt{a1, a2}},
		{name: "only the event's own", id: b, want: []store.Attempt{b1}},
		{name: "none yet", id: none, want: []store.Attempt{}},
	} {
		sameAttempts(t, "Attempts, "+tc.name, mustAttempts(t, s, tc.id), tc.want)
	}
	as, err := s.Attempts(t.Context(), newID(t0))
	if len(as) != 0 || err != nil && !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Attempts of an unknown uuid: %s (%v), want none", show(as), err)
	}
}

// ---------------------------------------------------------------------------- Requeue

// Requeue is redelivery on request (an annotation on the WebhookEvent): a finished
// event is delivered again at once, with a new retry budget (AttemptBase) while its
// attempt numbers and history continue. Anything not finished is left alone, so that a
// repeated request cannot disturb a delivery in progress.
func (h *harness) testRequeue(t *testing.T) {
	now := at(time.Hour)
	for _, tc := range []struct {
		name     string
		prepare  func(t *testing.T, s store.Store) string
		requeued bool
	}{
		{name: "a failed event is queued again", requeued: true, prepare: func(t *testing.T, s store.Store) string {
			id := add(t, s, newIngest(t0, "evt_1"))
			mustRecord(t, s, id, attempt(1, at(time.Second), time.Second, 503, "503 Service Unavailable"), retrying(at(time.Minute)))
			mustRecord(t, s, id, attempt(2, at(time.Minute), time.Second, 503, "503 Service Unavailable"), failed)
			return id
		}},
		{name: "a delivered event is queued again", requeued: true, prepare: func(t *testing.T, s store.Store) string {
			id := add(t, s, newIngest(t0, "evt_1"))
			mustRecord(t, s, id, attempt(1, at(time.Second), time.Second, 204, ""), delivered)
			return id
		}},
		{name: "a stored event stays stored: it has no destination", prepare: func(t *testing.T, s store.Store) string {
			return add(t, s, newIngest(t0, "evt_1", stored()))
		}},
		{name: "a queued event is left alone", prepare: func(t *testing.T, s store.Store) string {
			return add(t, s, newIngest(t0, "evt_1"))
		}},
		{name: "a retrying event keeps its next attempt time", prepare: func(t *testing.T, s store.Store) string {
			id := add(t, s, newIngest(t0, "evt_1"))
			mustRecord(t, s, id, attempt(1, at(time.Second), time.Second, 503, "503 Service Unavailable"), retrying(at(2*time.Hour)))
			return id
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := h.fresh(t)
			id := tc.prepare(t, s)
			before := mustGet(t, s, id)
			mark(t, s, id, before.Version)
			attemptsBefore := mustAttempts(t, s, id)
			dueBefore := dueCount(t, s, now, id)

			got, err := s.Requeue(t.Context(), id, "", now)
			if err != nil {
				t.Fatalf("Requeue: %v", err)
			}
			cur := mustGet(t, s, id)
			sameEvent(t, "the result and Get", *got, cur)
			sameAttempts(t, "attempts after Requeue", mustAttempts(t, s, id), attemptsBefore)
			if !tc.requeued {
				sameEvent(t, "an event Requeue leaves alone", cur, before)
				if n := dueCount(t, s, now, id); n != dueBefore {
					t.Errorf("due %d times at now, %d before Requeue", n, dueBefore)
				}
				if _, ok := unreflected(t, s)[id]; ok {
					t.Errorf("an unchanged event became unreflected")
				}
				return
			}
			if cur.Version <= before.Version {
				t.Errorf("version %d, not above %d", cur.Version, before.Version)
			}
			want := before
			want.Phase = store.PhaseQueued
			want.AttemptBase = before.Attempts
			want.NextAttemptAt = new(now)
			want.DeliveredAt = nil
			want.Version = cur.Version
			sameEvent(t, "the requeued event", cur, want)
			if n := dueCount(t, s, now.Add(-time.Millisecond), id); n != 0 {
				t.Errorf("due before now")
			}
			if n := dueCount(t, s, now, id); n != 1 {
				t.Errorf("due %d times at now, want once", n)
			}
			if v, ok := unreflected(t, s)[id]; !ok || v != cur.Version {
				t.Errorf("unreflected=%v at version %d, want version %d", ok, v, cur.Version)
			}
		})
	}

	// The dispatcher counts attempts against the budget as Attempts-AttemptBase+1.
	t.Run("the retry budget restarts at each requeue", func(t *testing.T) {
		s := h.fresh(t)
		id := add(t, s, newIngest(t0, "evt_1"))
		a1 := attempt(1, at(time.Second), time.Second, 410, "410 Gone")
		mustRecord(t, s, id, a1, failed)
		if e, err := s.Requeue(t.Context(), id, "", at(time.Hour)); err != nil || e.AttemptBase != 1 {
			t.Fatalf("first requeue: %s (%v), want AttemptBase 1", show(e), err)
		}
		a2 := attempt(2, at(time.Hour), time.Second, 503, "503 Service Unavailable")
		if e := mustRecord(t, s, id, a2, retrying(at(2*time.Hour))); e.AttemptBase != 1 || e.Attempts != 2 {
			t.Fatalf("after attempt 2: AttemptBase %d, Attempts %d, want 1 and 2", e.AttemptBase, e.Attempts)
		}
		a3 := attempt(3, at(2*time.Hour), time.Second, 503, "503 Service Unavailable")
		mustRecord(t, s, id, a3, failed)
		if e, err := s.Requeue(t.Context(), id, "", at(3*time.Hour)); err != nil || e.AttemptBase != 3 || e.Attempts != 3 {
			t.Fatalf("second requeue: %s (%v), want AttemptBase 3, Attempts 3", show(e), err)
		}
		sameAttempts(t, "the history across requeues", mustAttempts(t, s, id), []store.Attempt{a1, a2, a3})
	})

	t.Run("unknown uuid", func(t *testing.T) {
		s := h.fresh(t)
		_, err := s.Requeue(t.Context(), newID(t0), "", now)
		wantNotFound(t, "Requeue of an unknown uuid", err)
	})
}

// ---------------------------------------------------------------------------- RequeueFailed

// RequeueFailed is "redeliver everything that failed" on an endpoint (an annotation on
// the WebhookEndpoint, typically after the destination was fixed). It must touch only
// that endpoint's Failed events; the endpoint key is matched whole, namespace included.
func (h *harness) testRequeueFailed(t *testing.T) {
	now := at(time.Hour)
	type fixture map[string]string // name -> uuid
	setup := func(t *testing.T, s store.Store) fixture {
		f := fixture{}
		fail := func(name string, opts ...option) {
			id := add(t, s, newIngest(at(time.Duration(len(f))*time.Minute), name, opts...))
			mustRecord(t, s, id, attempt(1, at(30*time.Minute), time.Second, 500, "500 Internal Server Error"), failed)
			f[name] = id
		}
		fail("failed1")
		f["failed2"] = add(t, s, newIngest(at(time.Duration(len(f))*time.Minute), "failed2"))
		mustRecord(t, s, f["failed2"], attempt(1, at(30*time.Minute), time.Second, 503, "503"), retrying(at(31*time.Minute)))
		mustRecord(t, s, f["failed2"], attempt(2, at(31*time.Minute), time.Second, 503, "503"), failed)
		f["delivered"] = add(t, s, newIngest(at(time.Duration(len(f))*time.Minute), "delivered"))
		mustRecord(t, s, f["delivered"], attempt(1, at(30*time.Minute), time.Second, 200, ""), delivered)
		f["retrying"] = add(t, s, newIngest(at(time.Duration(len(f))*time.Minute), "retrying"))
		mustRecord(t, s, f["retrying"], attempt(1, at(30*time.Minute), time.Second, 503, "503"), retrying(at(2*time.Hour)))
		f["queued"] = add(t, s, newIngest(at(time.Duration(len(f))*time.Minute), "queued"))
		f["stored"] = add(t, s, newIngest(at(time.Duration(len(f))*time.Minute), "stored", stored()))
		fail("invoices", endpoint("ns", "invoices"))
		fail("otherNS", endpoint("other", "orders"))
		fail("orders2", endpoint("ns", "orders2"))
		return f
	}
	for _, tc := range []struct {
		name        string
		endpointKey string
		want        []string
	}{
		{name: "only the endpoint's failed events", endpointKey: "ns/orders", want: []string{"failed1", "failed2"}},
		{name: "another endpoint", endpointKey: "ns/invoices", want: []string{"invoices"}},
		{name: "the namespace is part of the key", endpointKey: "other/orders", want: []string{"otherNS"}},
		{name: "the key is matched whole", endpointKey: "ns/order"},
		{name: "an endpoint without events", endpointKey: "ns/unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := h.fresh(t)
			f := setup(t, s)
			before := map[string]store.Event{}
			for name, id := range f {
				before[name] = mustGet(t, s, id)
			}
			n, err := s.RequeueFailed(t.Context(), tc.endpointKey, "", now)
			if err != nil || n != len(tc.want) {
				t.Fatalf("RequeueFailed(%s) = %d (%v), want %d", tc.endpointKey, n, err, len(tc.want))
			}
			for name, id := range f {
				cur := mustGet(t, s, id)
				if !slices.Contains(tc.want, name) {
					sameEvent(t, name+" (not requeued)", cur, before[name])
					continue
				}
				want := before[name]
				want.Phase = store.PhaseQueued
				want.AttemptBase = want.Attempts
				want.NextAttemptAt = new(now)
				want.Version = cur.Version
				if cur.Version <= before[name].Version {
					t.Errorf("%s: version %d, not above %d", name, cur.Version, before[name].Version)
				}
				sameEvent(t, name+" (requeued)", cur, want)
				if n := dueCount(t, s, now, id); n != 1 {
					t.Errorf("%s: due %d times at now, want once", name, n)
				}
			}
			// Done once: the requeued events are no longer Failed.
			if n, err := s.RequeueFailed(t.Context(), tc.endpointKey, "", now); err != nil || n != 0 {
				t.Errorf("RequeueFailed again = %d (%v), want 0", n, err)
			}
		})
	}
}

// ---------------------------------------------------------------------------- Unreflected, MarkReflected

// The status reflector writes each event's newest state into a WebhookEvent and then
// marks that version reflected. A change made while it was writing (a newer version)
// must stay unreflected, or the WebhookEvent would show a stale phase for good.
func (h *harness) testReflection(t *testing.T) {
	t.Run("the newest version stays unreflected until it is marked", func(t *testing.T) {
		s := h.fresh(t)
		id := add(t, s, newIngest(t0, "evt_1"))
		v1 := mustGet(t, s, id).Version
		for _, tc := range []struct {
			name string
			act  func() uint64 // returns the version to find unreflected, 0 for none
		}{
			{name: "a new event is unreflected", act: func() uint64 { return v1 }},
			{name: "marking its version reflects it", act: func() uint64 { mark(t, s, id, v1); return 0 }},
			{name: "a change makes it unreflected again", act: func() uint64 {
				return mustRecord(t, s, id, attempt(1, at(time.Second), time.Second, 503, "503"), retrying(at(time.Minute))).Version
			}},
			{name: "marking an older version keeps it unreflected", act: func() uint64 {
				v2 := mustGet(t, s, id).Version
				mark(t, s, id, v1)
				return v2
			}},
			{name: "marking the newest version reflects it", act: func() uint64 { mark(t, s, id, mustGet(t, s, id).Version); return 0 }},
			{name: "marking it again is harmless", act: func() uint64 { mark(t, s, id, mustGet(t, s, id).Version); return 0 }},
			{name: "a requeue makes it unreflected again", act: func() uint64 {
				mustRecord(t, s, id, attempt(2, at(time.Minute), time.Second, 200, ""), delivered)
				e, err := s.Requeue(t.Context(), id, "", at(time.Hour))
				if err != nil {
					t.Fatalf("Requeue: %v", err)
				}
				return e.Version
			}},
		} {
			want := tc.act()
			got := unreflected(t, s)
			switch v, ok := got[id]; {
			case want == 0 && ok:
				t.Errorf("%s: unreflected at version %d, want reflected", tc.name, v)
			case want != 0 && (!ok || v != want):
				t.Errorf("%s: unreflected=%v at version %d, want version %d", tc.name, ok, v, want)
			}
			if len(got) > 1 {
				t.Errorf("%s: unreflected %v, want at most the one event", tc.name, got)
			}
		}
	})

	t.Run("the limit is honoured", func(t *testing.T) {
		s := h.fresh(t)
		var ids []string
		for i := range 5 {
			ids = append(ids, add(t, s, newIngest(at(time.Duration(i)*time.Second), fmt.Sprint("evt_", i))))
		}
		for _, limit := range []int{1, 2, 5, 100} {
			evs, err := s.Unreflected(t.Context(), limit)
			if err != nil {
				t.Fatal(err)
			}
			if want := min(limit, len(ids)); len(evs) != want {
				t.Errorf("Unreflected(%d) returned %d events, want %d", limit, len(evs), want)
			}
			for _, e := range evs {
				sameEvent(t, "an unreflected event", e, mustGet(t, s, e.UUID))
			}
		}
		mark(t, s, ids[0], mustGet(t, s, ids[0]).Version)
		mark(t, s, ids[3], mustGet(t, s, ids[3]).Version)
		got := unreflected(t, s)
		for i, id := range ids {
			if _, ok := got[id]; ok == (i == 0 || i == 3) {
				t.Errorf("event %d unreflected=%v after marking events 0 and 3", i, ok)
			}
		}
	})

	// The reflector marks events that may have been pruned meanwhile.
	t.Run("marking an unknown event is not an error", func(t *testing.T) {
		s := h.fresh(t)
		mark(t, s, newID(t0), 1)
		if u := unreflected(t, s); len(u) != 0 {
			t.Errorf("unreflected %v after marking an unknown event", u)
		}
	})
}

// ---------------------------------------------------------------------------- Token, SetToken

// Tokens record which redelivery annotation values were handled, so that a requeue
// happens once per annotation value, not on every resync.
func (h *harness) testTokens(t *testing.T) {
	s := h.fresh(t)
	for i, op := range []struct {
		set         bool
		name, value string // value: to set, or wanted
	}{
		{name: "redeliver/a", value: ""}, // unset reads as empty
		{set: true, name: "redeliver/a", value: "token-1"},
		{name: "redeliver/a", value: "token-1"},
		{name: "redeliver/b", value: ""},
		{name: "redeliver/", value: ""},
		{set: true, name: "redeliver-failed/ns/orders", value: "2025-03-14T09:00:00Z"},
		{set: true, name: "redeliver/a", value: "token-2"},
		{name: "redeliver/a", value: "token-2"},
		{name: "redeliver-failed/ns/orders", value: "2025-03-14T09:00:00Z"},
		{set: true, name: "redeliver/a", value: ""},
		{name: "redeliver/a", value: ""},
		{name: "redeliver-failed/ns/orders", value: "2025-03-14T09:00:00Z"},
	} {
		if op.set {
			if err := s.SetToken(t.Context(), op.name, op.value); err != nil {
				t.Fatalf("step %d: SetToken(%q, %q): %v", i, op.name, op.value, err)
			}
			continue
		}
		if got, err := s.Token(t.Context(), op.name); err != nil || got != op.value {
			t.Errorf("step %d: Token(%q) = %q (%v), want %q", i, op.name, got, err, op.value)
		}
	}
	// Tokens are not events.
	if u := unreflected(t, s); len(u) != 0 {
		t.Errorf("tokens made events: %v", u)
	}
}

// ---------------------------------------------------------------------------- Prune

// Prune keeps the store bounded: finished events leave after the retention time, and
// dedup keys after their window. An unfinished event is never removed, however old: it
// still has to be delivered.
func (h *harness) testPrune(t *testing.T) {
	cutoff, now := t0, at(time.Hour)
	t.Run("finished events older than the cutoff", func(t *testing.T) {
		s := h.fresh(t)
		type prepared struct {
			name string
			id   string
			kept bool
		}
		finish := func(id string, o store.Outcome, started time.Time) {
			mustRecord(t, s, id, attempt(1, started, time.Second, 500, "500"), o)
		}
		var evs []prepared
		// In receipt order, unfinished and finished interleaved: a store that stops at
		// the first event it keeps would miss the finished ones after it.
		for _, e := range []struct {
			name     string
			received time.Duration
			opts     []option
			prepare  func(id string, received time.Time)
			kept     bool
		}{
			{name: "old delivered", received: -3 * time.Hour, prepare: func(id string, r time.Time) { finish(id, delivered, r) }},
			{name: "old queued", received: -170 * time.Minute, kept: true},
			{name: "old failed", received: -160 * time.Minute, prepare: func(id string, r time.Time) {
				finish(id, retrying(r.Add(time.Minute)), r)
				mustRecord(t, s, id, attempt(2, r.Add(time.Minute), time.Second, 500, "500"), failed)
			}},
			{name: "old retrying", received: -150 * time.Minute, kept: true, prepare: func(id string, r time.Time) { finish(id, retrying(at(2*time.Hour)), r) }},
			{name: "old stored", received: -140 * time.Minute, opts: []option{stored()}},
			{name: "delivered at the cutoff", received: 0, kept: true, prepare: func(id string, r time.Time) { finish(id, delivered, r) }},
			{name: "new failed", received: 10 * time.Minute, kept: true, prepare: func(id string, r time.Time) { finish(id, failed, r) }},
			{name: "new stored", received: 20 * time.Minute, kept: true, opts: []option{stored()}},
		} {
			received := at(e.received)
			id := add(t, s, newIngest(received, e.name, e.opts...))
			if e.prepare != nil {
				e.prepare(id, received)
			}
			evs = append(evs, prepared{name: e.name, id: id, kept: e.kept})
		}
		before := map[string]store.Event{}
		attemptsBefore := map[string][]store.Attempt{}
		for _, e := range evs {
			before[e.id] = mustGet(t, s, e.id)
			attemptsBefore[e.id] = mustAttempts(t, s, e.id)
		}
		removed, err := s.Prune(t.Context(), store.Before(cutoff), now)
		if err != nil || removed != 3 {
			t.Fatalf("Prune removed %d (%v), want the 3 finished events older than the cutoff", removed, err)
		}
		unref := unreflected(t, s)
		due := dueIDs(t, s, forever, 100)
		for _, e := range evs {
			if e.kept {
				sameEvent(t, e.name+" (kept)", mustGet(t, s, e.id), before[e.id])
				if p, err := s.Payload(t.Context(), e.id); err != nil || len(p) == 0 {
					t.Errorf("%s (kept): payload %q (%v)", e.name, p, err)
				}
				sameAttempts(t, e.name+" (kept): attempts", mustAttempts(t, s, e.id), attemptsBefore[e.id])
				if _, ok := unref[e.id]; !ok {
					t.Errorf("%s (kept) is no longer unreflected", e.name)
				}
				if f, err := s.FindByEventID(t.Context(), "ns/acme", e.name); err != nil || f.UUID != e.id {
					t.Errorf("%s (kept): FindByEventID (%v)", e.name, err)
				}
				continue
			}
			_, err := s.Get(t.Context(), e.id)
			wantNotFound(t, e.name+" (removed): Get", err)
			_, err = s.Payload(t.Context(), e.id)
			wantNotFound(t, e.name+" (removed): Payload", err)
			_, err = s.FindByEventID(t.Context(), "ns/acme", e.name)
			wantNotFound(t, e.name+" (removed): FindByEventID", err)
			if as, err := s.Attempts(t.Context(), e.id); len(as) != 0 || err != nil && !errors.Is(err, store.ErrNotFound) {
				t.Errorf("%s (removed): attempts %s (%v)", e.name, show(as), err)
			}
			if _, ok := unref[e.id]; ok {
				t.Errorf("%s (removed) is still unreflected", e.name)
			}
			if slices.Contains(due, e.id) {
				t.Errorf("%s (removed) is still due", e.name)
			}
		}
		// The unfinished old events are still delivered.
		if want := []string{evs[1].id, evs[3].id}; !slices.Equal(due, want) {
			t.Errorf("due after Prune %v, want the old queued and retrying events %v", due, want)
		}
		if removed, err := s.Prune(t.Context(), store.Before(cutoff), now); err != nil || removed != 0 {
			t.Errorf("Prune again removed %d (%v), want 0", removed, err)
		}
	})

	// A live key must survive pruning, or a resend inside the window is delivered twice.
	t.Run("a live dedup key survives", func(t *testing.T) {
		s := h.fresh(t)
		id := add(t, s, newIngest(t0, "evt_1", window(2*time.Hour), stored()))
		if _, err := s.Prune(t.Context(), store.Before(at(-time.Hour)), now); err != nil {
			t.Fatal(err)
		}
		again := mustIngest(t, s, newIngest(at(90*time.Minute), "evt_1"))
		if !again.Duplicate || again.Event.UUID != id {
			t.Fatalf("resend within the window after Prune: duplicate=%v of %s, want a duplicate of %s", again.Duplicate, again.Event.UUID, id)
		}
	})

	// The first event's key expired, but the key now belongs to a newer event whose
	// window is still open: removing the expired entry must not remove the newer one.
	t.Run("an expired key does not release the newer event's key", func(t *testing.T) {
		s := h.fresh(t)
		add(t, s, newIngest(t0, "evt_1"))
		newer := add(t, s, newIngest(at(2*time.Hour), "evt_1"))
		if _, err := s.Prune(t.Context(), store.Before(at(-time.Hour)), at(150*time.Minute)); err != nil {
			t.Fatal(err)
		}
		again := mustIngest(t, s, newIngest(at(165*time.Minute), "evt_1"))
		if !again.Duplicate || again.Event.UUID != newer {
			t.Fatalf("resend after Prune: duplicate=%v of %s, want a duplicate of %s", again.Duplicate, again.Event.UUID, newer)
		}
	})

	// Expired keys are released: after pruning, the old id is new again.
	t.Run("an expired key is released", func(t *testing.T) {
		s := h.fresh(t)
		old := add(t, s, newIngest(at(-48*time.Hour), "evt_1", stored()))
		if n, err := s.Prune(t.Context(), store.Before(at(-24*time.Hour)), now); err != nil || n != 1 {
			t.Fatalf("Prune removed %d (%v), want the old event", n, err)
		}
		again := mustIngest(t, s, newIngest(now, "evt_1", stored()))
		if again.Duplicate || again.Event.UUID == old {
			t.Fatalf("after Prune: %s (duplicate=%v), want a new event", show(again.Event), again.Duplicate)
		}
	})

	// Retention shorter than the dedup window: the original is gone while its key is
	// live. A resend must be stored as new (an answer naming a removed event could not
	// be looked up), and the key then belongs to it.
	t.Run("the live key of a removed event makes no duplicate", func(t *testing.T) {
		s := h.fresh(t)
		add(t, s, newIngest(t0, "evt_1", window(24*time.Hour), stored()))
		if n, err := s.Prune(t.Context(), store.Before(at(time.Hour)), at(2*time.Hour)); err != nil || n != 1 {
			t.Fatalf("Prune removed %d (%v), want the original", n, err)
		}
		in := newIngest(at(3*time.Hour), "evt_1", window(24*time.Hour))
		resend := mustIngest(t, s, in)
		if resend.Duplicate || resend.Event.UUID != in.Event.UUID {
			t.Fatalf("resend of a removed event: %s (duplicate=%v), want a new event", show(resend.Event), resend.Duplicate)
		}
		sameEvent(t, "the resend", mustGet(t, s, in.Event.UUID), resend.Event)
		again := mustIngest(t, s, newIngest(at(4*time.Hour), "evt_1"))
		if !again.Duplicate || again.Event.UUID != in.Event.UUID {
			t.Fatalf("a further resend: duplicate=%v of %s, want a duplicate of %s", again.Duplicate, again.Event.UUID, in.Event.UUID)
		}
	})
}

// ---------------------------------------------------------------------------- concurrency

// Every webhook request ingests concurrently, while the dispatcher records attempts and
// the reflector marks versions. Nothing may be lost, and deduplication must hold when a
// partner's retries arrive at the same moment (a single replica, or several sharing a
// database).
func (h *harness) testConcurrency(t *testing.T) {
	t.Run("ingests from many goroutines are all stored", func(t *testing.T) {
		s := h.fresh(t)
		const n = 200
		ins := make([]store.Ingest, n)
		for i := range ins {
			ins[i] = newIngest(at(time.Duration(i)*time.Millisecond), fmt.Sprint("evt_", i))
		}
		results := make([]store.IngestResult, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range ins {
			wg.Go(func() { results[i], errs[i] = s.Ingest(context.Background(), ins[i]) })
		}
		wg.Wait()
		ids := make([]string, n)
		for i, in := range ins {
			ids[i] = in.Event.UUID
			if errs[i] != nil {
				t.Fatalf("ingest %d: %v", i, errs[i])
			}
			if results[i].Duplicate {
				t.Fatalf("ingest %d is a duplicate of %s", i, results[i].Event.UUID)
			}
			sameEvent(t, fmt.Sprint("event ", i), mustGet(t, s, in.Event.UUID), results[i].Event)
			if p, err := s.Payload(t.Context(), in.Event.UUID); err != nil || !bytes.Equal(p, in.Payload) {
				t.Errorf("event %d: payload %q (%v), want %q", i, p, err, in.Payload)
			}
		}
		if due := dueIDs(t, s, forever, 2*n); !slices.Equal(due, ids) {
			t.Errorf("due after concurrent ingests: %d events, want all %d in receipt order", len(due), n)
		}
		if u := unreflected(t, s); len(u) != n {
			t.Errorf("%d unreflected, want %d", len(u), n)
		}
	})

	t.Run("one dedup key from many goroutines stores one event", func(t *testing.T) {
		s := h.fresh(t)
		const n = 64
		ins := make([]store.Ingest, n)
		for i := range ins {
			ins[i] = newIngest(at(time.Duration(i)*time.Microsecond), "evt_1")
		}
		results := make([]store.IngestResult, n)
		errs := make([]error, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range ins {
			wg.Go(func() {
				<-start
				results[i], errs[i] = s.Ingest(context.Background(), ins[i])
			})
		}
		close(start)
		wg.Wait()
		var originals []string
		for i := range results {
			if errs[i] != nil {
				t.Fatalf("ingest %d: %v", i, errs[i])
			}
			if !results[i].Duplicate {
				originals = append(originals, results[i].Event.UUID)
			}
		}
		if len(originals) != 1 {
			t.Fatalf("%d ingests of one dedup key stored %d events, want 1", n, len(originals))
		}
		original := originals[0]
		for i, r := range results {
			if r.Event.UUID != original {
				t.Errorf("ingest %d answered %s, want the original %s", i, r.Event.UUID, original)
			}
			if ins[i].Event.UUID != original {
				_, err := s.Get(t.Context(), ins[i].Event.UUID)
				wantNotFound(t, fmt.Sprint("Get of duplicate ", i), err)
			}
		}
		if due := dueIDs(t, s, forever, 2*n); !slices.Equal(due, []string{original}) {
			t.Errorf("due %v, want only the original %s", due, original)
		}
		if f, err := s.FindByEventID(t.Context(), "ns/acme", "evt_1"); err != nil || f.UUID != original {
			t.Errorf("FindByEventID: %v (%v), want the original %s", f, err, original)
		}
	})

	t.Run("writers of every kind at once", func(t *testing.T) {
		s := h.fresh(t)
		const n = 32
		ids := make([]string, n)
		ins := make([]store.Ingest, n)
		for i := range ins {
			ins[i] = newIngest(at(time.Duration(i)*time.Millisecond), fmt.Sprint("evt_", i))
			ids[i] = ins[i].Event.UUID
		}
		errs := make(chan error, 4*n)
		var wg sync.WaitGroup
		for i := range ins {
			wg.Go(func() {
				ctx := context.Background()
				if _, err := s.Ingest(ctx, ins[i]); err != nil {
					errs <- fmt.Errorf("ingest %d: %w", i, err)
					return
				}
				if _, err := s.RecordAttempt(ctx, worker, ids[i], attempt(1, at(time.Second), time.Second, 503, "503"), retrying(at(time.Minute))); err != nil {
					errs <- fmt.Errorf("attempt 1 of %d: %w", i, err)
					return
				}
				e, err := s.RecordAttempt(ctx, worker, ids[i], attempt(2, at(time.Minute), time.Second, 200, ""), delivered)
				if err != nil {
					errs <- fmt.Errorf("attempt 2 of %d: %w", i, err)
					return
				}
				if err := s.MarkReflected(ctx, ids[i], e.Version); err != nil {
					errs <- fmt.Errorf("mark %d: %w", i, err)
				}
				if err := s.SetToken(ctx, fmt.Sprint("redeliver/", i), fmt.Sprint("token-", i)); err != nil {
					errs <- fmt.Errorf("token %d: %w", i, err)
				}
			})
			// Readers meanwhile, as the dispatcher and reflector poll.
			wg.Go(func() {
				ctx := context.Background()
				if _, err := allDue(ctx, s, forever, 10); err != nil {
					errs <- fmt.Errorf("due: %w", err)
				}
				if _, err := s.Unreflected(ctx, 10); err != nil {
					errs <- fmt.Errorf("unreflected: %w", err)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if t.Failed() {
			return
		}
		for i, id := range ids {
			if e := mustGet(t, s, id); e.Phase != store.PhaseDelivered || e.Attempts != 2 {
				t.Errorf("event %d: %s after 2 attempts, want Delivered", i, show(e))
			}
			if as := mustAttempts(t, s, id); len(as) != 2 {
				t.Errorf("event %d: %d attempts, want 2", i, len(as))
			}
			if v, err := s.Token(t.Context(), fmt.Sprint("redeliver/", i)); err != nil || v != fmt.Sprint("token-", i) {
				t.Errorf("token %d = %q (%v)", i, v, err)
			}
		}
		if u := unreflected(t, s); len(u) != 0 {
			t.Errorf("%d events unreflected after marking every newest version", len(u))
		}
		if due := dueIDs(t, s, forever, 100); len(due) != 0 {
			t.Errorf("%d events due after all were delivered", len(due))
		}
	})
}

// ---------------------------------------------------------------------------- Close

// On shutdown the store is closed after the server stopped; a request that still gets
// through must be refused (503, the partner retries), never acknowledged unstored. The
// health endpoint reports the store unhealthy from then on.
func (h *harness) testClose(t *testing.T) {
	s := h.fresh(t)
	id := add(t, s, newIngest(t0, "evt_1"))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if s.Healthy() == nil {
		t.Error("a closed store reports healthy")
	}
	ctx := t.Context()
	for _, tc := range []struct {
		name  string
		write func() error
	}{
		{"Ingest", func() error { _, err := s.Ingest(ctx, newIngest(at(time.Second), "evt_2")); return err }},
		{"RecordAttempt", func() error {
			_, err := s.RecordAttempt(ctx, worker, id, attempt(1, at(time.Second), time.Second, 200, ""), delivered)
			return err
		}},
		{"Requeue", func() error { _, err := s.Requeue(ctx, id, "", at(time.Hour)); return err }},
		{"RequeueFailed", func() error { _, err := s.RequeueFailed(ctx, "ns/orders", "", at(time.Hour)); return err }},
		{"MarkReflected", func() error { return s.MarkReflected(ctx, id, 1) }},
		{"SetToken", func() error { return s.SetToken(ctx, "redeliver/x", "y") }},
		{"Prune", func() error { _, err := s.Prune(ctx, store.Before(at(time.Hour)), at(time.Hour)); return err }},
	} {
		if err := tc.write(); !errors.Is(err, store.ErrClosed) {
			t.Errorf("%s on a closed store: error %v, want ErrClosed", tc.name, err)
		}
	}
	// Shutdown paths may close twice (and Run's cleanup closes again).
	if err := s.Close(); err != nil {
		t.Errorf("closing a closed store: %v", err)
	}
}

// testBudgets: a partner's stored-bytes quota refuses its events without touching another
// partner's, the bytes come back when its events are pruned, each endpoint keeps its
// finished events for its own time, and pruning more events than one transaction takes
// removes them all.
func (h *harness) testBudgets(t *testing.T) {
	quota := func(n int64) option { return func(in *store.Ingest) { in.QuotaBytes = n } }
	t.Run("quota per partner", func(t *testing.T) {
		s := h.fresh(t)
		payload := bytes.Repeat([]byte("x"), 400)
		for i := range 2 {
			add(t, s, newIngest(at(time.Duration(i)*time.Second), fmt.Sprintf("a%d", i), stored(), body(payload), quota(1000)))
		}
		over := newIngest(at(3*time.Second), "a-over", stored(), body(payload), quota(1000))
		if _, err := s.Ingest(t.Context(), over); !errors.Is(err, store.ErrQuotaExceeded) {
			t.Fatalf("the third 400-byte event over a 1000-byte quota: %v, want ErrQuotaExceeded", err)
		}
		if _, err := s.Get(t.Context(), over.Event.UUID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a refused event was stored: %v", err)
		}
		// The refused event left no dedup key: sent again once there is room, it is new.
		other := newIngest(at(4*time.Second), "b0", partner("other-ns", "globex"), stored(), body(payload), quota(1000))
		add(t, s, other)
		usage, err := s.Usage(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if usage["ns/acme"] != 800 || usage["other-ns/globex"] != 400 {
			t.Fatalf("usage %v, want ns/acme 800 and other-ns/globex 400", usage)
		}
		// A duplicate is answered even at the quota: it stores nothing.
		dup := newIngest(at(5*time.Second), "a0", stored(), body(payload), quota(1000))
		if res, err := s.Ingest(t.Context(), dup); err != nil || !res.Duplicate {
			t.Fatalf("a duplicate at the quota: %+v %v", res, err)
		}
		if _, err := s.Prune(t.Context(), store.Before(at(2*time.Second)), at(2*time.Hour)); err != nil {
			t.Fatal(err)
		}
		if usage, _ = s.Usage(t.Context()); usage["ns/acme"] != 0 {
			t.Fatalf("usage after pruning acme's events: %v", usage)
		}
		add(t, s, newIngest(at(6*time.Second), "a-over", stored(), body(payload), quota(1000)))
	})
	t.Run("cutoff per endpoint", func(t *testing.T) {
		s := h.fresh(t)
		short := add(t, s, newIngest(at(0), "s", stored(), endpoint("ns", "short")))
		long := add(t, s, newIngest(at(0), "l", stored(), endpoint("ns", "long")))
		cutoff := store.Cutoff{Default: at(time.Hour), ByEndpoint: map[string]time.Time{"ns/long": at(-time.Hour)}}
		if n, err := s.Prune(t.Context(), cutoff, at(2*time.Hour)); err != nil || n != 1 {
			t.Fatalf("pruned %d (%v), want only the short endpoint's event", n, err)
		}
		if _, err := s.Get(t.Context(), short); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("the short endpoint's event survived: %v", err)
		}
		if _, err := s.Get(t.Context(), long); err != nil {
			t.Errorf("the long endpoint's event was pruned before its cutoff: %v", err)
		}
	})
	t.Run("more than one transaction", func(t *testing.T) {
		s := h.fresh(t)
		const n = 700
		for i := range n {
			add(t, s, newIngest(at(time.Duration(i)*time.Millisecond), fmt.Sprintf("e%d", i), stored()))
		}
		keep := add(t, s, newIngest(at(time.Hour), "keep", stored()))
		removed, err := s.Prune(t.Context(), store.Before(at(time.Minute)), at(3*time.Hour))
		if err != nil || removed != n {
			t.Fatalf("pruned %d (%v), want %d", removed, err, n)
		}
		if _, err := s.Get(t.Context(), keep); err != nil {
			t.Fatalf("a newer event went too: %v", err)
		}
	})
}

// testQueues: each destination's deliveries wait in a queue of their own; DueQueues
// names only the queues with a delivery due, with the oldest due time of each, and Due
// reads one queue, so a destination's backlog is never in the way of another's.
func (h *harness) testQueues(t *testing.T) {
	s := h.fresh(t)
	var backlog []string
	for i := range 50 {
		backlog = append(backlog, add(t, s, newIngest(at(time.Duration(i)*time.Second), fmt.Sprintf("p%d", i), endpoint("team-a", "paused"))))
	}
	other := add(t, s, newIngest(at(time.Hour), "o1", endpoint("team-b", "orders")))
	later := add(t, s, newIngest(at(time.Hour), "l1", endpoint("team-c", "later"), nextAttemptAt(at(3*time.Hour))))
	queues, err := s.DueQueues(t.Context(), at(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]time.Time{}
	for _, q := range queues {
		got[q.Key] = q.OldestDue
	}
	if len(got) != 2 || !got["team-a/paused"].Equal(t0) || !got["team-b/orders"].Equal(at(time.Hour)) {
		t.Fatalf("DueQueues = %v; want team-a/paused due since t0 and team-b/orders since 1h, not team-c/later", queues)
	}
	evs, err := s.Due(t.Context(), "team-b/orders", at(2*time.Hour), 10)
	if err != nil || len(evs) != 1 || evs[0].UUID != other {
		t.Fatalf("Due(team-b/orders) = %v (%v), want only its one event", evs, err)
	}
	evs, err = s.Due(t.Context(), "team-a/paused", at(2*time.Hour), 3)
	if err != nil || len(evs) != 3 || evs[0].UUID != backlog[0] || evs[2].UUID != backlog[2] {
		t.Fatalf("Due(team-a/paused, 3) = %d events (%v), want its three oldest", len(evs), err)
	}
	// A delivered event leaves its queue; a retry moves to its new due time.
	mustRecord(t, s, other, attempt(1, at(time.Hour), time.Second, 200, ""), delivered)
	mustRecord(t, s, backlog[0], attempt(1, at(time.Hour), time.Second, 503, "HTTP 503"), retrying(at(4*time.Hour)))
	queues, err = s.DueQueues(t.Context(), at(3*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(queues) != 2 || queues[0].Key == "team-b/orders" && queues[1].Key == "team-b/orders" {
		t.Fatalf("after delivery: %v", queues)
	}
	for _, q := range queues {
		if q.Key == "team-b/orders" {
			t.Fatalf("a queue with nothing left is listed: %v", queues)
		}
		if q.Key == "team-a/paused" && !q.OldestDue.Equal(at(time.Second)) {
			t.Fatalf("team-a/paused's oldest due is %v after its first event moved to a retry", q.OldestDue.Sub(t0))
		}
		if q.Key == "team-c/later" && !q.OldestDue.Equal(at(3*time.Hour)) {
			t.Fatalf("team-c/later due at %v", q.OldestDue.Sub(t0))
		}
	}
	if depth, err := s.QueueDepth(t.Context()); err != nil || depth != 51 {
		t.Fatalf("QueueDepth = %d (%v), want 49 + the retry + team-c's", depth, err)
	}
	_ = later
}
