package eventstatus

import (
	"context"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/tools/cache"

	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
	"github.com/hookgate/hookgate/receiver/eventsapi/webhookevents"
)

// RedeliveryWatcher queues an event again when its WebhookEvent's hookgate.io/redeliver
// annotation takes a value not handled yet. It watches metadata only.
type RedeliveryWatcher struct {
	Client    metadata.Interface
	Reflector *Reflector
}

// Start watches until ctx ends.
func (w *RedeliveryWatcher) Start(ctx context.Context) error {
	gvr := hookgatev1alpha1.GroupVersion.WithResource("webhookevents")
	factory := metadatainformer.NewSharedInformerFactory(w.Client, 10*time.Minute)
	informer := factory.ForResource(gvr).Informer()
	handle := func(obj any) {
		o, ok := obj.(*metav1.PartialObjectMetadata)
		if !ok {
			return
		}
		token := o.Annotations[hookgatev1alpha1.AnnotationRedeliver]
		if token == "" {
			return
		}
		w.Reflector.redeliver(ctx, o.Namespace, o.Name, o.Annotations[hookgatev1alpha1.AnnotationRedeliverDestination], token)
	}
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    handle,
		UpdateFunc: func(_, obj any) { handle(obj) },
	}); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	<-ctx.Done()
	factory.Shutdown()
	return nil
}

// redeliver queues the event of a WebhookEvent again (webhookevents.Redeliver), when
// the WebhookEvent is the event's own, in its partner's namespace.
func (r *Reflector) redeliver(ctx context.Context, namespace, uuid, destination, token string) {
	ev, err := r.opts.Store.Get(ctx, uuid)
	if err != nil {
		return // not an event of this store (or pruned): nothing to queue
	}
	if ev.PartnerNamespace != namespace {
		r.opts.Log.Info("ignoring a redelivery request from another namespace than the event's", "namespace", namespace, "uuid", uuid)
		return
	}
	queued, err := webhookevents.Redeliver(ctx, r.opts.Store, ev, destination, token, r.opts.Now())
	if err != nil {
		r.opts.Log.Error(err, "queueing an event again", "uuid", uuid, "destination", destination)
		return
	}
	if queued {
		r.opts.Log.Info("event queued again on request", "uuid", uuid, "destination", destination)
		if r.opts.Wake != nil {
			r.opts.Wake()
		}
	}
}
