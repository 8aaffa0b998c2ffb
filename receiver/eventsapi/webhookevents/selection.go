package webhookevents

import (
	"fmt"
	"sort"
	"strings"

	"github.com/google/uuid"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	"k8s.io/apimachinery/pkg/selection"

	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
	"github.com/hookgate/hookgate/receiver/store"
)

// MaxPage bounds a list page (kubectl's --chunk-size); a list without a limit gets a
// page of this size and a continue token. The store looks at no more than
// store.MaxListScan events for a page, so a page with a selective selector may hold
// fewer and still continue.
const MaxPage = 1000

// Field selectors the list serves, each matched exactly by the store. metadata.name
// and metadata.namespace are every resource's.
const (
	FieldEventID   = "spec.eventId"
	FieldPhase     = "status.phase"
	FieldPartner   = "spec.partner"
	FieldEndpoint  = "spec.endpoint"
	fieldName      = "metadata.name"
	fieldNamespace = "metadata.namespace"
)

// FieldLabels are the field selectors a list takes (the scheme's field label
// conversion accepts exactly these).
var FieldLabels = []string{FieldEventID, FieldPhase, FieldPartner, FieldEndpoint, fieldName, fieldNamespace}

// listQuery is a list request in the store's terms: its selection, and the one event a
// metadata.name field selector names (kubectl get -w NAME lists that way).
type listQuery struct {
	sel  store.Selection
	name string
	// none: the selectors contradict the request (another namespace's field).
	none bool
}

// selectionOf turns a list's namespace, selectors, limit and continue token into a
// store selection. Every selector is an equality on a label or field the store has an
// index or a column for; anything else is refused with 400 rather than served by reading
// a namespace's events.
func selectionOf(namespace string, opts *metainternalversion.ListOptions) (listQuery, error) {
	q := listQuery{sel: store.Selection{Namespace: namespace, Limit: MaxPage}}
	if opts == nil {
		return q, nil
	}
	if opts.Limit > 0 && opts.Limit < MaxPage {
		q.sel.Limit = int(opts.Limit)
	}
	if opts.Continue != "" {
		if _, err := uuid.Parse(opts.Continue); err != nil {
			return q, apierrors.NewBadRequest("the continue token is not one this server gave; start the list again without it")
		}
		q.sel.Before = opts.Continue
	}
	if opts.LabelSelector != nil && !opts.LabelSelector.Empty() {
		reqs, selectable := opts.LabelSelector.Requirements()
		if !selectable {
			return q, apierrors.NewBadRequest("the label selector selects nothing")
		}
		for _, r := range reqs {
			value, ok := single(r.Operator(), r.Values().List())
			if !ok {
				return q, apierrors.NewBadRequest(fmt.Sprintf("label selector %q: only key=value is served for %s", r.String(), labelKeys()))
			}
			var into *string
			switch r.Key() {
			case hookgatev1alpha1.LabelPartner:
				into = &q.sel.Partner
			case hookgatev1alpha1.LabelEndpoint:
				into = &q.sel.Endpoint
			case hookgatev1alpha1.LabelPhase:
				into = &q.sel.Phase
			default:
				return q, apierrors.NewBadRequest(fmt.Sprintf("label selector %q: the labels served are %s", r.Key(), labelKeys()))
			}
			if err := set(into, value, r.Key()); err != nil {
				return q, err
			}
		}
	}
	if opts.FieldSelector != nil && !opts.FieldSelector.Empty() {
		for _, r := range opts.FieldSelector.Requirements() {
			if r.Operator != selection.Equals && r.Operator != selection.DoubleEquals {
				return q, apierrors.NewBadRequest(fmt.Sprintf("field selector %q: only field=value is served", r.Field))
			}
			var into *string
			switch r.Field {
			case FieldEventID:
				into = &q.sel.EventID
			case FieldPhase:
				into = &q.sel.Phase
			case FieldPartner:
				into = &q.sel.Partner
			case FieldEndpoint:
				into = &q.sel.Endpoint
			case fieldName:
				into = &q.name
			case fieldNamespace:
				if namespace != "" && r.Value != namespace {
					q.none = true
				}
				if namespace == "" {
					q.sel.Namespace = r.Value
				}
				continue
			default:
				return q, apierrors.NewBadRequest(fmt.Sprintf("field selector %q: the fields served are %s", r.Field, strings.Join(FieldLabels, ", ")))
			}
			if err := set(into, r.Value, r.Field); err != nil {
				return q, err
			}
		}
	}
	if (q.sel.Partner != "" || q.sel.Endpoint != "") && q.sel.Namespace == "" {
		// Partner and endpoint names are a namespace's: across namespaces, the store
		// has no index for them.
		return q, apierrors.NewBadRequest("selecting by partner or endpoint needs a namespace (-n)")
	}
	return q, nil
}

// single is the one value of an equality requirement (=, == or in with one value).
func single(op selection.Operator, values []string) (string, bool) {
	switch op {
	case selection.Equals, selection.DoubleEquals, selection.In:
		if len(values) == 1 {
			return values[0], true
		}
	}
	return "", false
}

// set fills a selection field once: two different values for one field select nothing,
// which is the caller's mistake, not a query to run.
func set(into *string, value, what string) error {
	if *into != "" && *into != value {
		return apierrors.NewBadRequest(fmt.Sprintf("%s is selected twice, as %q and as %q", what, *into, value))
	}
	*into = value
	return nil
}

func labelKeys() string {
	keys := []string{hookgatev1alpha1.LabelPartner, hookgatev1alpha1.LabelEndpoint, hookgatev1alpha1.LabelPhase}
	sort.Strings(keys)
	return strings.Join(keys, ", ")
}
