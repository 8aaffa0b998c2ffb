package v1alpha1

// Condition types and reasons shared by the controllers, the receiver and the tests.
const (
	// ConditionReady is True when the resource is fully reconciled and served by a receiver.
	ConditionReady = "Ready"
	// ConditionCredentialsReady is True when a Partner's credentials Secret holds usable keys.
	ConditionCredentialsReady = "CredentialsReady"

	ReasonReconciled         = "Reconciled"
	ReasonWaitingForReceiver = "WaitingForReceiver"
	ReasonPathConflict       = "PathConflict"
	ReasonSuspended          = "Suspended"
)

// Labels and annotations of the hookgate.io API.
const (
	LabelPartner  = "hookgate.io/partner"
	LabelEndpoint = "hookgate.io/endpoint"
	LabelPhase    = "hookgate.io/phase"
	// LabelManagedBy marks Secrets the operator created, the only ones it ever changes.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	ManagedByValue = "hookgate"

	// AnnotationRotate on a Partner: a new value makes new credentials.
	AnnotationRotate = "hookgate.io/rotate"
	// AnnotationRedeliver on a WebhookEvent: a new value queues the event again.
	AnnotationRedeliver = "hookgate.io/redeliver"
	// AnnotationRedeliverFailed on a WebhookEndpoint: a new value queues every Failed event.
	AnnotationRedeliverFailed = "hookgate.io/redeliver-failed"
)

// SecretKeySelector names one key of a Secret in the resource's own namespace.
type SecretKeySelector struct {
	// name of the Secret, in the same namespace.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// key inside the Secret's data.
	// +kubebuilder:default=secret
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Key string `json:"key,omitempty"`
}
