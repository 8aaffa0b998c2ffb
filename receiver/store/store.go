// Package store keeps received events durably. The receiver sees only the Store
// interface: the embedded implementation (bbolt, one file in the data directory) now, and
// PostgreSQL later for several replicas.
package store

import (
	"context"
	"errors"
	"time"
)

// Phase values mirror WebhookEvent status.phase.
const (
	PhaseQueued     = "Queued"
	PhaseDelivering = "Delivering"
	PhaseRetrying   = "Retrying"
	PhaseDelivered  = "Delivered"
	PhaseFailed     = "Failed"
	// ReasonDestinationRemoved is the last error of a delivery abandoned because its
	// destination, or its endpoint, is no longer in the routing table.
	ReasonDestinationRemoved = "DestinationRemoved"
	PhaseStored              = "Stored"
)

// ErrNotFound: no such event.
var ErrNotFound = errors.New("event not found")

// ErrClosed: the store was closed; nothing more can be written.
var ErrClosed = errors.New("store is closed")

// ErrQuotaExceeded: the event would take its partner over its stored-bytes quota; it
// was not stored.
var ErrQuotaExceeded = errors.New("the partner's stored-bytes quota is exhausted")

// ErrClaimLost is an attempt's result that came too late: its claim ran out and another
// owner claimed the delivery, or a later attempt was recorded. It is not recorded, since
// it would overwrite what the new holder did.
var ErrClaimLost = errors.New("the delivery was claimed again since this attempt started")

// Event is one stored event's record. The payload is kept apart (Store.Payload).
type Event struct {
	// UUID is time-ordered (v7): the store relies on it to prune oldest first.
	UUID              string    `json:"uuid"`
	EventID           string    `json:"eventId"`
	Type              string    `json:"type,omitempty"`
	PartnerNamespace  string    `json:"partnerNamespace"`
	Partner           string    `json:"partner"`
	EndpointNamespace string    `json:"endpointNamespace"`
	Endpoint          string    `json:"endpoint"`
	ReceivedAt        time.Time `json:"receivedAt"`
	PayloadSHA256     string    `json:"payloadSHA256"`
	SizeBytes         int64     `json:"sizeBytes"`
	ContentType       string    `json:"contentType,omitempty"`
	// SubType and Tenant are what destination filters and metadata headers read of the
	// event besides its type.
	SubType string `json:"subType,omitempty"`
	Tenant  string `json:"tenant,omitempty"`
	// Reason says why an event of an endpoint with a destination is Stored.
	Reason string `json:"reason,omitempty"`

	Phase            string     `json:"phase"`
	Attempts         int32      `json:"attempts,omitempty"`
	LastAttemptAt    *time.Time `json:"lastAttemptAt,omitempty"`
	NextAttemptAt    *time.Time `json:"nextAttemptAt,omitempty"`
	LastResponseCode int32      `json:"lastResponseCode,omitempty"`
	LastError        string     `json:"lastError,omitempty"`
	DeliveredAt      *time.Time `json:"deliveredAt,omitempty"`
	// AttemptBase is Attempts when the event was last queued again by hand: the retry
	// budget counts from there.
	AttemptBase int32 `json:"attemptBase,omitempty"`
	// Deliveries are the event's deliveries, one per destination its filters took; the
	// fields above (Phase to AttemptBase) are their aggregate (Aggregate). None: Stored.
	Deliveries []DeliveryState `json:"deliveries,omitempty"`
	// Version increases with every change, so that the status reflector writes only the
	// newest state and knows when it has.
	Version uint64 `json:"version"`
}

// Attempt is one delivery attempt.
type Attempt struct {
	// Destination is the delivery's destination ("" in records from before fan-out:
	// the default one).
	Destination  string        `json:"destination,omitempty"`
	Number       int32         `json:"number"`
	StartedAt    time.Time     `json:"startedAt"`
	Duration     time.Duration `json:"duration"`
	ResponseCode int32         `json:"responseCode,omitempty"`
	Error        string        `json:"error,omitempty"`
}

// Outcome is what an attempt decided: the next phase and, for Retrying, when.
type Outcome struct {
	Phase         string
	NextAttemptAt time.Time
}

// Finished reports whether no delivery is pending.
func (e *Event) Finished() bool {
	return e.Phase == PhaseDelivered || e.Phase == PhaseFailed || e.Phase == PhaseStored
}

// EndpointKey identifies the endpoint across namespaces.
func (e *Event) EndpointKey() string { return e.EndpointNamespace + "/" + e.Endpoint }

// PartnerKey identifies the sending partner across namespaces.
func (e *Event) PartnerKey() string { return e.PartnerNamespace + "/" + e.Partner }

// Ingest is one event to store, deduplicated against earlier ones.
type Ingest struct {
	Event   Event
	Payload []byte
	// DedupKey, when set, makes a second event with the same key within DedupWindow a
	// duplicate of the first.
	DedupKey    string
	DedupWindow time.Duration
	// QuotaBytes, when positive, bounds the payload bytes the partner may have stored:
	// an event that would go past it is refused with ErrQuotaExceeded. A duplicate is
	// answered whatever the quota, since it stores nothing.
	QuotaBytes int64
}

// Queue is a delivery queue with a delivery due.
type Queue struct {
	Key string
	// OldestDue is when its oldest due delivery became due.
	OldestDue time.Time
}

// Cutoff says which finished events Prune removes: those received before their
// endpoint's time in ByEndpoint (by endpoint key), or before Default.
type Cutoff struct {
	Default    time.Time
	ByEndpoint map[string]time.Time
}

// Before is the Cutoff of one time for every endpoint.
func Before(t time.Time) Cutoff { return Cutoff{Default: t} }

// For is the cutoff of one endpoint.
func (c Cutoff) For(endpointKey string) time.Time {
	if t, ok := c.ByEndpoint[endpointKey]; ok {
		return t
	}
	return c.Default
}

// Latest is the latest cutoff of any endpoint: no event received after it is removed.
func (c Cutoff) Latest() time.Time {
	latest := c.Default
	for _, t := range c.ByEndpoint {
		if t.After(latest) {
			latest = t
		}
	}
	return latest
}

// IngestResult is what Ingest did: stored the new event, or found the original.
type IngestResult struct {
	Event     Event
	Duplicate bool
}

// BoundedIngest is implemented by a store whose Ingest bounds its own waits (the
// embedded store: for room in its commit queue), so that the pipeline need not make a
// deadline, a timer and its bookkeeping, for every event.
type BoundedIngest interface {
	// IngestWaitBound is the longest an Ingest waits before it fails.
	IngestWaitBound() time.Duration
}

// Store is the receiver's durable event store.
type Store interface {
	// Ingest deduplicates and stores an event. It returns only once the event is durable
	// (fsync'd), or with an error, in which case nothing was stored.
	Ingest(ctx context.Context, in Ingest) (IngestResult, error)
	// Get finds an event by uuid.
	Get(ctx context.Context, uuid string) (*Event, error)
	// FindByEventID finds a partner's latest event with the partner's own event id.
	FindByEventID(ctx context.Context, partnerKey, eventID string) (*Event, error)
	// Payload returns an event's raw body.
	Payload(ctx context.Context, uuid string) ([]byte, error)
	// Prune deletes finished events received before their cutoff and dedup keys expired
	// at now, and reports how many events it removed. It works in small transactions of
	// its own, so that ingest never waits long behind it.
	Prune(ctx context.Context, cutoff Cutoff, now time.Time) (int, error)
	// Usage reports the payload bytes each partner (by partner key) has stored.
	Usage(ctx context.Context) (map[string]int64, error)
	// DueQueues lists the delivery queues that have a delivery due at now, each with its
	// oldest due time. A queue holds one destination's deliveries (QueueKey), so that the
	// dispatcher can go round the destinations it may deliver to and never look at the
	// backlog of one it may not (paused, at its concurrency cap, circuit open).
	DueQueues(ctx context.Context, now time.Time) ([]Queue, error)
	// Due returns up to limit queued or retrying deliveries of one queue due at now,
	// oldest due first, without claiming them (a look; Claim is the dispatcher's take).
	// A claimed delivery is not due while its lease holds.
	Due(ctx context.Context, queue string, now time.Time, limit int) ([]Delivery, error)
	// Claim takes up to limit due deliveries of one queue, oldest due first, for owner
	// (a worker pool, unique per process), leasing each until now+lease: while the lease
	// holds no other owner, in this process or another replica, can claim it; once it
	// runs out (the owner died) the delivery is due again. The events are returned as
	// they are at the claim. RecordAttempt ends the claim.
	Claim(ctx context.Context, queue, owner string, now time.Time, lease time.Duration, limit int) ([]Delivery, error)
	// RenewLeases extends owner's leases on these deliveries to until, for attempts that
	// run long; it returns those whose lease owner no longer holds.
	RenewLeases(ctx context.Context, owner string, deliveries []DeliveryRef, until time.Time) (lost []DeliveryRef, err error)
	// Release gives back owner's claims on these deliveries without an attempt (shutting
	// down, or claimed but not started): each is due again at its own due time.
	Release(ctx context.Context, owner string, deliveries []DeliveryRef) error
	// QueueDepth counts the deliveries waiting, due or not, in every queue.
	QueueDepth(ctx context.Context) (int, error)
	// RecordAttempt stores owner's attempt of the delivery to a.Destination and its
	// outcome, and ends the claim. While another owner holds the claim, or once an attempt
	// of the same or a later number is recorded, it changes nothing and returns the event
	// as it is with ErrClaimLost.
	RecordAttempt(ctx context.Context, owner, uuid string, a Attempt, o Outcome) (*Event, error)
	// Abandon finishes a delivery that will never be attempted (its destination or
	// endpoint left the routing table) as Failed, with reason as its last error, and ends
	// any claim on it. No attempt is recorded and its count stands, so the event is
	// pruned with the others and its bytes given back; a redelivery queues it again. A
	// finished delivery is left as it is.
	Abandon(ctx context.Context, uuid, destination, reason string) (*Event, error)
	// Attempts lists an event's attempts, to every destination, first first.
	Attempts(ctx context.Context, uuid string) ([]Attempt, error)
	// Requeue queues an event's finished deliveries again (redelivery), due at once:
	// every one when destination is "", else the one named.
	Requeue(ctx context.Context, uuid, destination string, now time.Time) (*Event, error)
	// RequeueFailed queues the Failed deliveries of every Failed event of an endpoint
	// again (the delivered ones are not sent twice): to every destination when
	// destination is "", else to the one named.
	RequeueFailed(ctx context.Context, endpointKey, destination string, now time.Time) (int, error)
	// Unreflected returns up to limit events whose newest state the status reflector has
	// not written yet; MarkReflected records that it wrote version.
	Unreflected(ctx context.Context, limit int) ([]Event, error)
	MarkReflected(ctx context.Context, uuid string, version uint64) error
	// Token and SetToken keep small named values (handled redelivery annotations).
	Token(ctx context.Context, name string) (string, error)
	SetToken(ctx context.Context, name, value string) error
	// ListEvents is a page of a partner's events, newest first, and the cursor of the
	// next page ("" at the end).
	ListEvents(ctx context.Context, partnerKey string, q ListQuery) ([]Event, string, error)
	// ListSelected is a page of the selected events, newest first, and the cursor of the
	// next page ("" at the end): the events API's lists, from the narrowest index the
	// selection names, looking at no more than MaxListScan events a page.
	ListSelected(ctx context.Context, sel Selection) ([]Event, string, error)
	// AddDailyCounts adds request counts to each partner's per-day totals; DailyCounts
	// reads a partner's from sinceDay (YYYY-MM-DD) on, oldest first; PruneDailyCounts
	// drops the days before beforeDay.
	AddDailyCounts(ctx context.Context, counts []DailyCount) error
	DailyCounts(ctx context.Context, partnerKey, sinceDay string) ([]DailyCount, error)
	PruneDailyCounts(ctx context.Context, beforeDay string) error
	// Healthy is nil while the store can write.
	Healthy() error
	Close() error
}

// Listener is a store shared by several processes that can tell one when another queued
// deliveries (PostgreSQL's LISTEN/NOTIFY), so that idle workers start at once instead of
// at their next poll.
type Listener interface {
	// Listen calls wake after deliveries were queued anywhere, until ctx ends.
	Listen(ctx context.Context, wake func()) error
}
