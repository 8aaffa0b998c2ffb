package controllers

import (
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// problem is why a resource is not ready: a condition reason and a message for people.
type problem struct {
	Reason  string
	Message string
}

func (p *problem) Error() string { return p.Reason + ": " + p.Message }

// setCondition sets one condition with the object's generation; it reports whether the
// condition's status or reason changed, which is when an event is worth recording.
func setCondition(conds *[]metav1.Condition, generation int64, typ string, ok bool, reason, message string) bool {
	status := metav1.ConditionFalse
	if ok {
		status = metav1.ConditionTrue
	}
	old := meta.FindStatusCondition(*conds, typ)
	changed := old == nil || old.Status != status || old.Reason != reason
	meta.SetStatusCondition(conds, metav1.Condition{
		Type: typ, Status: status, Reason: reason, Message: message, ObservedGeneration: generation,
	})
	return changed
}
