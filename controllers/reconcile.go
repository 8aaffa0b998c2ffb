package controllers

import (
	"context"
	"errors"

	"k8s.io/apimachinery/pkg/api/equality"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// reconcileStatus is the thin Reconcile both controllers share: fetch the object, leave
// one that is being deleted alone, run reconcile, and write the status once, only when it
// changed. The routing table is asked for a rebuild whatever happened.
//
// The status is written as a merge patch from the object as read, without a
// resourceVersion precondition: this controller is the status's only writer, so a change
// elsewhere in the object (an annotation, a label, a spec edit, which brings its own
// reconcile) must not fail the write with a conflict and cost a backoff.
func reconcileStatus[T client.Object](ctx context.Context, c client.Client, pub *Publisher, req ctrl.Request, obj T,
	status func(T) any, reconcile func(context.Context, T) (ctrl.Result, error)) (ctrl.Result, error) {
	defer pub.Trigger()
	if err := c.Get(ctx, req.NamespacedName, obj); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !obj.GetDeletionTimestamp().IsZero() {
		return ctrl.Result{}, nil
	}
	before := obj.DeepCopyObject().(T)
	result, err := reconcile(ctx, obj)
	if !equality.Semantic.DeepEqual(status(before), status(obj)) {
		if perr := c.Status().Patch(ctx, obj, client.MergeFrom(before)); perr != nil {
			return ctrl.Result{}, errors.Join(err, perr)
		}
	}
	return result, err
}
