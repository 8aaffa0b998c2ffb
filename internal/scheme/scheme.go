// Package scheme holds the runtime.Scheme every hookgate process uses: the Kubernetes
// built-in types plus hookgate.io/v1alpha1 and the events API's events.hookgate.io/v1alpha1.
package scheme

import (
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	eventsv1alpha1 "github.com/hookgate/hookgate/api/events/v1alpha1"
	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
)

// New returns a scheme with the Kubernetes and hookgate types.
func New() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := hookgatev1alpha1.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := eventsv1alpha1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}
