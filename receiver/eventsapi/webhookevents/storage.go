package webhookevents

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/rest"

	eventsv1alpha1 "github.com/hookgate/hookgate/api/events/v1alpha1"
	"github.com/hookgate/hookgate/receiver/store"
)

// Store is what the storage reads and changes of the event store.
type Store interface {
	Get(ctx context.Context, uuid string) (*store.Event, error)
	ListSelected(ctx context.Context, sel store.Selection) ([]store.Event, string, error)
	Requeue(ctx context.Context, uuid, destination string, now time.Time) (*store.Event, error)
	Token(ctx context.Context, name string) (string, error)
	SetToken(ctx context.Context, name, value string) error
}

// Options configure the storage.
type Options struct {
	Store Store
	// Now is the clock of redeliveries (time.Now when nil).
	Now func() time.Time
	// Wake tells the dispatcher that a redelivery is queued.
	Wake func()
	Log  logr.Logger
}

// REST serves webhookevents from the event store.
type REST struct {
	opts     Options
	watching watchers
}

var (
	_ rest.Storage              = (*REST)(nil)
	_ rest.Scoper               = (*REST)(nil)
	_ rest.SingularNameProvider = (*REST)(nil)
	_ rest.ShortNamesProvider   = (*REST)(nil)
	_ rest.CategoriesProvider   = (*REST)(nil)
	_ rest.Getter               = (*REST)(nil)
	_ rest.Lister               = (*REST)(nil)
	_ rest.Updater              = (*REST)(nil)
	_ rest.Watcher              = (*REST)(nil)
)

// New makes the storage.
func New(opts Options) *REST {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &REST{opts: opts}
}

var resource = eventsv1alpha1.GroupVersion.WithResource(eventsv1alpha1.Resource).GroupResource()

func (*REST) New() runtime.Object     { return &eventsv1alpha1.WebhookEvent{} }
func (*REST) NewList() runtime.Object { return &eventsv1alpha1.WebhookEventList{} }
func (*REST) Destroy()                {}
func (*REST) NamespaceScoped() bool   { return true }
func (*REST) GetSingularName() string { return "webhookevent" }
func (*REST) ShortNames() []string    { return []string{"whev"} }
func (*REST) Categories() []string    { return []string{"hookgate"} }

// Get reads one event. An event of another namespace is not found, exactly as one that
// does not exist: a uuid says nothing across tenants.
func (r *REST) Get(ctx context.Context, name string, _ *metav1.GetOptions) (runtime.Object, error) {
	ev, err := r.get(ctx, name)
	if err != nil {
		return nil, err
	}
	return FromStore(ev), nil
}

func (r *REST) get(ctx context.Context, name string) (*store.Event, error) {
	namespace, _ := genericapirequest.NamespaceFrom(ctx)
	ev, err := r.opts.Store.Get(ctx, name)
	switch {
	case errors.Is(err, store.ErrNotFound) || (err == nil && ev.PartnerNamespace != namespace):
		return nil, apierrors.NewNotFound(resource, name)
	case err != nil:
		return nil, r.unavailable(err)
	}
	return ev, nil
}

// List reads a page of events, newest first, through the narrowest index its selectors
// name.
func (r *REST) List(ctx context.Context, opts *metainternalversion.ListOptions) (runtime.Object, error) {
	namespace, _ := genericapirequest.NamespaceFrom(ctx)
	q, err := selectionOf(namespace, opts)
	if err != nil {
		return nil, err
	}
	list := &eventsv1alpha1.WebhookEventList{Items: []eventsv1alpha1.WebhookEvent{}}
	if feed, ok := r.opts.Store.(store.ChangeFeed); ok {
		// Taken before the read: a watch from it is told of whatever changed after.
		position, err := feed.ListPosition(ctx)
		if err != nil {
			return nil, r.unavailable(err)
		}
		list.ResourceVersion = strconv.FormatUint(position, 10)
	}
	switch {
	case q.none:
	case q.name != "":
		ev, err := r.opts.Store.Get(ctx, q.name)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return nil, r.unavailable(err)
		case (namespace == "" || ev.PartnerNamespace == namespace) && q.sel.Matches(ev):
			list.Items = append(list.Items, *FromStore(ev))
		}
	default:
		evs, next, err := r.opts.Store.ListSelected(ctx, q.sel)
		if err != nil {
			return nil, r.unavailable(err)
		}
		list.Items = make([]eventsv1alpha1.WebhookEvent, 0, len(evs))
		for i := range evs {
			list.Items = append(list.Items, *FromStore(&evs[i]))
		}
		list.Continue = next
	}
	return list, nil
}

// unavailable is the answer while the store cannot be read: 503, so that clients retry,
// without the store's own words (they may name a database address).
func (r *REST) unavailable(err error) error {
	r.opts.Log.Error(err, "reading the event store for the events API")
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return apierrors.NewTimeoutError("the event store did not answer in time", 1)
	}
	return apierrors.NewServiceUnavailable("the event store is unavailable")
}
