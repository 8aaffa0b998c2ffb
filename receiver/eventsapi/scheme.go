package eventsapi

import (
	"fmt"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"

	eventsv1alpha1 "github.com/hookgate/hookgate/api/events/v1alpha1"
	"github.com/hookgate/hookgate/receiver/eventsapi/webhookevents"
)

var (
	// Scheme holds the events API's types.
	Scheme = runtime.NewScheme()
	// Codecs serve the events API.
	Codecs = serializer.NewCodecFactory(Scheme)
)

// The API has one version, so its internal version is the same Go types: the API
// machinery converts to the internal version to patch and validate, and there is
// nothing to convert.
func init() {
	internal := schema.GroupVersion{Group: eventsv1alpha1.GroupVersion.Group, Version: runtime.APIVersionInternal}
	must(eventsv1alpha1.AddToScheme(Scheme))
	Scheme.AddKnownTypes(internal, &eventsv1alpha1.WebhookEvent{}, &eventsv1alpha1.WebhookEventList{})
	for _, gv := range []schema.GroupVersion{eventsv1alpha1.GroupVersion, internal} {
		must(Scheme.AddFieldLabelConversionFunc(gv.WithKind("WebhookEvent"), fieldLabel))
	}
	metav1.AddToGroupVersion(Scheme, schema.GroupVersion{Version: "v1"})
	Scheme.AddUnversionedTypes(schema.GroupVersion{Version: "v1"},
		&metav1.Status{}, &metav1.APIVersions{}, &metav1.APIGroupList{}, &metav1.APIGroup{}, &metav1.APIResourceList{})
}

// fieldLabel accepts the field selectors the list serves.
func fieldLabel(label, value string) (string, string, error) {
	if !slices.Contains(webhookevents.FieldLabels, label) {
		return "", "", fmt.Errorf("field label %q is not supported for webhookevents (supported: %v)", label, webhookevents.FieldLabels)
	}
	return label, value, nil
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}
