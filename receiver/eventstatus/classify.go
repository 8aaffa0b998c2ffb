package eventstatus

import (
	"context"
	"errors"
	"net"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Reasons of hookgate_reflector_refused_total and of the WebhookEventRefused Event: why
// the API server refused a WebhookEvent for good. A fixed set, so the metric's
// cardinality stays bounded by the namespaces.
const (
	RefusedInvalid               = "Invalid"               // 422: the object failed validation (or a policy said Invalid)
	RefusedForbidden             = "Forbidden"             // 403: admission (a policy or webhook) or authorization denied it
	RefusedQuotaExceeded         = "QuotaExceeded"         // 403: a ResourceQuota of the namespace is used up
	RefusedNamespaceTerminating  = "NamespaceTerminating"  // 403: the namespace is being deleted
	RefusedNamespaceNotFound     = "NamespaceNotFound"     // 404: the namespace does not exist
	RefusedRequestEntityTooLarge = "RequestEntityTooLarge" // 413
	RefusedBadRequest            = "BadRequest"            // 400
)

// errorClass is what a failed write means for the reflector.
type errorClass int

const (
	// classPermanent: the API server answered and will give the same answer for this
	// state of the event: record the refusal and skip that version.
	classPermanent errorClass = iota + 1
	// classNamespace: the API server answered with a transient error (409, 429, 5xx, a
	// timeout, a namespace-scoped admission webhook failing): back off that namespace.
	classNamespace
	// classConnection: no answer from the API server at all (connection refused or
	// reset, EOF, TLS, or a client-side error): back off every write for a moment, and
	// the namespace too.
	classConnection
	// classStore: the store failed to record the write; back off every write.
	classStore
)

// classify tells a permanent refusal from a transient error, and names the refusal.
func classify(err error) (errorClass, string) {
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return classConnection, ""
		}
		if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
			// Our own per-write timeout, or the client's: a slow answer, possibly from
			// something that applies to one namespace only.
			return classNamespace, ""
		}
		return classConnection, ""
	}
	switch {
	case apierrors.IsInvalid(err):
		return classPermanent, RefusedInvalid
	case apierrors.IsForbidden(err):
		switch {
		case hasCause(err, "NamespaceTerminating"):
			return classPermanent, RefusedNamespaceTerminating
		case strings.Contains(status.Status().Message, "exceeded quota"):
			return classPermanent, RefusedQuotaExceeded
		}
		return classPermanent, RefusedForbidden
	case apierrors.IsNotFound(err):
		if d := status.Status().Details; d != nil && d.Kind == "namespaces" {
			return classPermanent, RefusedNamespaceNotFound
		}
		// Not the namespace: the resource type itself (CRD not installed) or a
		// proxy in the way. Not the event's fault.
		return classNamespace, ""
	case apierrors.IsRequestEntityTooLargeError(err):
		return classPermanent, RefusedRequestEntityTooLarge
	case apierrors.IsBadRequest(err):
		return classPermanent, RefusedBadRequest
	}
	// Conflict, TooManyRequests, Timeout, ServerTimeout, InternalError,
	// ServiceUnavailable, Unauthorized (credentials being refreshed), anything else.
	return classNamespace, ""
}

// namespaceGone reports refusals that every later write into the namespace will get
// too, so that the reflector stops asking for a while.
func namespaceGone(reason string) bool {
	return reason == RefusedNamespaceTerminating || reason == RefusedNamespaceNotFound
}

func hasCause(err error, cause metav1.CauseType) bool {
	var status apierrors.APIStatus
	if errors.As(err, &status) && status.Status().Details != nil {
		for _, c := range status.Status().Details.Causes {
			if c.Type == cause {
				return true
			}
		}
	}
	return false
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}
