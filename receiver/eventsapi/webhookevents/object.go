// Package webhookevents is the events API's storage of its one resource: WebhookEvents
// read from the event store (get, list, watch, table) and the one change they take, the
// redelivery annotation.
package webhookevents

import (
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	eventsv1alpha1 "github.com/hookgate/hookgate/api/events/v1alpha1"
	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
	"github.com/hookgate/hookgate/receiver/store"
)

// FromStore is the WebhookEvent of a stored event: named by its uuid (also its uid), in
// its partner's namespace, created when it was received, labelled for selection.
func FromStore(ev *store.Event) *eventsv1alpha1.WebhookEvent {
	return &eventsv1alpha1.WebhookEvent{
		TypeMeta: metav1.TypeMeta{APIVersion: eventsv1alpha1.GroupVersion.String(), Kind: "WebhookEvent"},
		ObjectMeta: metav1.ObjectMeta{
			Name: ev.UUID, Namespace: ev.PartnerNamespace, UID: types.UID(ev.UUID),
			CreationTimestamp: metav1.NewTime(ev.ReceivedAt),
			Labels:            Labels(ev),
		},
		Spec:   Spec(ev),
		Status: Status(ev),
	}
}

// Labels are the labels a WebhookEvent is selected by.
func Labels(ev *store.Event) map[string]string {
	return map[string]string{
		hookgatev1alpha1.LabelPartner:  hookgatev1alpha1.LabelValue(ev.Partner),
		hookgatev1alpha1.LabelEndpoint: hookgatev1alpha1.LabelValue(ev.Endpoint),
		hookgatev1alpha1.LabelPhase:    ev.Phase,
	}
}

// Spec identifies the stored event.
func Spec(ev *store.Event) hookgatev1alpha1.WebhookEventSpec {
	return hookgatev1alpha1.WebhookEventSpec{
		Partner: ev.Partner, Endpoint: ev.Endpoint, EventID: ev.EventID, UUID: ev.UUID, Type: ev.Type,
		ReceivedAt: metav1.NewTime(ev.ReceivedAt), PayloadSHA256: ev.PayloadSHA256, SizeBytes: ev.SizeBytes,
	}
}

// Status is the event's delivery state: the aggregate, and each destination's delivery
// when it went to more than one.
func Status(ev *store.Event) hookgatev1alpha1.WebhookEventStatus {
	return hookgatev1alpha1.WebhookEventStatus{
		Phase: hookgatev1alpha1.EventPhase(ev.Phase), Attempts: ev.Attempts, LastResponseCode: ev.LastResponseCode,
		LastError: ev.LastError, Reason: ev.Reason, LastAttemptAt: metaTime(ev.LastAttemptAt), NextAttemptAt: metaTime(ev.NextAttemptAt),
		DeliveredAt: metaTime(ev.DeliveredAt), Delivered: deliveredCount(ev), Deliveries: deliveries(ev),
	}
}

func deliveries(ev *store.Event) []hookgatev1alpha1.EventDelivery {
	if len(ev.Deliveries) < 2 {
		return nil // with one, the event's own fields say it all
	}
	out := make([]hookgatev1alpha1.EventDelivery, 0, len(ev.Deliveries))
	for _, d := range ev.Deliveries {
		out = append(out, hookgatev1alpha1.EventDelivery{
			Destination: d.Destination, Phase: hookgatev1alpha1.EventPhase(d.Phase), Attempts: d.Attempts,
			LastResponseCode: d.LastResponseCode, LastError: d.LastError, NextAttemptAt: metaTime(d.NextAttemptAt),
			DeliveredAt: metaTime(d.DeliveredAt),
		})
	}
	return out
}

// deliveredCount is "delivered/total" of the event's deliveries ("" when it has none).
func deliveredCount(ev *store.Event) string {
	n, total := ev.DeliveredCount()
	if total == 0 {
		return ""
	}
	return strconv.Itoa(n) + "/" + strconv.Itoa(total)
}

func metaTime(t *time.Time) *metav1.Time {
	if t == nil {
		return nil
	}
	return &metav1.Time{Time: *t}
}
