package receiver

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/hookgate/hookgate/internal/routing"
)

// The Lease report holds each destination's first filter failure under the table being
// served, at most maxReportedFilterFailures of them, each message bounded; a new table
// starts it afresh.
func TestFilterFailureLog(t *testing.T) {
	l := newFilterFailureLog()
	ep := &routing.Endpoint{Namespace: "shop", Name: "orders"}
	table := &routing.Table{Serial: 7}
	report := func(t *testing.T, tab *routing.Table) map[string]string {
		t.Helper()
		raw := l.annotations(tab)[routing.AnnotationFilterFailures]
		if raw == "" {
			return nil
		}
		var m map[string]string
		if err := json.Unmarshal([]byte(raw), &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	if got := report(t, table); got != nil {
		t.Fatalf("before any failure: %v", got)
	}
	l.record(7, ep, "big-orders", "no such key: amount")
	l.record(7, ep, "big-orders", "a later failure")
	l.record(7, ep, "audit", strings.Repeat("x", 1000))
	got := report(t, table)
	if got["shop/orders/big-orders"] != "no such key: amount" || len(got["shop/orders/audit"]) != maxFilterFailureMessage || len(got) != 2 {
		t.Fatalf("report %v, want the first failure of each destination, bounded", got)
	}
	if got := report(t, &routing.Table{Serial: 8}); got != nil {
		t.Fatalf("under a newer table: %v, want nothing", got)
	}
	for i := range 2 * maxReportedFilterFailures {
		l.record(9, ep, "d"+strings.Repeat("x", i), "failed")
	}
	if got := report(t, &routing.Table{Serial: 9}); len(got) != maxReportedFilterFailures {
		t.Fatalf("%d failures reported, want at most %d", len(got), maxReportedFilterFailures)
	}
}
