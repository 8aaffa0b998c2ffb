package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// EventPhase is where an event is in its delivery.
// +kubebuilder:validation:Enum=Queued;Delivering;Retrying;Delivered;Failed;Stored
type EventPhase string

const (
	PhaseQueued     EventPhase = "Queued"
	PhaseDelivering EventPhase = "Delivering"
	PhaseRetrying   EventPhase = "Retrying"
	PhaseDelivered  EventPhase = "Delivered"
	PhaseFailed     EventPhase = "Failed"
	// PhaseStored: the endpoint has no destination; the event is kept, not forwarded.
	PhaseStored EventPhase = "Stored"
)

// Finished reports whether no further delivery attempt is planned.
func (p EventPhase) Finished() bool {
	return p == PhaseDelivered || p == PhaseFailed || p == PhaseStored
}

// WebhookEventSpec identifies a stored event. It holds no payload and no secrets. The
// WebhookEvent resource itself is the events API's (api/events/v1alpha1), served by the
// receiver from its store; its spec and status are these.
type WebhookEventSpec struct {
	// partner that sent the event.
	Partner string `json:"partner"`
	// endpoint the event was posted to.
	Endpoint string `json:"endpoint"`
	// eventId is the partner's id for the event (its uuid when the partner gave none).
	// +optional
	EventID string `json:"eventId,omitempty"`
	// uuid is hookgate's receipt id.
	UUID string `json:"uuid"`
	// type of the event.
	// +optional
	Type string `json:"type,omitempty"`
	// receivedAt is when the receiver stored the event.
	ReceivedAt metav1.Time `json:"receivedAt"`
	// payloadSHA256 is the hex SHA-256 of the raw body.
	// +optional
	PayloadSHA256 string `json:"payloadSHA256,omitempty"`
	// sizeBytes is the body's length.
	// +optional
	SizeBytes int64 `json:"sizeBytes,omitempty"`
}

// WebhookEventStatus is the delivery state of an event, as the receiver's store holds it.
type WebhookEventStatus struct {
	// phase of delivery.
	// +optional
	Phase EventPhase `json:"phase,omitempty"`
	// attempts made so far.
	// +optional
	Attempts int32 `json:"attempts,omitempty"`
	// lastAttemptAt is when the latest attempt started.
	// +optional
	LastAttemptAt *metav1.Time `json:"lastAttemptAt,omitempty"`
	// nextAttemptAt is when the next attempt is due.
	// +optional
	NextAttemptAt *metav1.Time `json:"nextAttemptAt,omitempty"`
	// lastResponseCode is the destination's latest HTTP status (0: no response).
	// +optional
	LastResponseCode int32 `json:"lastResponseCode,omitempty"`
	// lastError describes the latest failed attempt.
	// +optional
	LastError string `json:"lastError,omitempty"`
	// reason says why an event of an endpoint with a destination is Stored: no
	// destination's filter took it.
	// +optional
	Reason string `json:"reason,omitempty"`
	// deliveredAt is when the destination accepted the event (with several, the last).
	// +optional
	DeliveredAt *metav1.Time `json:"deliveredAt,omitempty"`
	// delivered counts the destinations that accepted the event, of those it went to
	// ("2/3"); the fields above are the aggregate of deliveries.
	// +optional
	Delivered string `json:"delivered,omitempty"`
	// deliveries: each destination's delivery, when the event went to more than one.
	// +kubebuilder:validation:MaxItems=16
	// +listType=map
	// +listMapKey=destination
	// +optional
	Deliveries []EventDelivery `json:"deliveries,omitempty"`
}

// EventDelivery is one destination's delivery of an event.
type EventDelivery struct {
	// destination is the destination's name in the endpoint.
	Destination string `json:"destination"`
	// phase of this delivery.
	Phase EventPhase `json:"phase"`
	// attempts made to this destination.
	// +optional
	Attempts int32 `json:"attempts,omitempty"`
	// lastResponseCode is this destination's latest HTTP status (0: no response).
	// +optional
	LastResponseCode int32 `json:"lastResponseCode,omitempty"`
	// lastError is the class of the latest failed attempt (timeout, HTTP 503, ...).
	// +optional
	LastError string `json:"lastError,omitempty"`
	// nextAttemptAt is when the next attempt is due.
	// +optional
	NextAttemptAt *metav1.Time `json:"nextAttemptAt,omitempty"`
	// deliveredAt is when this destination accepted the event.
	// +optional
	DeliveredAt *metav1.Time `json:"deliveredAt,omitempty"`
}
