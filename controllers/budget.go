package controllers

import (
	"encoding/json"
	"fmt"
	"sort"

	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
	"github.com/hookgate/hookgate/internal/routing"
)

// maxTableBytes is what the encoded routing table may take of the 1 MiB Secret limit,
// leaving room for the Secret's metadata.
const maxTableBytes = 1000 << 10

// exclusions are the entries left out of the table for a tenant limit, by kind/ns/name.
type exclusions map[string]*problem

func exclusionKey(kind, namespace, name string) string {
	return kind + "/" + routing.Key(namespace, name)
}

func (x exclusions) add(kind, namespace, name string, prob *problem) {
	x[exclusionKey(kind, namespace, name)] = prob
}

const (
	kindPartner  = "Partner"
	kindEndpoint = "WebhookEndpoint"
)

// applyNamespaceBudgets drops the entries of each namespace past its share of the table,
// keeping partners before endpoints and, within each, the order given (oldest first), so
// that what a tenant adds last is what waits.
func applyNamespaceBudgets(t *routing.Table, budget int, excluded exclusions) {
	used := map[string]int{}
	over := func(ns string, entry any) bool {
		b, _ := json.Marshal(entry)
		if used[ns]+len(b) > budget {
			return true
		}
		used[ns] += len(b)
		return false
	}
	message := func(ns string) string {
		return fmt.Sprintf("namespace %s already takes %d bytes of the shared routing table; the limit is %d (operator flag --max-namespace-table-bytes): remove or shrink other partners or endpoints of the namespace", ns, used[ns], budget)
	}
	included := map[string]bool{}
	t.Partners = keep(t.Partners, func(p routing.Partner) bool {
		if over(p.Namespace, p) {
			excluded.add(kindPartner, p.Namespace, p.Name, &problem{hookgatev1alpha1.ReasonNamespaceTableBudgetExceeded, message(p.Namespace)})
			return false
		}
		included[routing.Key(p.Namespace, p.Name)] = true
		return true
	})
	t.Endpoints = keep(t.Endpoints, func(e routing.Endpoint) bool {
		if missingPartner(&e, included) != "" {
			return false
		}
		if over(e.Namespace, e) {
			excluded.add(kindEndpoint, e.Namespace, e.Name, &problem{hookgatev1alpha1.ReasonNamespaceTableBudgetExceeded, message(e.Namespace)})
			return false
		}
		return true
	})
}

// keep filters items in place, in order.
func keep[T any](items []T, ok func(T) bool) []T {
	out := items[:0]
	for _, item := range items {
		if ok(item) {
			out = append(out, item)
		}
	}
	return out
}

// shedLargestNamespace removes every entry of the namespace that takes the most of the
// table, when the whole table would not fit its Secret: the largest tenant waits, the
// others keep publishing. It reports the namespace, or "" when the table is empty.
func shedLargestNamespace(t *routing.Table, excluded exclusions) string {
	used := map[string]int{}
	for _, p := range t.Partners {
		b, _ := json.Marshal(p)
		used[p.Namespace] += len(b)
	}
	for _, e := range t.Endpoints {
		b, _ := json.Marshal(e)
		used[e.Namespace] += len(b)
	}
	namespaces := make([]string, 0, len(used))
	for ns := range used {
		namespaces = append(namespaces, ns)
	}
	if len(namespaces) == 0 {
		return ""
	}
	sort.Slice(namespaces, func(i, j int) bool {
		if used[namespaces[i]] != used[namespaces[j]] {
			return used[namespaces[i]] > used[namespaces[j]]
		}
		return namespaces[i] < namespaces[j]
	})
	shed := namespaces[0]
	prob := &problem{hookgatev1alpha1.ReasonNamespaceTableBudgetExceeded, fmt.Sprintf(
		"the shared routing table is full and namespace %s takes the most of it (%d bytes): lower the operator's --max-namespace-table-bytes or shrink this namespace's partners and endpoints", shed, used[shed])}
	t.Partners = keep(t.Partners, func(p routing.Partner) bool {
		if p.Namespace == shed {
			excluded.add(kindPartner, p.Namespace, p.Name, prob)
		}
		return p.Namespace != shed
	})
	t.Endpoints = keep(t.Endpoints, func(e routing.Endpoint) bool {
		if e.Namespace == shed {
			excluded.add(kindEndpoint, e.Namespace, e.Name, prob)
		}
		return e.Namespace != shed
	})
	return shed
}
