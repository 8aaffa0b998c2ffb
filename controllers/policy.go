package controllers

import (
	"fmt"
	"strings"

	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
)

// Policy is what the platform team allows tenants, applied by the operator before
// anything reaches the shared routing table.
type Policy struct {
	// SharedPathNamespaces may take any path under /api/webhooks/; every other namespace
	// only paths under /api/webhooks/<its namespace>/, in the manner of Gateway API's
	// allowedRoutes.
	SharedPathNamespaces map[string]bool
	// MaxSecretBytes bounds each secret value copied into the table (signing secrets,
	// secretRef values).
	MaxSecretBytes int
	// MaxNamespaceTableBytes bounds what one namespace's entries take in the table, so
	// that one tenant cannot push the shared table over the Secret size limit.
	MaxNamespaceTableBytes int
}

// NewPolicy builds the policy of the operator's options.
func NewPolicy(opts Options) Policy {
	p := Policy{SharedPathNamespaces: map[string]bool{}, MaxSecretBytes: opts.MaxSecretBytes, MaxNamespaceTableBytes: opts.MaxNamespaceTableBytes}
	for _, ns := range opts.SharedPathNamespaces {
		p.SharedPathNamespaces[ns] = true
	}
	return p
}

// pathPermitted reports whether an endpoint in namespace may serve path.
func (p Policy) pathPermitted(namespace, path string) bool {
	if hookgatev1alpha1.ReservedPath(path) {
		return false
	}
	return p.SharedPathNamespaces[namespace] || strings.HasPrefix(path, "/api/webhooks/"+namespace+"/")
}

// checkPath says why an endpoint may not serve its path, or nil.
func (p Policy) checkPath(e *hookgatev1alpha1.WebhookEndpoint) error {
	path := e.EffectivePath()
	if hookgatev1alpha1.ReservedPath(path) {
		// Published, it would be answered by the partner API: 405 or 404 for every POST.
		return &problem{hookgatev1alpha1.ReasonPathReserved, fmt.Sprintf(
			"path %s is reserved for the receiver's status and partner APIs: an endpoint of namespace %s needs another spec.path, which outside /api/webhooks/%s/ only a namespace in the operator's --shared-path-namespaces may take", path, e.Namespace, e.Namespace)}
	}
	if p.pathPermitted(e.Namespace, path) {
		return nil
	}
	return &problem{hookgatev1alpha1.ReasonPathNotPermitted, fmt.Sprintf(
		"path %s is outside /api/webhooks/%s/: only namespaces listed in the operator's --shared-path-namespaces may serve other paths", path, e.Namespace)}
}

// checkSecretSize says why a secret value is too large for the table, or nil.
func (p Policy) checkSecretSize(secretName, key string, value []byte) error {
	if p.MaxSecretBytes > 0 && len(value) > p.MaxSecretBytes {
		return &problem{hookgatev1alpha1.ReasonSecretTooLarge, fmt.Sprintf(
			"Secret %q key %q holds %d bytes; the limit is %d (operator flag --max-secret-bytes)", secretName, key, len(value), p.MaxSecretBytes)}
	}
	return nil
}
