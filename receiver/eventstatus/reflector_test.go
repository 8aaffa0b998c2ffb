package eventstatus_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/uuid"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/metadata"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
	"github.com/hookgate/hookgate/internal/routing"
	"github.com/hookgate/hookgate/receiver/delivery"
	"github.com/hookgate/hookgate/receiver/eventstatus"
	"github.com/hookgate/hookgate/receiver/store"
)

// answers serves the given status codes in turn, then repeats the last; it can be changed.
type answers struct {
	codes atomic.Value // []int
	calls atomic.Int32
}

func (a *answers) set(codes ...int) { a.codes.Store(codes) }

func (a *answers) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	codes := a.codes.Load().([]int)
	n := int(a.calls.Add(1))
	w.WriteHeader(codes[min(n, len(codes))-1])
}

func TestWebhookEventsReflectDelivery(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const ns = "shop"
	newNamespace(t, ns)
	partner := &hookgatev1alpha1.Partner{ObjectMeta: metav1.ObjectMeta{Name: "acme", Namespace: ns}}
	if err := cluster.Client.Create(ctx, partner); err != nil {
		t.Fatal(err)
	}
	orders, broken := &answers{}, &answers{}
	orders.set(500, 500, 200)
	broken.set(400)
	ordersSink, brokenSink := httptest.NewServer(orders), httptest.NewServer(broken)
	defer ordersSink.Close()
	defer brokenSink.Close()
	retry := routing.Retry{MaxAttempts: 5, InitialBackoff: routing.Duration(100 * time.Millisecond), MaxBackoff: routing.Duration(200 * time.Millisecond)}
	table := &routing.Table{
		Partners: []routing.Partner{{Namespace: ns, Name: "acme", UID: string(partner.UID)}},
		Endpoints: []routing.Endpoint{
			{Namespace: ns, Name: "orders", Path: "/api/webhooks/shop/orders", Retry: retry, Destination: &routing.Destination{URL: ordersSink.URL, Timeout: routing.Duration(time.Second)}},
			{Namespace: ns, Name: "broken", Path: "/api/webhooks/shop/broken", Retry: retry, Destination: &routing.Destination{URL: brokenSink.URL, Timeout: routing.Duration(time.Second)}},
		},
	}
	table.Finalize(nil)
	table.Partner("", "") // builds the lookup index now, as loading a table does, not racily in the workers
	holder := routing.NewHolder()
	holder.Swap(table)
	st, err := store.OpenBolt(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	dispatcher := delivery.NewDispatcher(delivery.Options{Store: st, Holder: holder, Log: logr.Discard(), PollInterval: 20 * time.Millisecond,
		Egress: loopbackEgress()})
	reflector := eventstatus.New(eventstatus.Options{Client: fastClient(t), Store: st, Holder: holder, Log: logr.Discard(), Wake: dispatcher.Wake, Interval: 50 * time.Millisecond})
	meta, err := metadata.NewForConfig(cluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	for _, start := range []func(context.Context) error{dispatcher.Start, reflector.Start, (&eventstatus.RedeliveryWatcher{Client: meta, Reflector: reflector}).Start} {
		go func() { _ = start(ctx) }()
	}
	ingest := func(endpoint string) string {
		id := uuid.Must(uuid.NewV7()).String()
		_, err := st.Ingest(ctx, store.Ingest{Event: store.Event{UUID: id, EventID: "evt_" + endpoint, Type: "order.created",
			PartnerNamespace: ns, Partner: "acme", EndpointNamespace: ns, Endpoint: endpoint, ReceivedAt: time.Now(), Phase: store.PhaseQueued},
			Payload: []byte(`{"id":"evt"}`)})
		if err != nil {
			t.Fatal(err)
		}
		dispatcher.Wake()
		return id
	}
	storedPhase := func(id, phase string, attempts int32) func() error {
		return func() error {
			ev, err := st.Get(ctx, id)
			if err != nil {
				return err
			}
			if ev.Phase != phase || ev.Attempts != attempts {
				return fmt.Errorf("stored %s after %d attempts", ev.Phase, ev.Attempts)
			}
			return nil
		}
	}
	kubectlShows := func(id, phase, attempts string) func() error {
		return func() error {
			out, err := cluster.RunKubectl(t, "get", "webhookevents", "-n", ns, "--no-headers")
			if err != nil {
				return fmt.Errorf("%w: %s", err, out)
			}
			for _, line := range strings.Split(out, "\n") {
				f := strings.Fields(line)
				// NAME PARTNER ENDPOINT TYPE PHASE DELIVERED ATTEMPTS CODE AGE
				if len(f) >= 8 && f[0] == id && f[4] == phase && strings.HasSuffix(f[5], "/1") && f[6] == attempts {
					return nil
				}
			}
			return fmt.Errorf("no row for %s with %s/%s in:\n%s", id, phase, attempts, out)
		}
	}

	// 500, 500, 200: Delivered after 3 attempts, and kubectl shows it.
	delivered := ingest("orders")
	eventually(t, 10*time.Second, "delivered in the store", storedPhase(delivered, store.PhaseDelivered, 3))
	took := eventually(t, 10*time.Second, "kubectl get webhookevents shows Delivered/3", kubectlShows(delivered, "Delivered", "3"))
	out, _ := cluster.RunKubectl(t, "get", "webhookevents", "-n", ns)
	t.Logf("kubectl get webhookevents -n %s, %s after the delivery:\n%s", ns, took.Round(time.Millisecond), out)
	var obj hookgatev1alpha1.WebhookEvent
	if err := cluster.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: delivered}, &obj); err != nil {
		t.Fatal(err)
	}
	if len(obj.OwnerReferences) != 1 || obj.OwnerReferences[0].UID != partner.UID ||
		obj.Labels[hookgatev1alpha1.LabelPartner] != "acme" || obj.Labels[hookgatev1alpha1.LabelEndpoint] != "orders" || obj.Labels[hookgatev1alpha1.LabelPhase] != "Delivered" {
		t.Errorf("metadata %+v %+v", obj.OwnerReferences, obj.Labels)
	}
	if obj.Status.DeliveredAt == nil || obj.Status.LastResponseCode != 200 || obj.Status.NextAttemptAt != nil || obj.Spec.PayloadSHA256 != "" && len(obj.Spec.PayloadSHA256) != 64 {
		t.Errorf("status %+v", obj.Status)
	}

	// kubectl annotate webhookevent ... hookgate.io/redeliver: a 4th attempt.
	if out, err := cluster.RunKubectl(t, "annotate", "webhookevent", delivered, "-n", ns, "hookgate.io/redeliver=first"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	eventually(t, 10*time.Second, "redelivered: attempt 4 in kubectl", kubectlShows(delivered, "Delivered", "4"))

	// A WebhookEvent of the same name in another namespace is not the event's: its
	// redeliver annotation queues nothing.
	newNamespace(t, "intruder")
	forged := obj.DeepCopy()
	forged.ObjectMeta = metav1.ObjectMeta{Name: delivered, Namespace: "intruder", Annotations: map[string]string{hookgatev1alpha1.AnnotationRedeliver: "forged"}}
	if err := cluster.Client.Create(ctx, forged); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	if handled, err := st.Token(ctx, "redeliver/"+delivered); err != nil || handled != "first" {
		t.Fatalf("a redeliver request from another namespace was handled (token %q, %v); only the event's own WebhookEvent may ask", handled, err)
	}

	// A 400 fails at once; redeliver-failed on the endpoint queues it again.
	failed := ingest("broken")
	eventually(t, 10*time.Second, "failed after one attempt", kubectlShows(failed, "Failed", "1"))
	broken.set(200)
	next := *table
	next.Endpoints = append([]routing.Endpoint(nil), table.Endpoints...)
	for i := range next.Endpoints {
		if next.Endpoints[i].Name == "broken" {
			next.Endpoints[i].Annotations = map[string]string{hookgatev1alpha1.AnnotationRedeliverFailed: "1"}
		}
	}
	next.Finalize(table)
	holder.Swap(&next)
	eventually(t, 10*time.Second, "redeliver-failed: delivered on attempt 2", kubectlShows(failed, "Delivered", "2"))

	// Partner status.lastEventAt is reported.
	eventually(t, 10*time.Second, "Partner lastEventAt", func() error {
		var p hookgatev1alpha1.Partner
		if err := cluster.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "acme"}, &p); err != nil {
			return err
		}
		if p.Status.LastEventAt == nil {
			return fmt.Errorf("not set")
		}
		return nil
	})
}

// TestPerNamespaceCap keeps at most MaxPerNamespace WebhookEvents, dropping the oldest
// finished ones before any unfinished one; the store keeps every event.
func TestPerNamespaceCap(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const ns = "capped"
	newNamespace(t, ns)
	table := &routing.Table{Partners: []routing.Partner{{Namespace: ns, Name: "acme"}}}
	table.Finalize(nil)
	table.Partner("", "") // builds the lookup index now, as loading a table does, not racily in the workers
	holder := routing.NewHolder()
	holder.Swap(table)
	st, err := store.OpenBolt(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	reflector := eventstatus.New(eventstatus.Options{Client: fastClient(t), Store: st, Holder: holder, Log: logr.Discard(),
		Interval: 50 * time.Millisecond, MaxPerNamespace: 3, PruneInterval: 500 * time.Millisecond})
	var ids []string
	for i := range 6 {
		id := uuid.Must(uuid.NewV7()).String()
		ids = append(ids, id)
		phase := store.PhaseStored
		if i == 0 {
			phase = store.PhaseQueued // unfinished: dropped only after every finished one
		}
		if _, err := st.Ingest(ctx, store.Ingest{Event: store.Event{UUID: id, EventID: fmt.Sprint(i), PartnerNamespace: ns, Partner: "acme",
			EndpointNamespace: ns, Endpoint: "e", ReceivedAt: time.Now(), Phase: phase}}); err != nil {
			t.Fatal(err)
		}
		if i == 2 {
			time.Sleep(1100 * time.Millisecond) // creation timestamps have a one-second resolution
		}
	}
	go func() { _ = reflector.Start(ctx) }()
	eventually(t, 15*time.Second, "capped at 3", func() error {
		var list hookgatev1alpha1.WebhookEventList
		if err := cluster.Client.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return err
		}
		names := map[string]bool{}
		for _, o := range list.Items {
			names[o.Name] = true
		}
		if len(list.Items) != 3 || !names[ids[0]] || !names[ids[5]] {
			return fmt.Errorf("%d WebhookEvents: %v", len(list.Items), names)
		}
		return nil
	})
	if n, _ := st.Count(); n != 6 {
		t.Errorf("the store lost events: %d", n)
	}
}
