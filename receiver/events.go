package receiver

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"

	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
	"github.com/hookgate/hookgate/internal/routing"
	"github.com/hookgate/hookgate/internal/scheme"
	"github.com/hookgate/hookgate/receiver/store"
)

// newEventRecorder records Kubernetes Events as hookgate-receiver; stop flushes and ends
// it. The events library aggregates repeats, so a flapping destination is one Event
// with a count, not a stream.
func newEventRecorder(cfg *rest.Config) (events.EventRecorder, func(), error) {
	cs, err := kubernetes.NewForConfig(withUserAgent(cfg, "hookgate-receiver/events"))
	if err != nil {
		return nil, nil, err
	}
	broadcaster := events.NewBroadcaster(&events.EventSinkImpl{Interface: cs.EventsV1()})
	stop := make(chan struct{})
	broadcaster.StartRecordingToSink(stop)
	return broadcaster.NewRecorder(scheme.New(), "hookgate-receiver"), func() { close(stop); broadcaster.Shutdown() }, nil
}

// circuitEvents tells an endpoint's owners, on the WebhookEndpoint, that its destination's
// circuit opened or closed.
func circuitEvents(rec events.EventRecorder, holder *routing.Holder) func(queue string, open bool) {
	return func(queue string, open bool) {
		t := holder.Current()
		if t == nil {
			return
		}
		ns, name, destination, err := store.ParseQueueKey(queue)
		if err != nil {
			return
		}
		ep, ok := t.Endpoint(ns, name)
		if !ok {
			return
		}
		obj := &hookgatev1alpha1.WebhookEndpoint{ObjectMeta: metav1.ObjectMeta{Namespace: ep.Namespace, Name: ep.Name, UID: types.UID(ep.UID)}}
		if open {
			rec.Eventf(obj, nil, corev1.EventTypeWarning, hookgatev1alpha1.ReasonDestinationCircuitOpen, "Deliver",
				"destination %q failed its last deliveries in a row (timeouts, connection errors, 429 or 5xx): its deliveries wait and a probe is sent after a cool-down", destination)
			return
		}
		rec.Eventf(obj, nil, corev1.EventTypeNormal, hookgatev1alpha1.ReasonDestinationRecovered, "Deliver", "destination %q: a probe delivery succeeded: deliveries resume", destination)
	}
}
