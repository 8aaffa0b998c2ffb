package eventstatus_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/uuid"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
	"github.com/hookgate/hookgate/internal/routing"
	"github.com/hookgate/hookgate/internal/testcluster"
	"github.com/hookgate/hookgate/receiver/eventstatus"
	"github.com/hookgate/hookgate/receiver/store"
)

var cluster *testcluster.Cluster

func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard())
	var err error
	cluster, err = testcluster.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: envtest:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = cluster.Stop()
	os.Exit(code)
}

// TestReporter: a partner's newest event reaches its status.lastEventAt, another
// namespace's partner of the same name keeps its own, and a new
// hookgate.io/redeliver-failed value on an endpoint queues its Failed events again, once.
func TestReporter(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, ns := range []string{"shop", "rival"} {
		if err := cluster.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
		if err := cluster.Client.Create(ctx, &hookgatev1alpha1.Partner{ObjectMeta: metav1.ObjectMeta{Name: "acme", Namespace: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	st, err := store.OpenBolt(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	received := time.Now().Add(-time.Minute).UTC().Truncate(time.Second)
	failed := uuid.Must(uuid.NewV7()).String()
	if _, err := st.Ingest(ctx, store.Ingest{Event: store.Event{UUID: failed, EventID: "e1", PartnerNamespace: "shop", Partner: "acme",
		EndpointNamespace: "shop", Endpoint: "orders", ReceivedAt: received, Phase: store.PhaseFailed, Attempts: 1,
		Deliveries: []store.DeliveryState{{Destination: store.DefaultDestination, Phase: store.PhaseFailed, Attempts: 1}}}}); err != nil {
		t.Fatal(err)
	}
	table := &routing.Table{
		Partners:  []routing.Partner{{Namespace: "shop", Name: "acme"}, {Namespace: "rival", Name: "acme"}},
		Endpoints: []routing.Endpoint{{Namespace: "shop", Name: "orders", Annotations: map[string]string{hookgatev1alpha1.AnnotationRedeliverFailed: "1"}}},
	}
	table.Finalize(nil)
	holder := routing.NewHolder()
	holder.Swap(table)
	woken := make(chan struct{}, 10)
	reporter := eventstatus.New(eventstatus.Options{Client: cluster.Client, Store: st, Holder: holder, Log: logr.Discard(),
		Interval: 50 * time.Millisecond, Wake: func() { woken <- struct{}{} }})
	go func() { _ = reporter.Start(ctx) }()

	testcluster.Eventually(t, 10*time.Second, "shop's Partner lastEventAt", func() error {
		var p hookgatev1alpha1.Partner
		if err := cluster.Client.Get(ctx, client.ObjectKey{Namespace: "shop", Name: "acme"}, &p); err != nil {
			return err
		}
		if p.Status.LastEventAt == nil || !p.Status.LastEventAt.Time.Equal(received) {
			return fmt.Errorf("lastEventAt %v, want %v", p.Status.LastEventAt, received)
		}
		return nil
	})
	var rival hookgatev1alpha1.Partner
	if err := cluster.Client.Get(ctx, client.ObjectKey{Namespace: "rival", Name: "acme"}, &rival); err != nil || rival.Status.LastEventAt != nil {
		t.Fatalf("rival's partner of the same name got lastEventAt %v (%v)", rival.Status.LastEventAt, err)
	}
	testcluster.Eventually(t, 10*time.Second, "the Failed event queued again", func() error {
		ev, err := st.Get(ctx, failed)
		if err != nil {
			return err
		}
		if ev.Phase != store.PhaseQueued {
			return fmt.Errorf("phase %v", ev.Phase)
		}
		return nil
	})
	select {
	case <-woken:
	case <-time.After(5 * time.Second):
		t.Fatal("the dispatcher was not woken for the redelivery")
	}
	if handled, err := st.Token(ctx, "redeliver-failed/shop/orders"); err != nil || handled != "1" {
		t.Fatalf("the redelivery is not recorded as handled: %q (%v)", handled, err)
	}
}
