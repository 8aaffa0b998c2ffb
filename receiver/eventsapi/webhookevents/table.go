package webhookevents

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"

	eventsv1alpha1 "github.com/hookgate/hookgate/api/events/v1alpha1"
)

// columns are kubectl get's columns, those of the printer column markers on
// WebhookEvent, in their order, after the name.
var columns = []metav1.TableColumnDefinition{
	{Name: "Name", Type: "string", Format: "name", Description: "the event's uuid"},
	{Name: "Partner", Type: "string", Description: "the partner that sent the event"},
	{Name: "Endpoint", Type: "string", Description: "the endpoint it was posted to"},
	{Name: "Type", Type: "string", Description: "the event's type"},
	{Name: "Phase", Type: "string", Description: "where the event is in its delivery"},
	{Name: "Delivered", Type: "string", Description: "destinations that accepted it, of those it went to"},
	{Name: "Attempts", Type: "integer", Description: "delivery attempts so far"},
	{Name: "Code", Type: "integer", Description: "the destination's latest HTTP status"},
	{Name: "Age", Type: "date", Description: "since the event was received"},
}

// ConvertToTable is the Table kubectl prints.
func (r *REST) ConvertToTable(_ context.Context, obj runtime.Object, _ runtime.Object) (*metav1.Table, error) {
	table := &metav1.Table{ColumnDefinitions: columns}
	now := r.opts.Now()
	row := func(ev *eventsv1alpha1.WebhookEvent) metav1.TableRow {
		return metav1.TableRow{
			Cells: []any{ev.Name, ev.Spec.Partner, ev.Spec.Endpoint, ev.Spec.Type, string(ev.Status.Phase), ev.Status.Delivered,
				int64(ev.Status.Attempts), int64(ev.Status.LastResponseCode), age(now, ev.CreationTimestamp.Time)},
			Object: runtime.RawExtension{Object: ev},
		}
	}
	switch o := obj.(type) {
	case *eventsv1alpha1.WebhookEvent:
		table.Rows = []metav1.TableRow{row(o)}
	case *eventsv1alpha1.WebhookEventList:
		table.Rows = make([]metav1.TableRow, 0, len(o.Items))
		for i := range o.Items {
			table.Rows = append(table.Rows, row(&o.Items[i]))
		}
	default:
		return nil, apierrors.NewInternalError(fmt.Errorf("no table for a %T", obj))
	}
	if l, err := meta.ListAccessor(obj); err == nil {
		table.ResourceVersion, table.Continue = l.GetResourceVersion(), l.GetContinue()
	} else if o, err := meta.Accessor(obj); err == nil {
		table.ResourceVersion = o.GetResourceVersion()
	}
	return table, nil
}

func age(now, t time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t))
}
