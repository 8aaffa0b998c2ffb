package eventstatus_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/uuid"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
	"github.com/hookgate/hookgate/internal/routing"
	"github.com/hookgate/hookgate/receiver/delivery"
	"github.com/hookgate/hookgate/receiver/eventstatus"
	"github.com/hookgate/hookgate/receiver/store"
)

// TestWebhookEventShowsOnlyTheErrorClass: a delivery to a URL with a secret in its query
// string fails; the WebhookEvent's lastError is the class, and the object names neither
// the secret nor the address.
func TestWebhookEventShowsOnlyTheErrorClass(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const ns = "lasterror"
	newNamespace(t, ns)
	partner := &hookgatev1alpha1.Partner{ObjectMeta: metav1.ObjectMeta{Name: "acme", Namespace: ns}}
	if err := cluster.Client.Create(ctx, partner); err != nil {
		t.Fatal(err)
	}
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()
	table := &routing.Table{
		Partners: []routing.Partner{{Namespace: ns, Name: "acme", UID: string(partner.UID)}},
		Endpoints: []routing.Endpoint{{Namespace: ns, Name: "orders", Path: "/api/webhooks/lasterror/orders",
			Retry:       routing.Retry{MaxAttempts: 1, InitialBackoff: routing.Duration(time.Millisecond), MaxBackoff: routing.Duration(time.Millisecond)},
			Destination: &routing.Destination{URL: "http://" + closedAddr + "/hook?token=SECRET123", Timeout: routing.Duration(time.Second)}}},
	}
	table.Finalize(nil)
	holder := routing.NewHolder()
	holder.Swap(table)
	st, err := store.OpenBolt(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	dispatcher := delivery.NewDispatcher(delivery.Options{Store: st, Holder: holder, Log: logr.Discard(), PollInterval: 20 * time.Millisecond, Egress: loopbackEgress()})
	reflector := eventstatus.New(eventstatus.Options{Client: fastClient(t), Store: st, Holder: holder, Log: logr.Discard(), Wake: dispatcher.Wake, Interval: 50 * time.Millisecond})
	go func() { _ = dispatcher.Start(ctx) }()
	go func() { _ = reflector.Start(ctx) }()
	id := uuid.Must(uuid.NewV7()).String()
	if _, err := st.Ingest(ctx, store.Ingest{Event: store.Event{UUID: id, EventID: "evt_lasterror", Type: "order.created",
		PartnerNamespace: ns, Partner: "acme", EndpointNamespace: ns, Endpoint: "orders", ReceivedAt: time.Now(), Phase: store.PhaseQueued},
		Payload: []byte(`{"id":"evt_lasterror"}`)}); err != nil {
		t.Fatal(err)
	}
	dispatcher.Wake()
	var obj hookgatev1alpha1.WebhookEvent
	eventually(t, 15*time.Second, "the WebhookEvent shows Failed", func() error {
		if err := cluster.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: id}, &obj); err != nil {
			return err
		}
		if obj.Status.Phase != hookgatev1alpha1.PhaseFailed {
			return fmt.Errorf("phase %q", obj.Status.Phase)
		}
		return nil
	})
	if obj.Status.LastError != "connection refused" {
		t.Errorf("lastError %q, want %q", obj.Status.LastError, "connection refused")
	}
	raw, _ := json.Marshal(&obj)
	for _, leak := range []string{"SECRET123", "token", "127.0.0.1", closedAddr} {
		if strings.Contains(string(raw), leak) {
			t.Errorf("the WebhookEvent contains %q: %s", leak, raw)
		}
	}
}
