// Package v1alpha1 contains the events.hookgate.io/v1alpha1 API: WebhookEvent, served by
// the receiver from its event store through an aggregated API (it is no custom resource:
// nothing of it is in etcd). A group of its own, because an APIService and a CRD cannot
// share a group-version.
// +kubebuilder:object:generate=true
// +groupName=events.hookgate.io
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of the events API.
	GroupVersion = schema.GroupVersion{Group: "events.hookgate.io", Version: "v1alpha1"}

	// SchemeBuilder registers the events API's types with a runtime.Scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the events API's types to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

// Resource is the events API's one resource.
const Resource = "webhookevents"

func addKnownTypes(scheme *runtime.Scheme) error {
	scheme.AddKnownTypes(GroupVersion, &WebhookEvent{}, &WebhookEventList{})
	metav1.AddToGroupVersion(scheme, GroupVersion)
	return nil
}
