package v1alpha1_test

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"

	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
	"github.com/hookgate/hookgate/internal/testcluster"
)

// TestVerificationTypesMatchCRD checks that the markers controller-gen reads (the enum and
// the CEL rules, which cannot refer to Go constants) say what the constants say.
func TestVerificationTypesMatchCRD(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(testcluster.RepoRoot(), "config", "crd", "bases", "hookgate.io_webhookendpoints.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.Unmarshal(raw, &crd); err != nil {
		t.Fatal(err)
	}
	spec := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"]
	verification := spec.Properties["verification"]

	var enum []string
	for _, v := range verification.Properties["type"].Enum {
		enum = append(enum, strings.Trim(string(v.Raw), `"`))
	}
	var want []string
	for _, typ := range hookgatev1alpha1.VerificationTypes {
		want = append(want, string(typ))
	}
	if !slices.Equal(enum, want) {
		t.Errorf("spec.verification.type enum %v, constants %v: update the Enum marker on VerificationType", enum, want)
	}

	cases := []struct {
		name  string
		rules apiextensionsv1.ValidationRules
		// prefix starts the rule's list of exempt types.
		prefix string
		want   func(hookgatev1alpha1.VerificationType) bool
	}{
		{"types with partner credentials (spec rule)", spec.XValidations, "self.verification.type in [", hookgatev1alpha1.VerificationType.UsesPartnerCredentials},
		{"types without secretRef (verification rule)", verification.XValidations, "self.type in [",
			func(t hookgatev1alpha1.VerificationType) bool { return !t.NeedsSecretRef() }},
	}
	quoted := regexp.MustCompile(`'([A-Za-z]+)'`)
	for _, c := range cases {
		var listed []string
		for _, r := range c.rules {
			if i := strings.Index(r.Rule, c.prefix); i >= 0 {
				list := r.Rule[i+len(c.prefix):]
				list = list[:strings.IndexByte(list, ']')]
				for _, m := range quoted.FindAllStringSubmatch(list, -1) {
					listed = append(listed, m[1])
				}
			}
		}
		var expected []string
		for _, typ := range hookgatev1alpha1.VerificationTypes {
			if c.want(typ) {
				expected = append(expected, string(typ))
			}
		}
		slices.Sort(listed)
		slices.Sort(expected)
		if !slices.Equal(listed, expected) {
			t.Errorf("%s: the CEL rule lists %v, the constants say %v", c.name, listed, expected)
		}
	}
}
