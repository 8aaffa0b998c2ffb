// Package v1alpha1 contains the hookgate.io/v1alpha1 API: Partner and WebhookEndpoint,
// and the spec and status of the events API's WebhookEvent (events.hookgate.io).
// +kubebuilder:object:generate=true
// +groupName=hookgate.io
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of every hookgate resource.
	GroupVersion = schema.GroupVersion{Group: "hookgate.io", Version: "v1alpha1"}

	// SchemeBuilder registers the hookgate types with a runtime.Scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the hookgate types to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(scheme *runtime.Scheme) error {
	scheme.AddKnownTypes(GroupVersion,
		&Partner{}, &PartnerList{},
		&WebhookEndpoint{}, &WebhookEndpointList{},
	)
	metav1.AddToGroupVersion(scheme, GroupVersion)
	return nil
}
