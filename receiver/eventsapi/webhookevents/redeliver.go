package webhookevents

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"time"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apiserver/pkg/registry/rest"

	eventsv1alpha1 "github.com/hookgate/hookgate/api/events/v1alpha1"
	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
	"github.com/hookgate/hookgate/receiver/store"
)

// Update takes the one change a WebhookEvent takes: a new value of its
// hookgate.io/redeliver annotation (with hookgate.io/redeliver-destination naming one
// destination, or none for each whose delivery finished) queues the event again.
// `kubectl annotate webhookevent UUID hookgate.io/redeliver=...` is a PATCH that ends
// here. The annotations are a request, not kept: the event store is the view's only
// content, so the answer shows them once and a later read does not. A value already
// handled (the same annotation sent twice) queues nothing.
func (r *REST) Update(ctx context.Context, name string, objInfo rest.UpdatedObjectInfo, _ rest.ValidateObjectFunc,
	updateValidation rest.ValidateObjectUpdateFunc, _ bool, _ *metav1.UpdateOptions) (runtime.Object, bool, error) {
	ev, err := r.get(ctx, name)
	if err != nil {
		return nil, false, err
	}
	current := FromStore(ev)
	obj, err := objInfo.UpdatedObject(ctx, current.DeepCopy())
	if err != nil {
		return nil, false, err
	}
	updated, ok := obj.(*eventsv1alpha1.WebhookEvent)
	if !ok {
		return nil, false, apierrors.NewBadRequest(fmt.Sprintf("not a WebhookEvent: %T", obj))
	}
	if err := onlyRedelivery(current, updated); err != nil {
		return nil, false, err
	}
	if updateValidation != nil {
		if err := updateValidation(ctx, updated, current); err != nil {
			return nil, false, err
		}
	}
	token := updated.Annotations[hookgatev1alpha1.AnnotationRedeliver]
	destination := updated.Annotations[hookgatev1alpha1.AnnotationRedeliverDestination]
	if token != "" {
		queued, err := Redeliver(ctx, r.opts.Store, ev, destination, token, r.opts.Now())
		switch {
		case errors.Is(err, store.ErrNotFound):
			return nil, false, apierrors.NewInvalid(current.GroupVersionKind().GroupKind(), name, field.ErrorList{field.Invalid(
				field.NewPath("metadata", "annotations").Key(hookgatev1alpha1.AnnotationRedeliverDestination), destination,
				"the event has no delivery to this destination")})
		case err != nil:
			return nil, false, r.unavailable(err)
		case queued:
			r.opts.Log.Info("event queued again on request", "namespace", ev.PartnerNamespace, "uuid", ev.UUID, "destination", destination)
			if r.opts.Wake != nil {
				r.opts.Wake()
			}
		}
	}
	if ev, err = r.get(ctx, name); err != nil {
		return nil, false, err
	}
	out := FromStore(ev)
	out.Annotations = maps.Clone(updated.Annotations)
	return out, false, nil
}

// onlyRedelivery refuses any change but the redelivery annotations, naming what changed.
// current is compared as it was sent (its times in seconds), as the patch applied to it.
func onlyRedelivery(current, updated *eventsv1alpha1.WebhookEvent) error {
	if raw, err := json.Marshal(current); err == nil {
		sent := &eventsv1alpha1.WebhookEvent{}
		if json.Unmarshal(raw, sent) == nil {
			current = sent
		}
	}
	var errs field.ErrorList
	if !apiequality.Semantic.DeepEqual(current.Spec, updated.Spec) {
		errs = append(errs, field.Forbidden(field.NewPath("spec"), "a WebhookEvent is a view of the event store: only the redelivery annotations may be set"))
	}
	if !apiequality.Semantic.DeepEqual(current.Status, updated.Status) {
		errs = append(errs, field.Forbidden(field.NewPath("status"), "a WebhookEvent is a view of the event store: only the redelivery annotations may be set"))
	}
	if !maps.Equal(current.Labels, updated.Labels) {
		errs = append(errs, field.Forbidden(field.NewPath("metadata", "labels"), "the labels are the event's own: only the redelivery annotations may be set"))
	}
	for k := range updated.Annotations {
		if k != hookgatev1alpha1.AnnotationRedeliver && k != hookgatev1alpha1.AnnotationRedeliverDestination {
			errs = append(errs, field.Forbidden(field.NewPath("metadata", "annotations").Key(k), "only the redelivery annotations may be set"))
		}
	}
	if len(errs) > 0 {
		return apierrors.NewInvalid(current.GroupVersionKind().GroupKind(), current.Name, errs)
	}
	return nil
}

// Redeliver queues ev again, to one destination or (destination "") to each whose
// delivery finished, unless token is the value last handled for it; it reports whether
// it queued. The caller has checked that the request is ev's namespace's: anyone who may
// write WebhookEvents in one namespace must not redeliver another tenant's events by
// naming their uuid. An unknown destination is store.ErrNotFound, recorded as handled
// so that it is not tried again until the token changes.
func Redeliver(ctx context.Context, st Store, ev *store.Event, destination, token string, now time.Time) (bool, error) {
	name := "redeliver/" + ev.UUID
	handled, err := st.Token(ctx, name)
	if err != nil {
		return false, err
	}
	if handled == token {
		return false, nil
	}
	_, requeueErr := st.Requeue(ctx, ev.UUID, destination, now)
	if requeueErr != nil && !errors.Is(requeueErr, store.ErrNotFound) {
		return false, requeueErr
	}
	if err := st.SetToken(ctx, name, token); err != nil {
		return false, err
	}
	return requeueErr == nil, requeueErr
}
