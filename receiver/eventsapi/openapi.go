package eventsapi

import (
	_ "embed"
	"encoding/json"
	"fmt"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	extensionsopenapi "k8s.io/apiextensions-apiserver/pkg/generated/openapi"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/kube-openapi/pkg/common"
	"k8s.io/kube-openapi/pkg/validation/spec"
	"sigs.k8s.io/yaml"

	eventsv1alpha1 "github.com/hookgate/hookgate/api/events/v1alpha1"
)

// webhookEventSchema is WebhookEvent's schema as controller-gen makes it from the type's
// markers and doc comments (make manifests): the same source as every hookgate CRD, so
// kubectl explain prints the field descriptions of the Go types.
//
//go:embed schema/events.hookgate.io_webhookevents.yaml
var webhookEventSchema []byte

// openAPIDefinitions are the events API's OpenAPI models: WebhookEvent and its list,
// and the Kubernetes meta types they and the API's routes refer to.
func openAPIDefinitions(ref common.ReferenceCallback) map[string]common.OpenAPIDefinition {
	defs := extensionsopenapi.GetOpenAPIDefinitions(ref)
	event, err := webhookEventModel(ref)
	if err != nil {
		panic(err) // the embedded schema is generated and tested: it always parses
	}
	objectMeta, listMeta := metav1.ObjectMeta{}.OpenAPIModelName(), metav1.ListMeta{}.OpenAPIModelName()
	defs[eventsv1alpha1.WebhookEvent{}.OpenAPIModelName()] = common.OpenAPIDefinition{Schema: event, Dependencies: []string{objectMeta}}
	defs[eventsv1alpha1.WebhookEventList{}.OpenAPIModelName()] = common.OpenAPIDefinition{
		Schema: spec.Schema{SchemaProps: spec.SchemaProps{
			Description: "WebhookEventList is a page of WebhookEvents, newest first.",
			Type:        []string{"object"},
			Required:    []string{"items"},
			Properties: map[string]spec.Schema{
				"apiVersion": event.Properties["apiVersion"],
				"kind":       event.Properties["kind"],
				"metadata":   {SchemaProps: spec.SchemaProps{Ref: ref(listMeta)}},
				"items": {SchemaProps: spec.SchemaProps{Type: []string{"array"}, Items: &spec.SchemaOrArray{
					Schema: &spec.Schema{SchemaProps: spec.SchemaProps{Ref: ref(eventsv1alpha1.WebhookEvent{}.OpenAPIModelName())}},
				}}},
			},
		}},
		Dependencies: []string{listMeta, eventsv1alpha1.WebhookEvent{}.OpenAPIModelName()},
	}
	return defs
}

// webhookEventModel is the generated schema with metadata as ObjectMeta (a CRD's schema
// leaves metadata to the API server; here it is the model's).
func webhookEventModel(ref common.ReferenceCallback) (spec.Schema, error) {
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.UnmarshalStrict(webhookEventSchema, &crd); err != nil {
		return spec.Schema{}, fmt.Errorf("the WebhookEvent schema: %w", err)
	}
	if len(crd.Spec.Versions) != 1 || crd.Spec.Versions[0].Schema == nil || crd.Spec.Versions[0].Schema.OpenAPIV3Schema == nil {
		return spec.Schema{}, fmt.Errorf("the WebhookEvent schema has no version with a schema")
	}
	raw, err := json.Marshal(crd.Spec.Versions[0].Schema.OpenAPIV3Schema)
	if err != nil {
		return spec.Schema{}, err
	}
	var s spec.Schema
	if err := json.Unmarshal(raw, &s); err != nil {
		return spec.Schema{}, fmt.Errorf("the WebhookEvent schema as OpenAPI: %w", err)
	}
	s.Properties["metadata"] = spec.Schema{SchemaProps: spec.SchemaProps{Ref: ref(metav1.ObjectMeta{}.OpenAPIModelName())}}
	return s, nil
}
