package eventstatus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/hookgate/hookgate/receiver/store"
)

func TestClassify(t *testing.T) {
	gr := schema.GroupResource{Group: "hookgate.io", Resource: "webhookevents"}
	terminating := apierrors.NewForbidden(gr, "x", errors.New("unable to create new content in namespace a because it is being terminated"))
	terminating.ErrStatus.Details.Causes = []metav1.StatusCause{{Type: corev1.NamespaceTerminatingCause}}
	for _, tc := range []struct {
		name   string
		err    error
		class  errorClass
		reason string
	}{
		{"invalid label", apierrors.NewInvalid(schema.GroupKind{Group: "hookgate.io", Kind: "WebhookEvent"}, "x", field.ErrorList{field.Invalid(field.NewPath("metadata", "labels"), "v", "too long")}), classPermanent, RefusedInvalid},
		{"policy", apierrors.NewForbidden(gr, "x", errors.New("ValidatingAdmissionPolicy denied request")), classPermanent, RefusedForbidden},
		{"quota", apierrors.NewForbidden(gr, "x", errors.New("exceeded quota: q, requested: count/webhookevents.hookgate.io=1")), classPermanent, RefusedQuotaExceeded},
		{"namespace terminating", terminating, classPermanent, RefusedNamespaceTerminating},
		{"namespace not found", apierrors.NewNotFound(schema.GroupResource{Resource: "namespaces"}, "a"), classPermanent, RefusedNamespaceNotFound},
		{"too large", apierrors.NewRequestEntityTooLargeError("limit is 3145728"), classPermanent, RefusedRequestEntityTooLarge},
		{"bad request", apierrors.NewBadRequest("nope"), classPermanent, RefusedBadRequest},
		{"resource type not found", apierrors.NewNotFound(gr, "x"), classNamespace, ""},
		{"conflict", apierrors.NewConflict(gr, "x", errors.New("changed")), classNamespace, ""},
		{"429", apierrors.NewTooManyRequests("slow down", 1), classNamespace, ""},
		{"500 webhook failed", apierrors.NewInternalError(errors.New("failed calling webhook")), classNamespace, ""},
		{"503", apierrors.NewServiceUnavailable("etcd"), classNamespace, ""},
		{"504", apierrors.NewTimeoutError("slow", 1), classNamespace, ""},
		{"401", apierrors.NewUnauthorized("token expired"), classNamespace, ""},
		{"our deadline", fmt.Errorf("create: %w", context.DeadlineExceeded), classNamespace, ""},
		{"client timeout", &url.Error{Op: "Post", URL: "https://api", Err: timeoutError{}}, classNamespace, ""},
		{"connection refused", &url.Error{Op: "Post", URL: "https://api", Err: &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}}, classConnection, ""},
		{"dial timeout", &url.Error{Op: "Post", URL: "https://api", Err: &net.OpError{Op: "dial", Net: "tcp", Err: timeoutError{}}}, classConnection, ""},
		{"EOF", &url.Error{Op: "Post", URL: "https://api", Err: io.EOF}, classConnection, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			class, reason := classify(tc.err)
			if class != tc.class || reason != tc.reason {
				t.Errorf("classify(%v) = %v %q, want %v %q", tc.err, class, reason, tc.class, tc.reason)
			}
		})
	}
}

type timeoutError struct{}

func (timeoutError) Error() string { return "i/o timeout" }
func (timeoutError) Timeout() bool { return true }

func events(ns string, n int) []store.Event {
	out := make([]store.Event, n)
	for i := range out {
		out[i] = store.Event{UUID: fmt.Sprintf("%s-%03d", ns, i), PartnerNamespace: ns, Version: 1}
	}
	return out
}

// dispatch hands out events until the scheduler has none to give, and returns their
// namespaces in order.
func dispatch(s *scheduler, now time.Time) []string {
	var order []string
	for it := s.next(now); it != nil; it = s.next(now) {
		s.take(it)
		order = append(order, it.ev.PartnerNamespace)
	}
	return order
}

func count(order []string) map[string]int {
	n := map[string]int{}
	for _, ns := range order {
		n[ns]++
	}
	return n
}

func TestSchedulerSharesWorkers(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		name  string
		setup func(s *scheduler)
		want  map[string]int // in flight per namespace once nothing more is handed out
		first []string       // the first namespaces handed out, in order
	}{
		{
			name:  "one namespace alone borrows idle workers but leaves a share free",
			setup: func(s *scheduler) { s.offer(events("a", 100), now) },
			want:  map[string]int{"a": 24},
		},
		{
			name: "round-robin, each namespace to its share, then both borrow",
			setup: func(s *scheduler) {
				s.offer(append(events("a", 100), events("b", 100)...), now)
			},
			want:  map[string]int{"a": 12, "b": 12},
			first: []string{"a", "b", "a", "b"},
		},
		{
			name: "a slow namespace keeps to its share",
			setup: func(s *scheduler) {
				s.offer(append(events("a", 100), events("b", 3)...), now)
				s.state("a").slowUntil = now.Add(time.Minute)
			},
			want: map[string]int{"a": 8, "b": 3},
		},
		{
			name: "a backed-off namespace gets nothing, the other everything it may",
			setup: func(s *scheduler) {
				s.state("a").until = now.Add(time.Second)
				if _, held := s.offer(append(events("a", 100), events("b", 100)...), now); held != 100 {
					panic(held)
				}
			},
			want: map[string]int{"b": 24},
		},
		{
			name: "every write paused after a connection error",
			setup: func(s *scheduler) {
				s.offer(events("a", 10), now)
				s.backoffAll(now)
			},
			want: map[string]int{},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newScheduler(32, 8)
			tc.setup(s)
			order := dispatch(s, now)
			if got := count(order); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("in flight %v, want %v", got, tc.want)
			}
			for i, ns := range tc.first {
				if i >= len(order) || order[i] != ns {
					t.Fatalf("order %v, want it to start with %v", order, tc.first)
				}
			}
		})
	}
}

func TestSchedulerNewcomerGetsReservedWorkers(t *testing.T) {
	now := time.Now()
	s := newScheduler(32, 8)
	s.offer(events("a", 100), now)
	if n := len(dispatch(s, now)); n != 24 {
		t.Fatalf("a took %d", n)
	}
	// a's 24 writes hang; b's events arrive: b gets its share at once.
	s.offer(events("b", 20), now)
	if got := count(dispatch(s, now)); got["b"] != 8 || got["a"] != 0 {
		t.Fatalf("then %v", got)
	}
}

func TestSchedulerCoalescesAndNeverWritesAnEventTwiceAtOnce(t *testing.T) {
	now := time.Now()
	s := newScheduler(1, 1)
	evs := events("a", 2)
	s.offer(evs, now)
	it := s.next(now)
	s.take(it) // a-000 in flight
	// A newer scan: a-000 has version 2 (in flight: skipped), a-001 version 3 (queued:
	// updated in place).
	newer := events("a", 2)
	newer[0].Version, newer[1].Version = 2, 3
	if added, _ := s.offer(newer, now); added != 0 {
		t.Fatalf("added %d", added)
	}
	if s.queued["a-001"].Version != 3 || s.queuedCount != 1 {
		t.Fatalf("queued %+v", s.queued)
	}
	// Done with a-000 version 1; a scan that read before that finds version 1 again.
	s.succeeded(it.ev, now)
	if added, _ := s.offer(events("a", 1), now); added != 0 {
		t.Fatal("a version already written was queued again")
	}
	// Its version 2 is queued.
	if added, _ := s.offer(newer[:1], now); added != 1 {
		t.Fatal("a newer version was not queued")
	}
}

func TestSchedulerBacksOffOneNamespace(t *testing.T) {
	now := time.Now()
	s := newScheduler(32, 8)
	s.offer(append(events("a", 50), events("b", 50)...), now)
	order := dispatch(s, now)
	var failed *store.Event
	for _, ns := range order {
		if ns == "a" {
			failed = &store.Event{UUID: "a-000", PartnerNamespace: "a", Version: 1}
			break
		}
	}
	d, started := s.backoffNamespace(failed, now)
	if !started || d != minBackoff {
		t.Fatalf("backoff %s %v", d, started)
	}
	if st := s.namespaces["a"]; len(st.queue) != 0 {
		t.Fatalf("a still has %d queued", len(st.queue))
	}
	if _, again := s.backoffNamespace(&store.Event{UUID: "a-001", PartnerNamespace: "a"}, now); again {
		t.Fatal("a second failure of the same wave doubled the backoff")
	}
	if s.namespaces["b"] == nil || len(s.namespaces["b"].queue) == 0 {
		t.Fatal("b's queue was touched")
	}
	if got := count(dispatch(s, now)); got["a"] != 0 {
		t.Fatalf("a handed out while backed off: %v", got)
	}
}
