package routing

import (
	"context"
	"encoding/json"
	"os"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

const (
	// LabelRole marks receiver Leases, so that the operator lists only those.
	LabelRole        = "hookgate.io/role"
	RoleReceiver     = "receiver"
	LeaseDuration    = 30 * time.Second
	leaseRenewPeriod = 10 * time.Second
	// AnnotationPublicURL is the receiver's --public-url on its Lease, so that the
	// operator writes the issuer receivers actually sign with into each JWT
	// destination's status, without a second copy of the setting.
	AnnotationPublicURL = "hookgate.io/public-url"
	// AnnotationFilterFailures holds, as a JSON object, the first evaluation failure of
	// each destination filter under the table the receiver serves ("<namespace>/<endpoint>/
	// <destination>": message), so that the operator shows it in the endpoint's status.
	AnnotationFilterFailures = "hookgate.io/filter-failures"
)

// Identity is the receiver replica's name: POD_NAME, else the hostname.
func Identity() string {
	if name := os.Getenv("POD_NAME"); name != "" {
		return name
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		return "hookgate-receiver"
	}
	return host
}

// LeaseReporter tells the operator which table this replica serves: a Lease named after
// the replica, renewed every 10 s and at once after every swap, annotated with the
// table's serial and hash.
type LeaseReporter struct {
	Client    kubernetes.Interface
	Namespace string
	Identity  string
	Holder    *Holder
	// PublicURL is reported as AnnotationPublicURL (empty: none).
	PublicURL string
	// Report, when set, adds annotations to each renewal (an empty value removes one).
	Report func(*Table) map[string]string
	Log    logr.Logger
}

// Start reports until ctx ends, then deletes the Lease so that the operator stops waiting
// for this replica at once.
func (r *LeaseReporter) Start(ctx context.Context) error {
	ticker := time.NewTicker(leaseRenewPeriod)
	defer ticker.Stop()
	for {
		if t := r.Holder.Current(); t != nil {
			if err := r.report(ctx, t); err != nil && ctx.Err() == nil {
				r.Log.Error(err, "renewing the receiver Lease")
			}
		}
		select {
		case <-ctx.Done():
			cleanup, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = r.Client.CoordinationV1().Leases(r.Namespace).Delete(cleanup, r.Identity, metav1.DeleteOptions{})
			return nil
		case <-ticker.C:
		case <-r.Holder.Changed():
		}
	}
}

func (r *LeaseReporter) report(ctx context.Context, t *Table) error {
	leases := r.Client.CoordinationV1().Leases(r.Namespace)
	now := metav1.NewMicroTime(time.Now())
	annotations := map[string]string{AnnotationSerial: SerialString(t.Serial), AnnotationHash: t.Hash, AnnotationPublicURL: r.PublicURL}
	if r.Report != nil {
		for k, v := range r.Report(t) {
			annotations[k] = v
		}
	}
	lease, err := leases.Get(ctx, r.Identity, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = leases.Create(ctx, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{
				Name: r.Identity, Namespace: r.Namespace,
				Labels:      map[string]string{LabelRole: RoleReceiver},
				Annotations: nonEmpty(annotations),
			},
			Spec: coordinationv1.LeaseSpec{
				HolderIdentity:       ptr.To(r.Identity),
				LeaseDurationSeconds: ptr.To(int32(LeaseDuration / time.Second)),
				AcquireTime:          &now,
				RenewTime:            &now,
			},
		}, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	if lease.Labels == nil {
		lease.Labels = map[string]string{}
	}
	lease.Labels[LabelRole] = RoleReceiver
	if lease.Annotations == nil {
		lease.Annotations = map[string]string{}
	}
	for k, v := range annotations {
		if v == "" {
			delete(lease.Annotations, k)
			continue
		}
		lease.Annotations[k] = v
	}
	lease.Spec.HolderIdentity = ptr.To(r.Identity)
	lease.Spec.LeaseDurationSeconds = ptr.To(int32(LeaseDuration / time.Second))
	lease.Spec.RenewTime = &now
	_, err = leases.Update(ctx, lease, metav1.UpdateOptions{})
	return err
}

// LeaseLive reports whether a receiver Lease was renewed recently enough to count.
func LeaseLive(l *coordinationv1.Lease, now time.Time) bool {
	if l.Spec.RenewTime == nil {
		return false
	}
	d := LeaseDuration
	if l.Spec.LeaseDurationSeconds != nil {
		d = time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second
	}
	return now.Before(l.Spec.RenewTime.Add(d))
}

func nonEmpty(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		if v != "" {
			out[k] = v
		}
	}
	return out
}

// LivePublicURL is the public URL the live receiver Leases report, the same on every
// replica of one release; when they differ (a rollout changing it) the newest renewed
// Lease's wins. Empty when none reports one.
func LivePublicURL(leases []coordinationv1.Lease, now time.Time) string {
	var url string
	var newest time.Time
	for i := range leases {
		l := &leases[i]
		if !LeaseLive(l, now) || l.Annotations[AnnotationPublicURL] == "" {
			continue
		}
		if renewed := l.Spec.RenewTime.Time; url == "" || renewed.After(newest) {
			url, newest = l.Annotations[AnnotationPublicURL], renewed
		}
	}
	return url
}

// LiveFilterFailures merges the filter failures the live receiver Leases report:
// "<namespace>/<endpoint>/<destination>" to the first message seen.
func LiveFilterFailures(leases []coordinationv1.Lease, now time.Time) map[string]string {
	out := map[string]string{}
	for i := range leases {
		l := &leases[i]
		raw := l.Annotations[AnnotationFilterFailures]
		if !LeaseLive(l, now) || raw == "" {
			continue
		}
		var m map[string]string
		if json.Unmarshal([]byte(raw), &m) != nil {
			continue
		}
		for k, v := range m {
			if _, ok := out[k]; !ok {
				out[k] = v
			}
		}
	}
	return out
}
