package receiver

import (
	"testing"

	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
)

// TestReservedPathsAreTheReceiversOwn: the operator refuses exactly the paths under
// /api/webhooks/ that the receiver answers before looking for an endpoint, so that an
// endpoint is never Ready on a path whose POSTs would never reach it.
func TestReservedPathsAreTheReceiversOwn(t *testing.T) {
	for _, tc := range []struct {
		path     string
		reserved bool
	}{
		{pathStatus, true},
		{pathMe, true},
		{pathUsage, true},
		{pathOpenAPI, true},
		{pathEventsRoot + "orders", true},              // the default path of events/orders
		{pathEventsRoot + "0190a0b1-uuid/retry", true}, // a partner API resource
		{pathEvents, false},                            // GET is the event log, a POST an endpoint's
		{"/api/webhooks/payments/orders", false},
		{"/api/webhooks/eventsx/orders", false},
		{"/api/webhooks/payments/events/x", false},
	} {
		if got := hookgatev1alpha1.ReservedPath(tc.path); got != tc.reserved {
			t.Errorf("ReservedPath(%s) = %v, want %v", tc.path, got, tc.reserved)
		}
	}
}
