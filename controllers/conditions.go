package controllers

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
)

// problem is why a resource is not ready: a condition reason and a message for people.
type problem struct {
	Reason  string
	Message string
}

func (p *problem) Error() string { return p.Reason + ": " + p.Message }

// setCondition sets one condition with the object's generation and, when the condition
// changed to a state the user must act on (hookgatev1alpha1.WarnsOnCondition), records a
// Warning event with the same reason and message.
func setCondition(rec events.EventRecorder, obj client.Object, conds *[]metav1.Condition, typ string, ok bool, reason, message string) {
	status := metav1.ConditionFalse
	if ok {
		status = metav1.ConditionTrue
	}
	old := meta.FindStatusCondition(*conds, typ)
	changed := old == nil || old.Status != status || old.Reason != reason
	meta.SetStatusCondition(conds, metav1.Condition{
		Type: typ, Status: status, Reason: reason, Message: message, ObservedGeneration: obj.GetGeneration(),
	})
	if changed && hookgatev1alpha1.WarnsOnCondition(ok, reason) {
		rec.Eventf(obj, nil, corev1.EventTypeWarning, reason, "Reconcile", "%s", message)
	}
}
