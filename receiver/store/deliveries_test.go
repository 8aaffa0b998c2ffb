package store

import "testing"

func TestQueueKeys(t *testing.T) {
	cases := []struct {
		endpoint, destination, queue string
	}{
		{"ns/orders", DefaultDestination, "ns/orders"}, // as before fan-out
		{"ns/orders", "", "ns/orders"},
		{"ns/orders", "billing", "ns/orders/billing"},
	}
	for _, tc := range cases {
		if got := QueueKey(tc.endpoint, tc.destination); got != tc.queue {
			t.Errorf("QueueKey(%q, %q) = %q, want %q", tc.endpoint, tc.destination, got, tc.queue)
		}
		ns, name, dest, err := ParseQueueKey(tc.queue)
		want := tc.destination
		if want == "" {
			want = DefaultDestination
		}
		if err != nil || ns+"/"+name != tc.endpoint || dest != want {
			t.Errorf("ParseQueueKey(%q) = %q %q %q (%v)", tc.queue, ns, name, dest, err)
		}
	}
	for _, bad := range []string{"", "orders", "/orders", "ns/", "ns/orders/", "ns/orders/a/b"} {
		if _, _, _, err := ParseQueueKey(bad); err == nil {
			t.Errorf("ParseQueueKey(%q) accepted a malformed key", bad)
		}
	}
}

// TestAggregate: the event's phase from its deliveries' phases.
func TestAggregate(t *testing.T) {
	cases := []struct {
		name   string
		phases []string
		want   string
	}{
		{"one queued", []string{PhaseQueued}, PhaseQueued},
		{"all queued", []string{PhaseQueued, PhaseQueued}, PhaseQueued},
		{"one done, one queued", []string{PhaseDelivered, PhaseQueued}, PhaseDelivering},
		{"one retrying", []string{PhaseDelivered, PhaseRetrying, PhaseQueued}, PhaseRetrying},
		{"failed while another is pending", []string{PhaseFailed, PhaseQueued}, PhaseDelivering},
		{"all delivered", []string{PhaseDelivered, PhaseDelivered}, PhaseDelivered},
		{"one failed, all finished", []string{PhaseDelivered, PhaseFailed}, PhaseFailed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := Event{}
			for i, p := range tc.phases {
				e.Deliveries = append(e.Deliveries, DeliveryState{Destination: string(rune('a' + i)), Phase: p, Attempts: 1})
			}
			e.Aggregate()
			if e.Phase != tc.want || e.Attempts != int32(len(tc.phases)) { //nolint:gosec // small
				t.Fatalf("phase %s, attempts %d; want %s, %d", e.Phase, e.Attempts, tc.want, len(tc.phases))
			}
		})
	}
}
