package v1alpha1

// Condition types of Partner and WebhookEndpoint status.
const (
	// ConditionReady is True when the resource is fully reconciled and served by a receiver.
	ConditionReady = "Ready"
	// ConditionCredentialsReady is True when a Partner's credentials Secret holds usable keys.
	ConditionCredentialsReady = "CredentialsReady"
)

// Condition reasons, as users see them in `kubectl describe` and as Kubernetes Events.
// docs/reference.md lists what each one asks of the user.
const (
	ReasonReconciled         = "Reconciled"
	ReasonWaitingForReceiver = "WaitingForReceiver"
	ReasonPublishing         = "Publishing"
	ReasonPathConflict       = "PathConflict"
	ReasonSuspended          = "Suspended"
	ReasonSecretNotFound     = "SecretNotFound"
	ReasonSecretKeyMissing   = "SecretKeyMissing"
	// ReasonInvalidFilter: a destination's filter expression does not compile.
	ReasonInvalidFilter       = "InvalidFilter"
	ReasonPartnerNotFound     = "PartnerNotFound"
	ReasonServiceNotFound     = "ServiceNotFound"
	ReasonServicePortNotFound = "ServicePortNotFound"
	// ReasonServiceExternalName: the destination Service is of type ExternalName, an
	// alias of a host elsewhere, which a service destination may not reach.
	ReasonServiceExternalName = "ServiceExternalName"
	ReasonCredentialsNotReady = "CredentialsNotReady"
	ReasonCredentialsCreated  = "CredentialsCreated"
	ReasonCredentialsFound    = "CredentialsFound"
	ReasonRotationNotPossible = "RotationNotPossible"
	// ReasonPathNotPermitted: the path is outside /api/webhooks/<namespace>/ and the
	// namespace may not serve shared paths.
	ReasonPathNotPermitted = "PathNotPermitted"
	// ReasonPathReserved: the path, usually the default one of a namespace named events,
	// is one the receiver answers itself.
	ReasonPathReserved = "PathReserved"
	// ReasonSecretTooLarge: a secret value is over the operator's --max-secret-bytes.
	ReasonSecretTooLarge = "SecretTooLarge"
	// ReasonNamespaceTableBudgetExceeded: the namespace's entries would take more of the
	// shared routing table than --max-namespace-table-bytes.
	ReasonNamespaceTableBudgetExceeded = "NamespaceTableBudgetExceeded"
	// ReasonDestinationCircuitOpen: the destination kept failing; its deliveries wait for
	// a probe after a cool-down. ReasonDestinationRecovered: the probe succeeded.
	ReasonDestinationCircuitOpen = "DestinationCircuitOpen"
	ReasonDestinationRecovered   = "DestinationRecovered"
)

// transientReasons are the not-ready reasons that resolve by themselves (the operator or
// a receiver is still catching up); they are not worth a Warning event.
var transientReasons = map[string]bool{ReasonPublishing: true, ReasonWaitingForReceiver: true}

// WarnsOnCondition reports whether a condition that turned to (ok, reason) deserves a
// Warning event: a False condition the user has to act on, or a True one that still
// asks for attention (a rotation that cannot be carried out).
func WarnsOnCondition(ok bool, reason string) bool {
	if ok {
		return reason == ReasonRotationNotPossible
	}
	return !transientReasons[reason]
}

// Keys of the Secrets hookgate reads and writes.
const (
	// SecretKeyAPIKey and SecretKeySigningSecret hold a partner's current credentials.
	SecretKeyAPIKey        = "apiKey"
	SecretKeySigningSecret = "signingSecret"
	// SecretKeyPreviousAPIKey and SecretKeyPreviousSigningSecret hold the credentials in
	// their rotation grace period.
	SecretKeyPreviousAPIKey        = "previousApiKey"
	SecretKeyPreviousSigningSecret = "previousSigningSecret"
	// SecretKeyDefault is the key of an endpoint's <name>-signing Secret, and the default
	// key of spec.verification.secretRef.
	SecretKeyDefault = "secret"
	// SecretKeyPreviousSigning holds an endpoint's signing key in its rotation grace period.
	SecretKeyPreviousSigning = "previous"
	// DefaultDestinationName names the destination of spec.destination.
	DefaultDestinationName = "default"

	// APIKeyPrefix and SigningSecretPrefix start every credential the operator makes.
	APIKeyPrefix        = "hgk_"
	SigningSecretPrefix = "whsec_"
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
	// AnnotationRedeliverDestination, beside either redelivery annotation, names the one
	// destination to deliver to again; without it every destination the annotation
	// applies to (the finished ones of an event, the failed ones of an endpoint).
	AnnotationRedeliverDestination = "hookgate.io/redeliver-destination"
	// AnnotationRotateSigning on a WebhookEndpoint: a new value makes a new signing key.
	AnnotationRotateSigning = "hookgate.io/rotate-signing"
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
