package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
)

// WebhookEvent is a read-only view of one stored event, named by its uuid, in its
// partner's namespace. The receiver serves it from the event store; the only change it
// takes is the hookgate.io/redeliver annotation (and hookgate.io/redeliver-destination),
// which queues the event again.
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Namespaced,shortName=whev,categories=hookgate
// +kubebuilder:printcolumn:name="Partner",type=string,JSONPath=`.spec.partner`
// +kubebuilder:printcolumn:name="Endpoint",type=string,JSONPath=`.spec.endpoint`
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.type`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Delivered",type=string,JSONPath=`.status.delivered`
// +kubebuilder:printcolumn:name="Attempts",type=integer,JSONPath=`.status.attempts`
// +kubebuilder:printcolumn:name="Code",type=integer,JSONPath=`.status.lastResponseCode`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type WebhookEvent struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   hookgatev1alpha1.WebhookEventSpec   `json:"spec"`
	Status hookgatev1alpha1.WebhookEventStatus `json:"status,omitempty"`
}

// WebhookEventList is a page of WebhookEvents, newest first.
// +kubebuilder:object:root=true
type WebhookEventList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []WebhookEvent `json:"items"`
}

// OpenAPIModelName names the type in the events API's OpenAPI documents (the
// x-kubernetes-group-version-kind that kubectl explain and server-side apply look for
// is found by this name).
func (WebhookEvent) OpenAPIModelName() string { return "io.hookgate.events.v1alpha1.WebhookEvent" }

// OpenAPIModelName names the type in the events API's OpenAPI documents.
func (WebhookEventList) OpenAPIModelName() string {
	return "io.hookgate.events.v1alpha1.WebhookEventList"
}
