package v1alpha1

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// labelPrefixLen and labelHashLen shape a shortened label value: up to 52 characters of
// the name, "-", and 10 hex characters of its SHA-256, 63 characters at most.
const (
	labelPrefixLen = 52
	labelHashLen   = 10
)

// LabelValue is the value of the hookgate.io/partner and hookgate.io/endpoint labels of
// a WebhookEvent for a Partner or WebhookEndpoint name. A name that is a valid label
// value (at most 63 characters, which every name of up to 63 characters is) is used as
// is. A longer one (object names may have up to 253) is shortened deterministically: its
// first 52 characters, trimmed to end in a letter or digit, then "-" and the first 10 hex
// characters of the SHA-256 of the whole name. The full names stay in spec.partner and
// spec.endpoint. Anything that selects WebhookEvents by these labels uses this function
// (see docs/reference.md, "Labels and annotations").
func LabelValue(name string) string {
	if len(validation.IsValidLabelValue(name)) == 0 {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	hash := hex.EncodeToString(sum[:])[:labelHashLen]
	prefix := name[:min(len(name), labelPrefixLen)]
	// Characters a label value may not hold become "-"; it must start and end with a
	// letter or a digit.
	prefix = strings.Map(func(r rune) rune {
		if isAlphanumeric(r) || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '-'
	}, prefix)
	prefix = strings.TrimFunc(prefix, func(r rune) bool { return !isAlphanumeric(r) })
	if prefix == "" {
		return hash
	}
	return prefix + "-" + hash
}

func isAlphanumeric(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
}
