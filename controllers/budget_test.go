package controllers

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
	"github.com/hookgate/hookgate/internal/routing"
)

func budgetTable() *routing.Table {
	partner := func(ns, name string, secretBytes int) routing.Partner {
		return routing.Partner{Namespace: ns, Name: name, Credentials: []routing.Credential{{SigningSecret: routing.SecretValue(strings.Repeat("s", secretBytes))}}}
	}
	return &routing.Table{
		Partners: []routing.Partner{partner("big", "first", 3000), partner("small", "a", 10), partner("big", "second", 3000), partner("big", "third", 3000)},
		Endpoints: []routing.Endpoint{
			{Namespace: "big", Name: "e", Path: "/api/webhooks/big/e", Partners: []string{"third"}},
			{Namespace: "small", Name: "e", Path: "/api/webhooks/small/e"},
		},
	}
}

func TestNamespaceBudgetKeepsTheOldest(t *testing.T) {
	table, excluded := budgetTable(), exclusions{}
	applyNamespaceBudgets(table, 7000, excluded)
	var kept []string
	for _, p := range table.Partners {
		kept = append(kept, routing.Key(p.Namespace, p.Name))
	}
	if strings.Join(kept, ",") != "big/first,small/a,big/second" {
		t.Fatalf("kept %v; want the two oldest of big and small's", kept)
	}
	if p := excluded[exclusionKey(kindPartner, "big", "third")]; p == nil || p.Reason != hookgatev1alpha1.ReasonNamespaceTableBudgetExceeded {
		t.Fatalf("big/third excluded as %+v", p)
	}
	if len(table.Endpoints) != 1 || table.Endpoints[0].Namespace != "small" {
		t.Fatalf("endpoints %+v: big/e names a partner that was left out", table.Endpoints)
	}
}

func TestShedLargestNamespace(t *testing.T) {
	table, excluded := budgetTable(), exclusions{}
	if ns := shedLargestNamespace(table, excluded); ns != "big" {
		t.Fatalf("shed %q, want big", ns)
	}
	if len(table.Partners) != 1 || table.Partners[0].Namespace != "small" || len(table.Endpoints) != 1 {
		t.Fatalf("left %+v / %+v", table.Partners, table.Endpoints)
	}
	if len(excluded) != 4 {
		t.Fatalf("%d exclusions, want big's 3 partners and 1 endpoint", len(excluded))
	}
}

func TestForeignSecretDataIsNotCached(t *testing.T) {
	own := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{hookgatev1alpha1.LabelManagedBy: hookgatev1alpha1.ManagedByValue}},
		Data: map[string][]byte{"k": []byte("v")}}
	foreign := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db-password"}, Data: map[string][]byte{"password": []byte("hunter2")}}
	for _, s := range []*corev1.Secret{own, foreign} {
		if _, err := dropForeignSecretData(s); err != nil {
			t.Fatal(err)
		}
	}
	if len(own.Data) != 1 || foreign.Data != nil || foreign.Name != "db-password" {
		t.Fatalf("own %v, foreign %v: the cache must keep the operator's Secret data and only the metadata of others", own.Data, foreign.Data)
	}
}
