package controllers

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
	"github.com/hookgate/hookgate/internal/routing"
)

// Publisher builds the routing table from every Partner and WebhookEndpoint that can be
// served and writes it to the routing Secret when, and only when, its content changes.
// Controllers call Trigger after each reconcile; builds are coalesced to at most one per
// MinInterval, so a burst of a thousand changes makes a handful of writes.
type Publisher struct {
	Client      client.Client // cached reads of the inputs, writes of the Secret
	APIReader   client.Reader // uncached reads of the routing Secret
	Namespace   string
	SecretName  string
	MinInterval time.Duration
	Log         logr.Logger
	// Policy bounds what tenants may put in the table.
	Policy Policy

	// PartnerEvents and EndpointEvents receive the entries whose Rev changed (or that left
	// the table) after each publish, so that their Ready condition is looked at again.
	PartnerEvents  chan event.GenericEvent
	EndpointEvents chan event.GenericEvent

	trigger  chan struct{}
	mu       sync.RWMutex
	current  *routing.Table
	excluded exclusions
	// Stats for tests and logs.
	builds, writes int
}

// NewPublisher returns a publisher for the routing Secret namespace/name.
func NewPublisher(c client.Client, apiReader client.Reader, namespace, name string, log logr.Logger) *Publisher {
	return &Publisher{
		Client: c, APIReader: apiReader, Namespace: namespace, SecretName: name,
		MinInterval:    time.Second,
		Log:            log,
		PartnerEvents:  make(chan event.GenericEvent, 1024),
		EndpointEvents: make(chan event.GenericEvent, 1024),
		trigger:        make(chan struct{}, 1),
	}
}

// Trigger asks for a rebuild; it never blocks.
func (p *Publisher) Trigger() {
	select {
	case p.trigger <- struct{}{}:
	default:
	}
}

// Current is the last published table, or nil before the first.
func (p *Publisher) Current() *routing.Table {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.current
}

// Stats reports how many builds ran and how many of them wrote the Secret.
func (p *Publisher) Stats() (builds, writes int) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.builds, p.writes
}

// NeedLeaderElection: only the leader publishes.
func (p *Publisher) NeedLeaderElection() bool { return true }

// Start runs the build loop until ctx ends.
func (p *Publisher) Start(ctx context.Context) error {
	if err := p.loadPublished(ctx); err != nil {
		p.Log.Error(err, "reading the published routing table; starting from an empty one")
	}
	p.Trigger()
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-p.trigger:
		}
		if wait := p.MinInterval - time.Since(last); wait > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
			// Triggers that came in while waiting are covered by this build.
			select {
			case <-p.trigger:
			default:
			}
		}
		last = time.Now()
		if err := p.publish(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			p.Log.Error(err, "publishing the routing table; retrying")
			p.Trigger()
		}
	}
}

func (p *Publisher) loadPublished(ctx context.Context) error {
	var secret corev1.Secret
	err := p.APIReader.Get(ctx, types.NamespacedName{Namespace: p.Namespace, Name: p.SecretName}, &secret)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	t, err := routing.Decode(secret.Data[routing.SecretDataKey])
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.current = t
	p.mu.Unlock()
	p.notify(ctx, nil, t, true)
	return nil
}

// Build computes the table from the cluster's current state, without publishing it,
// and the entries it left out for a tenant limit.
func (p *Publisher) Build(ctx context.Context, now time.Time) (*routing.Table, exclusions, error) {
	var partners hookgatev1alpha1.PartnerList
	if err := p.Client.List(ctx, &partners); err != nil {
		return nil, nil, err
	}
	var endpoints hookgatev1alpha1.WebhookEndpointList
	if err := p.Client.List(ctx, &endpoints); err != nil {
		return nil, nil, err
	}
	// Oldest first, so that namespace budgets keep what was there before.
	sort.SliceStable(partners.Items, func(i, j int) bool { return olderObject(&partners.Items[i], &partners.Items[j]) })
	sort.SliceStable(endpoints.Items, func(i, j int) bool { return olderObject(&endpoints.Items[i], &endpoints.Items[j]) })
	t := &routing.Table{Partners: []routing.Partner{}, Endpoints: []routing.Endpoint{}}
	included := map[string]bool{}
	for i := range partners.Items {
		partner := &partners.Items[i]
		if !partner.DeletionTimestamp.IsZero() {
			continue
		}
		entry, err := resolvePartner(ctx, p.Client, p.Policy, partner, now)
		if err != nil {
			if isProblem(err) {
				continue
			}
			return nil, nil, err
		}
		t.Partners = append(t.Partners, *entry)
		included[routing.Key(partner.Namespace, partner.Name)] = true
	}
	for i := range endpoints.Items {
		endpoint := &endpoints.Items[i]
		if !endpoint.DeletionTimestamp.IsZero() {
			continue
		}
		entry, err := resolveEndpoint(ctx, p.Client, p.Policy, endpoint)
		if err != nil {
			if isProblem(err) {
				continue
			}
			return nil, nil, err
		}
		if missingPartner(entry, included) != "" {
			continue
		}
		t.Endpoints = append(t.Endpoints, *entry)
	}
	excluded := exclusions{}
	if p.Policy.MaxNamespaceTableBytes > 0 {
		applyNamespaceBudgets(t, p.Policy.MaxNamespaceTableBytes, excluded)
	}
	return t, excluded, nil
}

func olderObject(a, b metav1.Object) bool {
	ta, tb := a.GetCreationTimestamp(), b.GetCreationTimestamp()
	if !ta.Equal(&tb) {
		return ta.Before(&tb)
	}
	return routing.Key(a.GetNamespace(), a.GetName()) < routing.Key(b.GetNamespace(), b.GetName())
}

// Exclusion says why an entry was left out of the last built table for a tenant limit,
// or nil.
func (p *Publisher) exclusion(kind, namespace, name string) *problem {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.excluded[exclusionKey(kind, namespace, name)]
}

// missingPartner names a partner the endpoint lists that is not in the table.
func missingPartner(e *routing.Endpoint, included map[string]bool) string {
	for _, name := range e.Partners {
		if !included[routing.Key(e.Namespace, name)] {
			return name
		}
	}
	return ""
}

func (p *Publisher) publish(ctx context.Context) error {
	started := time.Now()
	t, excluded, err := p.Build(ctx, started)
	if err != nil {
		return err
	}
	prev := p.Current()
	var data []byte
	for {
		data, err = routing.Encode(t)
		if err != nil && !errors.Is(err, routing.ErrTableTooLarge) {
			return err
		}
		if err == nil && len(data) <= maxTableBytes {
			break
		}
		ns := shedLargestNamespace(t, excluded)
		p.Log.Error(nil, "the routing table does not fit its Secret; leaving out the namespace that takes the most", "namespace", ns, "bytes", len(data))
		if ns == "" {
			return fmt.Errorf("an empty routing table takes %d bytes", len(data))
		}
	}
	changedExclusions := p.setExclusions(excluded)
	changed := t.Finalize(prev)
	p.mu.Lock()
	p.builds++
	p.mu.Unlock()
	if !changed {
		p.notifyExcluded(ctx, changedExclusions)
		return nil
	}
	if data, err = routing.Encode(t); err != nil {
		return err
	}
	if err := p.write(ctx, t, data); err != nil {
		return err
	}
	p.mu.Lock()
	p.current = t
	p.writes++
	p.mu.Unlock()
	p.Log.Info("routing table published", "serial", t.Serial, "hash", t.Hash, "partners", len(t.Partners),
		"endpoints", len(t.Endpoints), "bytes", len(data), "took", time.Since(started).Round(time.Millisecond).String())
	p.notify(ctx, prev, t, false)
	p.notifyExcluded(ctx, changedExclusions)
	return nil
}

// setExclusions stores the exclusions of the latest build and returns the keys whose
// exclusion appeared, changed or ended, whose controllers must look again.
func (p *Publisher) setExclusions(next exclusions) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var changed []string
	for k, prob := range next {
		if old := p.excluded[k]; old == nil || *old != *prob {
			changed = append(changed, k)
		}
	}
	for k := range p.excluded {
		if next[k] == nil {
			changed = append(changed, k)
		}
	}
	p.excluded = next
	return changed
}

func (p *Publisher) notifyExcluded(ctx context.Context, keys []string) {
	for _, k := range keys {
		kind, rest, _ := strings.Cut(k, "/")
		ns, name, _ := strings.Cut(rest, "/")
		meta := metav1.ObjectMeta{Namespace: ns, Name: name}
		var ev event.GenericEvent
		ch := p.PartnerEvents
		if kind == kindPartner {
			ev.Object = &hookgatev1alpha1.Partner{ObjectMeta: meta}
		} else {
			ev.Object, ch = &hookgatev1alpha1.WebhookEndpoint{ObjectMeta: meta}, p.EndpointEvents
		}
		select {
		case ch <- ev:
		case <-ctx.Done():
			return
		}
	}
}

func (p *Publisher) write(ctx context.Context, t *routing.Table, data []byte) error {
	annotations := map[string]string{routing.AnnotationSerial: routing.SerialString(t.Serial), routing.AnnotationHash: t.Hash}
	var secret corev1.Secret
	err := p.APIReader.Get(ctx, types.NamespacedName{Namespace: p.Namespace, Name: p.SecretName}, &secret)
	if apierrors.IsNotFound(err) {
		secret = corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{
				Name: p.SecretName, Namespace: p.Namespace, Annotations: annotations,
				Labels: map[string]string{hookgatev1alpha1.LabelManagedBy: hookgatev1alpha1.ManagedByValue},
			},
			Type: corev1.SecretTypeOpaque,
			Data: map[string][]byte{routing.SecretDataKey: data},
		}
		return p.Client.Create(ctx, &secret)
	}
	if err != nil {
		return err
	}
	if secret.Annotations == nil {
		secret.Annotations = map[string]string{}
	}
	for k, v := range annotations {
		secret.Annotations[k] = v
	}
	secret.Data = map[string][]byte{routing.SecretDataKey: data}
	return p.Client.Update(ctx, &secret)
}

// notify sends the entries that changed, appeared or left to their controllers.
func (p *Publisher) notify(ctx context.Context, prev, t *routing.Table, all bool) {
	type ref struct{ ns, name string }
	partners, endpoints := map[ref]bool{}, map[ref]bool{}
	for _, e := range t.Partners {
		if all || e.Rev == t.Serial {
			partners[ref{e.Namespace, e.Name}] = true
		}
	}
	for _, e := range t.Endpoints {
		if all || e.Rev == t.Serial {
			endpoints[ref{e.Namespace, e.Name}] = true
		}
	}
	if prev != nil {
		for _, e := range prev.Partners {
			if _, ok := t.Partner(e.Namespace, e.Name); !ok {
				partners[ref{e.Namespace, e.Name}] = true
			}
		}
		inTable := make(map[ref]bool, len(t.Endpoints))
		for _, e := range t.Endpoints {
			inTable[ref{e.Namespace, e.Name}] = true
		}
		for _, e := range prev.Endpoints {
			if !inTable[ref{e.Namespace, e.Name}] {
				endpoints[ref{e.Namespace, e.Name}] = true
			}
		}
	}
	send := func(ch chan event.GenericEvent, obj client.Object) bool {
		select {
		case ch <- event.GenericEvent{Object: obj}:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for r := range partners {
		if !send(p.PartnerEvents, &hookgatev1alpha1.Partner{ObjectMeta: metav1.ObjectMeta{Namespace: r.ns, Name: r.name}}) {
			return
		}
	}
	for r := range endpoints {
		if !send(p.EndpointEvents, &hookgatev1alpha1.WebhookEndpoint{ObjectMeta: metav1.ObjectMeta{Namespace: r.ns, Name: r.name}}) {
			return
		}
	}
}

// receiverLeases lists the receivers' Leases (from the cache).
func (p *Publisher) receiverLeases(ctx context.Context) ([]coordinationv1.Lease, error) {
	var leases coordinationv1.LeaseList
	err := p.Client.List(ctx, &leases, client.InNamespace(p.Namespace), client.MatchingLabels{routing.LabelRole: routing.RoleReceiver})
	return leases.Items, err
}

// liveReceivers counts the receiver replicas whose Leases are live.
func (p *Publisher) liveReceivers(ctx context.Context) (int, error) {
	leases, err := p.receiverLeases(ctx)
	if err != nil {
		return 0, err
	}
	now, n := time.Now(), 0
	for i := range leases {
		if routing.LeaseLive(&leases[i], now) {
			n++
		}
	}
	return n, nil
}

// receiverReports is what the live receivers report on their Leases: their --public-url
// and their destination filters' first failures.
func (p *Publisher) receiverReports(ctx context.Context) (publicURL string, filterFailures map[string]string, err error) {
	leases, err := p.receiverLeases(ctx)
	if err != nil {
		return "", nil, err
	}
	now := time.Now()
	return routing.LivePublicURL(leases, now), routing.LiveFilterFailures(leases, now), nil
}

// readiness says whether every live receiver serves a table with the entry at rev.
func (p *Publisher) readiness(ctx context.Context, rev uint64) (bool, string, string, error) {
	leases, err := p.receiverLeases(ctx)
	if err != nil {
		return false, "", "", err
	}
	now := time.Now()
	live := 0
	for i := range leases {
		l := &leases[i]
		if !routing.LeaseLive(l, now) {
			continue
		}
		live++
		if serial := routing.ParseSerial(l.Annotations[routing.AnnotationSerial]); serial < rev {
			return false, hookgatev1alpha1.ReasonWaitingForReceiver,
				fmt.Sprintf("receiver %s serves routing table %d; this change is in table %d", l.Name, serial, rev), nil
		}
	}
	if live == 0 {
		return false, hookgatev1alpha1.ReasonWaitingForReceiver, "no live receiver has reported a routing table", nil
	}
	return true, hookgatev1alpha1.ReasonReconciled, fmt.Sprintf("served by %d receiver(s)", live), nil
}

func isProblem(err error) bool {
	var p *problem
	return errors.As(err, &p)
}
