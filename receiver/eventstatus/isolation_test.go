package eventstatus_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
	"github.com/hookgate/hookgate/internal/routing"
	"github.com/hookgate/hookgate/receiver/eventstatus"
	"github.com/hookgate/hookgate/receiver/store"
)

// payloadMarker is every test event's payload: no log line may contain it.
const payloadMarker = `{"card":"4111-payload-marker"}`

// fixture is a store and a reflector over it, with the reflector's metrics and log.
type fixture struct {
	st       *store.Embedded
	reg      *prometheus.Registry
	r        *eventstatus.Reflector
	mu       sync.Mutex
	logLines []string
}

// startReflector starts a reflector over a fresh store that knows the given partners.
func startReflector(t *testing.T, ctx context.Context, opts eventstatus.Options, partners ...*hookgatev1alpha1.Partner) *fixture {
	t.Helper()
	f := newFixture(t, opts, partners...)
	f.start(t, ctx)
	return f
}

// newFixture makes a reflector over a fresh store that knows the given partners; start
// runs it.
func newFixture(t *testing.T, opts eventstatus.Options, partners ...*hookgatev1alpha1.Partner) *fixture {
	t.Helper()
	f := &fixture{reg: prometheus.NewRegistry()}
	table := &routing.Table{}
	for _, p := range partners {
		table.Partners = append(table.Partners, routing.Partner{Namespace: p.Namespace, Name: p.Name, UID: string(p.UID)})
	}
	table.Finalize(nil)
	table.Partner("", "") // builds the lookup index now, as loading a table does, not racily in the workers
	holder := routing.NewHolder()
	holder.Swap(table)
	var err error
	if f.st, err = store.OpenBolt(t.TempDir(), nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.st.Close() })
	opts.Client, opts.Store, opts.Holder, opts.Registry = fastClient(t), f.st, holder, f.reg
	opts.Log = funcr.New(func(prefix, args string) {
		f.mu.Lock()
		f.logLines = append(f.logLines, prefix+" "+args)
		f.mu.Unlock()
	}, funcr.Options{})
	if opts.Interval == 0 {
		opts.Interval = 50 * time.Millisecond
	}
	f.r = eventstatus.New(opts)
	return f
}

func (f *fixture) start(t *testing.T, ctx context.Context) {
	done := make(chan struct{})
	go func() { _ = f.r.Start(ctx); close(done) }()
	t.Cleanup(func() {
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("the reflector did not stop")
		}
	})
}

// ingest stores n events of a partner's endpoint, oldest first, and returns their uuids.
func (f *fixture) ingest(t *testing.T, ns, partner, endpoint string, n int, phase string) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = uuid.Must(uuid.NewV7()).String() // time-ordered, like the receiver's
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	errs := make(chan error, n)
	for i, id := range ids {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			_, err := f.st.Ingest(context.Background(), store.Ingest{Event: store.Event{UUID: id, EventID: fmt.Sprintf("evt_%d", i), Type: "order.created",
				PartnerNamespace: ns, Partner: partner, EndpointNamespace: ns, Endpoint: endpoint, ReceivedAt: time.Now(), Phase: phase},
				Payload: []byte(payloadMarker)})
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return ids
}

// counter is the value of a counter of the fixture's registry, 0 when absent.
func (f *fixture) counter(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, fam := range families {
		if fam.GetName() != name {
			continue
		}
	metrics:
		for _, m := range fam.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// refusedSeries lists the hookgate_reflector_refused_total series as namespace/reason.
func (f *fixture) refusedSeries(t *testing.T) []string {
	t.Helper()
	families, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, fam := range families {
		if fam.GetName() != "hookgate_reflector_refused_total" {
			continue
		}
		for _, m := range fam.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			out = append(out, fmt.Sprintf("%s/%s=%v", have["namespace"], have["reason"], m.GetCounter().GetValue()))
		}
	}
	return out
}

func (f *fixture) logs(substr string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, l := range f.logLines {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return out
}

func createPartner(t *testing.T, ns, name string) *hookgatev1alpha1.Partner {
	t.Helper()
	p := &hookgatev1alpha1.Partner{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
	if err := cluster.Client.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	return p
}

// webhookEvents lists the names of a namespace's WebhookEvents, optionally by label.
func webhookEvents(ns string, labels map[string]string) (map[string]bool, error) {
	var list metav1.PartialObjectMetadataList
	list.SetGroupVersionKind(hookgatev1alpha1.GroupVersion.WithKind("WebhookEventList"))
	if err := cluster.Client.List(context.Background(), &list, client.InNamespace(ns), client.MatchingLabels(labels)); err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for _, o := range list.Items {
		names[o.Name] = true
	}
	return names, nil
}

// allReflected checks that every one of ids has a WebhookEvent in ns.
func allReflected(ns string, ids []string) func() error {
	return func() error {
		names, err := webhookEvents(ns, nil)
		if err != nil {
			return err
		}
		missing := 0
		for _, id := range ids {
			if !names[id] {
				missing++
			}
		}
		if missing > 0 {
			return fmt.Errorf("%d of %d events have no WebhookEvent in %s", missing, len(ids), ns)
		}
		return nil
	}
}

func cleanupWebhookEvents(t *testing.T, namespaces ...string) {
	t.Cleanup(func() {
		for _, ns := range namespaces {
			_ = cluster.Client.DeleteAllOf(context.Background(), &hookgatev1alpha1.WebhookEvent{}, client.InNamespace(ns))
		}
	})
}

func TestLabelValue(t *testing.T) {
	long70 := "acme-" + strings.Repeat("x", 65)
	seg := strings.Repeat("a", 62)
	long253 := strings.Join([]string{"b" + seg, "c" + seg, "d" + seg, "e" + seg[:60]}, ".")
	for _, tc := range []struct {
		name, in string
		same     bool
	}{
		{"short name unchanged", "acme", true},
		{"63 characters unchanged", strings.Repeat("a", 63), true},
		{"64 characters", strings.Repeat("a", 64), false},
		{"70 characters", long70, false},
		{"253 characters with dots", long253, false},
		{"cut after a dot", strings.Repeat("a", 51) + ".bcdefghijklmnop", false},
		{"cut after dashes", strings.Repeat("a", 50) + "---" + strings.Repeat("z", 20), false},
		{"not a label value at all", "-" + strings.Repeat("#", 70), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := hookgatev1alpha1.LabelValue(tc.in)
			if errs := validation.IsValidLabelValue(got); len(errs) > 0 {
				t.Fatalf("LabelValue(%q) = %q: not a label value: %v", tc.in, got, errs)
			}
			if got != hookgatev1alpha1.LabelValue(tc.in) {
				t.Fatal("not deterministic")
			}
			if tc.same != (got == tc.in) {
				t.Fatalf("LabelValue(%q) = %q", tc.in, got)
			}
			if !tc.same && (len(got) > 63 || len(got) < 10) {
				t.Fatalf("LabelValue(%q) = %q (%d characters)", tc.in, got, len(got))
			}
		})
	}
	a, b := strings.Repeat("q", 60)+"1", strings.Repeat("q", 60)+"2"
	if hookgatev1alpha1.LabelValue(a) == hookgatev1alpha1.LabelValue(b) {
		t.Errorf("names that differ after 52 characters share %q", hookgatev1alpha1.LabelValue(a))
	}
	if got, want := hookgatev1alpha1.LabelValue(long70), "acme-"+strings.Repeat("x", 47)+"-"; !strings.HasPrefix(got, want) || len(got) != 63 {
		t.Errorf("LabelValue(70 characters) = %q, want %s<10 hex>", got, want)
	}
}

// TestLongNamesGetValidLabels: Partners and endpoints whose names are too long for a label
// value get their WebhookEvents, with shortened labels that select them, and a partner
// with an ordinary name in another namespace is unaffected.
func TestLongNamesGetValidLabels(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	seg := strings.Repeat("a", 62)
	cases := []struct {
		ns, partner, endpoint string
	}{
		{"long-normal", "acme", "orders"}, // the other tenant
		{"long-64", "p" + strings.Repeat("6", 63), "orders"},
		{"long-70", "acme-" + strings.Repeat("x", 65), "e-" + strings.Repeat("y", 68)},
		{"long-253", strings.Join([]string{"b" + seg, "c" + seg, "d" + seg, "e" + seg[:60]}, "."), "orders"},
	}
	var partners []*hookgatev1alpha1.Partner
	for _, tc := range cases {
		newNamespace(t, tc.ns)
		cleanupWebhookEvents(t, tc.ns)
		partners = append(partners, createPartner(t, tc.ns, tc.partner))
	}
	f := startReflector(t, ctx, eventstatus.Options{}, partners...)
	ids := map[string][]string{}
	for _, tc := range cases {
		ids[tc.ns] = f.ingest(t, tc.ns, tc.partner, tc.endpoint, 5, store.PhaseQueued)
	}
	for i, tc := range cases {
		t.Run(tc.ns, func(t *testing.T) {
			eventually(t, 10*time.Second, "every event reflected", allReflected(tc.ns, ids[tc.ns]))
			partnerLabel, endpointLabel := hookgatev1alpha1.LabelValue(tc.partner), hookgatev1alpha1.LabelValue(tc.endpoint)
			var list hookgatev1alpha1.WebhookEventList
			if err := cluster.Client.List(ctx, &list, client.InNamespace(tc.ns)); err != nil {
				t.Fatal(err)
			}
			for _, o := range list.Items {
				for k, v := range o.Labels {
					if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
						t.Errorf("%s: label %s=%q: %v", o.Name, k, v, errs)
					}
				}
				if o.Labels[hookgatev1alpha1.LabelPartner] != partnerLabel || o.Labels[hookgatev1alpha1.LabelEndpoint] != endpointLabel {
					t.Errorf("%s: labels %v", o.Name, o.Labels)
				}
				if o.Spec.Partner != tc.partner || o.Spec.Endpoint != tc.endpoint {
					t.Errorf("%s: spec has %q/%q, not the full names", o.Name, o.Spec.Partner, o.Spec.Endpoint)
				}
				if len(o.OwnerReferences) != 1 || o.OwnerReferences[0].UID != partners[i].UID {
					t.Errorf("%s: owners %+v", o.Name, o.OwnerReferences)
				}
			}
			if len(tc.partner) <= 63 && partnerLabel != tc.partner {
				t.Errorf("a short name was changed: %q", partnerLabel)
			}
			// What an admin types: kubectl get webhookevents -l hookgate.io/partner=<LabelValue(name)>.
			out, err := cluster.RunKubectl(t, "get", "webhookevents", "-n", tc.ns, "-o", "name",
				"-l", hookgatev1alpha1.LabelPartner+"="+partnerLabel+","+hookgatev1alpha1.LabelEndpoint+"="+endpointLabel)
			if err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			if n := len(strings.Fields(out)); n != len(ids[tc.ns]) {
				t.Errorf("kubectl -l %s=%s selected %d of %d:\n%s", hookgatev1alpha1.LabelPartner, partnerLabel, n, len(ids[tc.ns]), out)
			}
		})
	}
	if series := f.refusedSeries(t); len(series) > 0 {
		t.Errorf("refusals: %v", series)
	}
}

// refusal is a way to make the API server refuse every WebhookEvent of a namespace for
// good.
type refusal struct {
	name string
	// setup makes ns refuse WebhookEvents; the Partner exists already.
	setup func(t *testing.T, ns string)
	// reason is the hookgate_reflector_refused_total reason expected.
	reason string
	// event: a WebhookEventRefused Event is expected on the Partner (not in a namespace
	// being deleted, where no Event can be written).
	event bool
	// absent: namespace A is never created (nor its Partner).
	absent bool
}

// denyByPolicy makes a ValidatingAdmissionPolicy deny WebhookEvents in ns, with reason
// (empty: the API server's default, Invalid).
func denyByPolicy(reason metav1.StatusReason) func(t *testing.T, ns string) {
	return func(t *testing.T, ns string) {
		ctx := context.Background()
		policy := &admissionregistrationv1.ValidatingAdmissionPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "deny-webhookevents-" + ns},
			Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
				FailurePolicy: ptr.To(admissionregistrationv1.Fail),
				MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
					RuleWithOperations: admissionregistrationv1.RuleWithOperations{
						Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
						Rule:       admissionregistrationv1.Rule{APIGroups: []string{"hookgate.io"}, APIVersions: []string{"*"}, Resources: []string{"webhookevents"}},
					},
				}}},
				Validations: []admissionregistrationv1.Validation{{Expression: "false", Message: "WebhookEvents are not allowed in this namespace", Reason: ptr.To(reason)}},
			},
		}
		if reason == "" {
			policy.Spec.Validations[0].Reason = nil
		}
		binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "deny-webhookevents-" + ns},
			Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
				PolicyName: policy.Name, ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
				MatchResources: &admissionregistrationv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
					MatchLabels: map[string]string{corev1.LabelMetadataName: ns}}},
			},
		}
		for _, o := range []client.Object{policy, binding} {
			if err := cluster.Client.Create(ctx, o); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cluster.Client.Delete(context.Background(), o) })
		}
	}
}

// exhaustQuota gives ns a ResourceQuota of 0 WebhookEvents. envtest runs no quota
// controller, so the test writes the status that it would.
func exhaustQuota(t *testing.T, ns string) {
	ctx := context.Background()
	name := corev1.ResourceName("count/webhookevents.hookgate.io")
	q := &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "no-webhookevents", Namespace: ns},
		Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{name: resource.MustParse("0")}}}
	if err := cluster.Client.Create(ctx, q); err != nil {
		t.Fatal(err)
	}
	q.Status = corev1.ResourceQuotaStatus{Hard: corev1.ResourceList{name: resource.MustParse("0")}, Used: corev1.ResourceList{name: resource.MustParse("0")}}
	if err := cluster.Client.Status().Update(ctx, q); err != nil {
		t.Fatal(err)
	}
}

// terminate deletes ns; without a namespace controller (envtest) it stays Terminating.
func terminate(t *testing.T, ns string) {
	if err := cluster.Client.Delete(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
}

// probeRefused waits until the API server refuses a WebhookEvent in ns.
func probeRefused(t *testing.T, ns string) {
	t.Helper()
	eventually(t, 20*time.Second, "the API server refuses WebhookEvents in "+ns, func() error {
		probe := &hookgatev1alpha1.WebhookEvent{ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: ns},
			Spec: hookgatev1alpha1.WebhookEventSpec{Partner: "probe", Endpoint: "probe", UUID: "probe", ReceivedAt: metav1.Now()}}
		err := cluster.Client.Create(context.Background(), probe)
		if err == nil {
			_ = cluster.Client.Delete(context.Background(), probe)
			return fmt.Errorf("created")
		}
		if apierrors.IsForbidden(err) || apierrors.IsInvalid(err) || apierrors.IsNotFound(err) {
			return nil
		}
		return err
	})
}

// TestPermanentRefusalDoesNotStallOtherNamespaces: the API server refuses, for good,
// every WebhookEvent of namespace A (500 events, all older than B's); the 20 events of
// namespace B are reflected at once all the same. Each of A's is counted, logged once and
// marked reflected; one Event on A's Partner says why; a later state is tried again.
func TestPermanentRefusalDoesNotStallOtherNamespaces(t *testing.T) {
	for i, tc := range []refusal{
		{name: "policy", setup: denyByPolicy(""), reason: eventstatus.RefusedInvalid, event: true},
		{name: "policy-forbidden", setup: denyByPolicy(metav1.StatusReasonForbidden), reason: eventstatus.RefusedForbidden, event: true},
		{name: "quota", setup: exhaustQuota, reason: eventstatus.RefusedQuotaExceeded, event: true},
		{name: "terminating", setup: terminate, reason: eventstatus.RefusedNamespaceTerminating},
		{name: "no-namespace", setup: func(*testing.T, string) {}, reason: eventstatus.RefusedNamespaceNotFound, absent: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			nsA, nsB := fmt.Sprintf("refused-a-%d", i), fmt.Sprintf("refused-b-%d", i)
			newNamespace(t, nsB)
			cleanupWebhookEvents(t, nsA, nsB)
			pa := &hookgatev1alpha1.Partner{ObjectMeta: metav1.ObjectMeta{Name: "acme", Namespace: nsA}}
			if !tc.absent {
				newNamespace(t, nsA)
				pa = createPartner(t, nsA, "acme")
			}
			pb := createPartner(t, nsB, "acme")
			tc.setup(t, nsA)
			probeRefused(t, nsA)

			// A's 500 are all older than B's 20, and waiting when the reflector starts.
			f := newFixture(t, eventstatus.Options{}, pa, pb)
			idsA := f.ingest(t, nsA, "acme", "orders", 500, store.PhaseQueued)
			idsB := f.ingest(t, nsB, "acme", "orders", 20, store.PhaseQueued)
			ingested := time.Now()
			f.start(t, ctx)
			eventually(t, 5*time.Second, "B's 20 events reflected", allReflected(nsB, idsB))
			tookB := time.Since(ingested)
			refusedByThen := f.counter(t, "hookgate_reflector_refused_total", map[string]string{"namespace": nsA, "reason": tc.reason})
			refused := map[string]string{"namespace": nsA, "reason": tc.reason}
			eventually(t, 30*time.Second, "A's 500 events refused", func() error {
				if n := f.counter(t, "hookgate_reflector_refused_total", refused); n != 500 {
					return fmt.Errorf("%v refused: %v", n, f.refusedSeries(t))
				}
				return nil
			})
			t.Logf("B's 20 events reflected %s after the start (A's refused by then: %v); A's 500 refused after %s",
				tookB.Round(time.Millisecond), refusedByThen, time.Since(ingested).Round(time.Millisecond))
			if series := f.refusedSeries(t); len(series) != 1 {
				t.Errorf("refused series: %v", series)
			}
			if names, err := webhookEvents(nsA, nil); err != nil || len(names) != 0 {
				t.Errorf("WebhookEvents in %s: %v %v", nsA, names, err)
			}
			// The reflector counts a refusal, logs it, then marks the event reflected: the
			// last of the 500 may still be between the count and the mark.
			eventually(t, 5*time.Second, "A's refused events marked reflected", func() error {
				left, err := f.st.Unreflected(ctx, 1000)
				if err != nil {
					return err
				}
				if len(left) != 0 {
					return fmt.Errorf("%d events still unreflected", len(left))
				}
				return nil
			})
			// One log line per refused event, naming it, without the payload.
			lines := f.logs("refused a WebhookEvent")
			if len(lines) != 500 {
				t.Errorf("%d refusal log lines, want 500", len(lines))
			}
			for _, l := range lines {
				if !strings.Contains(l, tc.reason) || strings.Contains(l, "payload-marker") {
					t.Fatalf("log line: %s", l)
				}
			}
			seen := map[string]bool{}
			for _, id := range idsA {
				for _, l := range lines {
					if strings.Contains(l, id) {
						seen[id] = true
						break
					}
				}
			}
			if len(seen) != 500 {
				t.Errorf("%d of A's events named in the log", len(seen))
			}

			// One Event on A's Partner (rate limited), none on B's.
			var events eventsv1.EventList
			if err := cluster.Client.List(ctx, &events, client.InNamespace(nsA)); err != nil {
				t.Fatal(err)
			}
			var refusedEvents []eventsv1.Event
			for _, e := range events.Items {
				if e.Reason == eventstatus.EventReasonRefused {
					refusedEvents = append(refusedEvents, e)
				}
			}
			switch {
			case !tc.event && len(refusedEvents) > 0:
				t.Errorf("Events in a namespace being deleted: %+v", refusedEvents)
			case tc.event && len(refusedEvents) != 1:
				t.Errorf("%d WebhookEventRefused Events on A's Partner, want 1 (at most one a minute)", len(refusedEvents))
			case tc.event:
				e := refusedEvents[0]
				if e.Regarding.Kind != "Partner" || e.Regarding.Name != "acme" || e.Regarding.UID != pa.UID || e.Type != corev1.EventTypeWarning || !strings.Contains(e.Note, tc.reason) {
					t.Errorf("Event %+v", e)
				}
				t.Logf("Event on Partner %s/acme: %s: %s", nsA, e.Reason, e.Note)
			}
			if err := cluster.Client.List(ctx, &events, client.InNamespace(nsB)); err != nil {
				t.Fatal(err)
			}
			if len(events.Items) != 0 {
				t.Errorf("Events in %s: %+v", nsB, events.Items)
			}

			// A later state of a refused event is tried (and refused) again; B's next
			// states are written.
			for _, id := range []string{idsA[0], idsB[0]} {
				if _, err := f.st.RecordAttempt(ctx, "", id, store.Attempt{Number: 1, StartedAt: time.Now(), ResponseCode: 200},
					store.Outcome{Phase: store.PhaseDelivered}); err != nil {
					t.Fatal(err)
				}
			}
			eventually(t, 10*time.Second, "the new state of A's event tried again", func() error {
				if n := f.counter(t, "hookgate_reflector_refused_total", refused); n != 501 {
					return fmt.Errorf("%v refused", n)
				}
				return nil
			})
			eventually(t, 10*time.Second, "the new state of B's event written", func() error {
				names, err := webhookEvents(nsB, map[string]string{hookgatev1alpha1.LabelPhase: store.PhaseDelivered})
				if err != nil {
					return err
				}
				if !names[idsB[0]] {
					return fmt.Errorf("not Delivered yet")
				}
				return nil
			})
		})
	}
}

// TestRefusedCreateOfExistingWebhookEventPatches: a ResourceQuota that is used up refuses
// every create, even of a WebhookEvent that exists; the event's next state still patches
// it.
func TestRefusedCreateOfExistingWebhookEventPatches(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const ns = "quota-existing"
	newNamespace(t, ns)
	cleanupWebhookEvents(t, ns)
	p := createPartner(t, ns, "acme")
	f := startReflector(t, ctx, eventstatus.Options{}, p)
	ids := f.ingest(t, ns, "acme", "orders", 1, store.PhaseQueued)
	eventually(t, 10*time.Second, "reflected before the quota", allReflected(ns, ids))
	exhaustQuota(t, ns)
	probeRefused(t, ns)
	if _, err := f.st.RecordAttempt(ctx, "", ids[0], store.Attempt{Number: 1, StartedAt: time.Now(), ResponseCode: 200},
		store.Outcome{Phase: store.PhaseDelivered}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the existing WebhookEvent patched", func() error {
		names, err := webhookEvents(ns, map[string]string{hookgatev1alpha1.LabelPhase: store.PhaseDelivered})
		if err != nil {
			return err
		}
		if !names[ids[0]] {
			return fmt.Errorf("not Delivered")
		}
		return nil
	})
	if series := f.refusedSeries(t); len(series) != 0 {
		t.Errorf("refusals: %v", series)
	}
}

// failingWebhook is a validating admission webhook that answers slowly and with an HTTP
// 500 while failing is set: a transient error in one namespace only.
type failingWebhook struct {
	failing atomic.Bool
	calls   atomic.Int32
	delay   time.Duration
}

func (w *failingWebhook) ServeHTTP(rw http.ResponseWriter, req *http.Request) {
	w.calls.Add(1)
	if w.failing.Load() {
		time.Sleep(w.delay)
		http.Error(rw, "webhook backend down", http.StatusInternalServerError)
		return
	}
	var review admissionv1.AdmissionReview
	if err := json.NewDecoder(req.Body).Decode(&review); err != nil || review.Request == nil {
		http.Error(rw, "bad review", http.StatusBadRequest)
		return
	}
	review.Response = &admissionv1.AdmissionResponse{UID: review.Request.UID, Allowed: true}
	review.Request = nil
	_ = json.NewEncoder(rw).Encode(&review)
}

// TestTransientErrorsBackOffOnlyTheirNamespace: an admission webhook that applies to
// namespace A answers slowly with errors; A's 3000 events (more than one scan) wait and
// back off while the 20 events of B, all newer, are reflected at once. When the webhook
// recovers, every one of A's events is reflected: nothing was dropped.
func TestTransientErrorsBackOffOnlyTheirNamespace(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const nsA, nsB = "transient-a", "transient-b"
	newNamespace(t, nsA)
	newNamespace(t, nsB)
	cleanupWebhookEvents(t, nsA, nsB)
	pa, pb := createPartner(t, nsA, "acme"), createPartner(t, nsB, "acme")

	hook := &failingWebhook{delay: 2 * time.Second}
	srv := httptest.NewUnstartedServer(hook)
	srv.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	defer srv.Close()
	caBundle := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	cfg := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "transient-a"},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name:                    "slow.hookgate.test",
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: ptr.To(srv.URL + "/validate"), CABundle: caBundle},
			Rules:                   []admissionregistrationv1.RuleWithOperations{{Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update}, Rule: admissionregistrationv1.Rule{APIGroups: []string{"hookgate.io"}, APIVersions: []string{"*"}, Resources: []string{"webhookevents"}}}},
			NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: nsA}},
			FailurePolicy:           ptr.To(admissionregistrationv1.Fail),
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			AdmissionReviewVersions: []string{"v1"},
			TimeoutSeconds:          ptr.To[int32](5),
		}},
	}
	if err := cluster.Client.Create(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cluster.Client.Delete(context.Background(), cfg) }()
	// Wait until the webhook is called for A.
	eventually(t, 20*time.Second, "the webhook applies to A", func() error {
		probe := &hookgatev1alpha1.WebhookEvent{ObjectMeta: metav1.ObjectMeta{GenerateName: "probe-", Namespace: nsA},
			Spec: hookgatev1alpha1.WebhookEventSpec{Partner: "probe", Endpoint: "probe", UUID: "probe", ReceivedAt: metav1.Now()}}
		before := hook.calls.Load()
		if err := cluster.Client.Create(ctx, probe); err != nil {
			return err
		}
		_ = cluster.Client.Delete(ctx, probe)
		if hook.calls.Load() == before {
			return fmt.Errorf("not called")
		}
		return nil
	})
	hook.failing.Store(true)

	f := newFixture(t, eventstatus.Options{}, pa, pb)
	idsA := f.ingest(t, nsA, "acme", "orders", 3000, store.PhaseQueued)
	idsB := f.ingest(t, nsB, "acme", "orders", 20, store.PhaseQueued)
	ingested := time.Now()
	f.start(t, ctx)
	took := eventually(t, 5*time.Second, "B's 20 events reflected while A's writes fail", allReflected(nsB, idsB))
	t.Logf("B's 20 events reflected %s after the start, while A's webhook fails (%d calls so far)", took.Round(time.Millisecond), hook.calls.Load())
	if names, err := webhookEvents(nsA, nil); err != nil || len(names) != 0 {
		t.Errorf("WebhookEvents in %s while its webhook fails: %d %v", nsA, len(names), err)
	}
	if calls := hook.calls.Load(); calls > 100 {
		t.Errorf("the failing namespace was asked %d times in a few seconds: no backoff", calls)
	}

	hook.failing.Store(false)
	healed := time.Now()
	eventually(t, 60*time.Second, "A's 3000 events reflected once the webhook recovers", allReflected(nsA, idsA))
	t.Logf("A's 3000 events reflected %s after the webhook recovered (%s after ingest)", time.Since(healed).Round(time.Millisecond), time.Since(ingested).Round(time.Millisecond))
	if series := f.refusedSeries(t); len(series) != 0 {
		t.Errorf("transient errors counted as refusals: %v", series)
	}
}

// TestCapHoldsForUnfinishedEvents: 200 Queued events (their endpoint paused) in a
// namespace capped at 50 leave 50 WebhookEvents, the newest; the store keeps all 200;
// the other namespace's WebhookEvents are untouched.
func TestCapHoldsForUnfinishedEvents(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const nsA, nsB, capacity = "cap-a", "cap-b", 50
	newNamespace(t, nsA)
	newNamespace(t, nsB)
	cleanupWebhookEvents(t, nsA, nsB)
	pa, pb := createPartner(t, nsA, "acme"), createPartner(t, nsB, "acme")
	f := startReflector(t, ctx, eventstatus.Options{MaxPerNamespace: capacity, PruneInterval: 500 * time.Millisecond}, pa, pb)
	idsA := f.ingest(t, nsA, "acme", "paused", 200, store.PhaseQueued)
	idsB := f.ingest(t, nsB, "acme", "orders", 30, store.PhaseQueued)
	newest := map[string]bool{}
	for _, id := range idsA[len(idsA)-capacity:] {
		newest[id] = true
	}
	check := func() error {
		names, err := webhookEvents(nsA, nil)
		if err != nil {
			return err
		}
		if len(names) != capacity {
			return fmt.Errorf("%d WebhookEvents in %s", len(names), nsA)
		}
		for id := range newest {
			if !names[id] {
				return fmt.Errorf("the newest event %s is not kept", id)
			}
		}
		return allReflected(nsB, idsB)()
	}
	took := eventually(t, 20*time.Second, "A capped at 50, the newest, B untouched", check)
	t.Logf("capped %s after ingest", took.Round(time.Millisecond))
	// It stays so: what was dropped is not written again.
	time.Sleep(1500 * time.Millisecond)
	if err := check(); err != nil {
		t.Error(err)
	}
	if n, err := f.st.Count(); err != nil || n != 230 {
		t.Errorf("the store has %d events (%v), want 230", n, err)
	}
	ids := append(append([]string(nil), idsA...), idsB...)
	sort.Strings(ids)
	for _, id := range ids {
		if ev, err := f.st.Get(ctx, id); err != nil || ev.Phase != store.PhaseQueued {
			t.Fatalf("event %s: %v %v", id, ev, err)
		}
	}
}
