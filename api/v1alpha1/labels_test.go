package v1alpha1_test

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"

	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
)

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
