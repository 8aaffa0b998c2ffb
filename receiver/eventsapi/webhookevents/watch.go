package webhookevents

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/watch"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"

	eventsv1alpha1 "github.com/hookgate/hookgate/api/events/v1alpha1"
	"github.com/hookgate/hookgate/receiver/store"
)

// MaxWatchesPerNamespace bounds the watches open at once on one namespace's events (and
// on every namespace's, counted as one more namespace), so that one tenant's clients
// cannot hold every watch the server can feed.
const MaxWatchesPerNamespace = 64

// watchBatch bounds the changes a watch takes from the log at a time.
const watchBatch = 256

// watchers counts the open watches per namespace ("" for every namespace's).
type watchers struct {
	mu   sync.Mutex
	open map[string]int
}

func (w *watchers) enter(namespace string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.open == nil {
		w.open = map[string]int{}
	}
	if w.open[namespace] >= MaxWatchesPerNamespace {
		return false
	}
	w.open[namespace]++
	return true
}

func (w *watchers) leave(namespace string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.open[namespace]--; w.open[namespace] <= 0 {
		delete(w.open, namespace)
	}
}

// Watch tells of every change of the selected events from a resource version on (a
// list's, or an earlier watch event's), from the store's change log: ADDED for a new
// event, MODIFIED for each later state (the state when the watch reads it, so several
// changes may come as one), DELETED when it is pruned (only to watches without
// selectors: what a deleted event was is gone). When the client asks for the present
// state first (sendInitialEvents: a watch-list, or a watch without a resource version,
// for which the API machinery sets it as Kubernetes defines that watch), the selection's
// events come first, as a list reads them, then a bookmark marking their end when the
// client takes bookmarks. A resource version older than the log holds gets 410 Gone:
// list again.
func (r *REST) Watch(ctx context.Context, opts *metainternalversion.ListOptions) (watch.Interface, error) {
	feed, ok := r.opts.Store.(store.ChangeFeed)
	if !ok {
		return nil, apierrors.NewMethodNotSupported(resource, "watch")
	}
	namespace, _ := genericapirequest.NamespaceFrom(ctx)
	q, err := selectionOf(namespace, opts)
	if err != nil {
		return nil, err
	}
	initial := opts != nil && opts.SendInitialEvents != nil && *opts.SendInitialEvents
	var from uint64
	if !initial && opts != nil && opts.ResourceVersion != "" && opts.ResourceVersion != "0" {
		if from, err = strconv.ParseUint(opts.ResourceVersion, 10, 64); err != nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("resourceVersion %q is not one this server gave", opts.ResourceVersion))
		}
	} else if from, err = feed.ListPosition(ctx); err != nil {
		return nil, r.unavailable(err)
	}
	cursor, served := feed.Changes().From(from)
	if !served {
		return nil, apierrors.NewResourceExpired(fmt.Sprintf("too old resource version: %d (the change log starts later)", from))
	}
	if !r.watching.enter(namespace) {
		return nil, apierrors.NewTooManyRequests(fmt.Sprintf("%d watches are open on this namespace's webhookevents", MaxWatchesPerNamespace), 5)
	}
	w := &watcher{
		rest: r, log: feed.Changes(), cursor: cursor, from: from, namespace: namespace, q: q, opts: opts, initial: initial,
		result: make(chan watch.Event, 64), stop: make(chan struct{}),
	}
	go func() {
		defer r.watching.leave(namespace)
		w.run(ctx)
	}()
	return w, nil
}

type watcher struct {
	rest      *REST
	log       *store.ChangeLog
	cursor    store.ChangeCursor
	from      uint64
	namespace string
	q         listQuery
	opts      *metainternalversion.ListOptions
	// initial: the client asked for the selection's events first (sendInitialEvents,
	// kubectl's watch-list), then a bookmark, then the changes.
	initial  bool
	result   chan watch.Event
	stop     chan struct{}
	stopOnce sync.Once
}

func (w *watcher) ResultChan() <-chan watch.Event { return w.result }

func (w *watcher) Stop() { w.stopOnce.Do(func() { close(w.stop) }) }

func (w *watcher) run(ctx context.Context) {
	defer close(w.result)
	if w.initial && !w.sendInitial(ctx) {
		return
	}
	for {
		changes, next, more, lost := w.log.Read(w.cursor, watchBatch)
		if lost {
			w.send(ctx, watch.Event{Type: watch.Error, Object: &apierrors.NewResourceExpired("the watch fell behind the change log: list again").ErrStatus})
			return
		}
		w.cursor = next
		if len(changes) == 0 {
			select {
			case <-ctx.Done():
				return
			case <-w.stop:
				return
			case <-more:
			}
			continue
		}
		for _, e := range w.events(ctx, changes) {
			if !w.send(ctx, e) {
				return
			}
		}
	}
}

// events are the watch events of a batch of changes: the selected ones, an event changed
// several times told once, with its state now.
func (w *watcher) events(ctx context.Context, changes []store.Change) []watch.Event {
	last := map[string]int{}
	for i, c := range changes {
		last[c.UUID] = i
	}
	var out []watch.Event
	for i, c := range changes {
		if last[c.UUID] != i || c.Position < w.from || w.q.none || (w.namespace != "" && c.Namespace != w.namespace) ||
			(w.q.name != "" && c.UUID != w.q.name) {
			continue
		}
		rv := strconv.FormatUint(c.Resume, 10)
		if c.Kind == store.ChangeDeleted {
			if w.selective() {
				continue
			}
			out = append(out, watch.Event{Type: watch.Deleted, Object: &eventsv1alpha1.WebhookEvent{
				TypeMeta:   metav1.TypeMeta{APIVersion: eventsv1alpha1.GroupVersion.String(), Kind: "WebhookEvent"},
				ObjectMeta: metav1.ObjectMeta{Name: c.UUID, Namespace: c.Namespace, UID: "", ResourceVersion: rv},
			}})
			continue
		}
		ev, err := w.rest.opts.Store.Get(ctx, c.UUID)
		if err != nil || !w.q.sel.Matches(ev) || !w.matches(ev) {
			continue // pruned since, or not selected
		}
		obj := FromStore(ev)
		obj.ResourceVersion = rv
		kind := watch.Modified
		if c.Kind == store.ChangeAdded {
			kind = watch.Added
		}
		out = append(out, watch.Event{Type: kind, Object: obj})
	}
	return out
}

func (w *watcher) selective() bool {
	return w.opts != nil && ((w.opts.LabelSelector != nil && !w.opts.LabelSelector.Empty()) || (w.opts.FieldSelector != nil && !w.opts.FieldSelector.Empty()))
}

// matches checks ev against the watch's selectors as the API machinery states them
// (the selection checks the store's fields; this, the labels' shortened values too).
func (w *watcher) matches(ev *store.Event) bool {
	if w.opts == nil {
		return true
	}
	if w.opts.LabelSelector != nil && !w.opts.LabelSelector.Matches(labels.Set(Labels(ev))) {
		return false
	}
	return w.opts.FieldSelector == nil || w.opts.FieldSelector.Matches(fields.Set{
		FieldEventID: ev.EventID, FieldPhase: ev.Phase, FieldPartner: ev.Partner, FieldEndpoint: ev.Endpoint,
		fieldName: ev.UUID, fieldNamespace: ev.PartnerNamespace,
	})
}

func (w *watcher) send(ctx context.Context, e watch.Event) bool {
	select {
	case w.result <- e:
		return true
	case <-ctx.Done():
		return false
	case <-w.stop:
		return false
	}
}

// sendInitial sends the selection's events as they are (ADDED, newest first, page by page
// as a list reads them), then the bookmark that ends them, at the position the changes
// start from. It reports whether the watch goes on.
func (w *watcher) sendInitial(ctx context.Context) bool {
	rv := strconv.FormatUint(w.from, 10)
	if !w.q.none {
		sel := w.q.sel
		for {
			evs, next, err := w.rest.opts.Store.ListSelected(ctx, sel)
			if err != nil {
				var status apierrors.APIStatus
				if errors.As(w.rest.unavailable(err), &status) {
					w.send(ctx, watch.Event{Type: watch.Error, Object: new(status.Status())})
				}
				return false
			}
			for i := range evs {
				if (w.q.name != "" && evs[i].UUID != w.q.name) || !w.matches(&evs[i]) {
					continue
				}
				obj := FromStore(&evs[i])
				obj.ResourceVersion = rv
				if !w.send(ctx, watch.Event{Type: watch.Added, Object: obj}) {
					return false
				}
			}
			if next == "" {
				break
			}
			sel.Before = next
		}
	}
	if w.opts == nil || !w.opts.AllowWatchBookmarks {
		// A watch without a resource version asks for the present state this way too
		// (the API machinery defaults sendInitialEvents for it), with no bookmark.
		return true
	}
	return w.send(ctx, watch.Event{Type: watch.Bookmark, Object: &eventsv1alpha1.WebhookEvent{
		TypeMeta:   metav1.TypeMeta{APIVersion: eventsv1alpha1.GroupVersion.String(), Kind: "WebhookEvent"},
		ObjectMeta: metav1.ObjectMeta{ResourceVersion: rv, Annotations: map[string]string{metav1.InitialEventsAnnotationKey: "true"}},
	}})
}
