package receiver

import (
	"context"
	"sync"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// DefaultStatusLease names the coordination.k8s.io Lease that decides which replica of a
// shared (PostgreSQL) store writes WebhookEvents and prunes: one writer, so that two
// replicas never race on one WebhookEvent, delete each other's views or prune twice.
const DefaultStatusLease = "hookgate-receiver-status"

// The status Lease's timing: a replica that dies without releasing it (SIGKILL, a lost
// node) is replaced within statusLeaseDuration + statusLeaseRetry. Shorter than
// controller-runtime's 15 s because losing it costs little: the writer's state is all in
// the store, and the next holder resumes from there.
const (
	statusLeaseDuration = 8 * time.Second
	statusLeaseRenew    = 5 * time.Second
	statusLeaseRetry    = time.Second
)

// statusLeader runs work while this replica holds the status Lease, and tries again for
// it whenever it is lost, until ctx ends. On a clean stop the Lease is released at once,
// so that another replica takes over without waiting for it to run out.
type statusLeader struct {
	Config    *rest.Config
	Namespace string
	Name      string
	Identity  string
	Log       logr.Logger
	// OnChange, when set, hears this replica start (true) or stop (false) leading.
	OnChange func(leading bool)
}

func (l *statusLeader) run(ctx context.Context, work func(ctx context.Context)) error {
	client, err := kubernetes.NewForConfig(withUserAgent(l.Config, "hookgate-receiver/status-lease"))
	if err != nil {
		return err
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: l.Namespace, Name: l.Name},
		Client:     client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: l.Identity},
	}
	for ctx.Err() == nil {
		// The work of a lost term must have stopped before another term's starts: two
		// writers at once is what the Lease is for.
		var mu sync.Mutex
		var termDone chan struct{}
		elector, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:            lock,
			LeaseDuration:   statusLeaseDuration,
			RenewDeadline:   statusLeaseRenew,
			RetryPeriod:     statusLeaseRetry,
			ReleaseOnCancel: true,
			Name:            l.Name,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(ctx context.Context) {
					l.Log.Info("holding the status Lease: this replica writes WebhookEvents and prunes", "lease", l.Name)
					l.changed(true)
					done := make(chan struct{})
					mu.Lock()
					termDone = done
					mu.Unlock()
					defer close(done)
					work(ctx)
				},
				OnStoppedLeading: func() {
					l.Log.Info("status Lease released or lost: another replica writes WebhookEvents", "lease", l.Name)
					l.changed(false)
				},
			},
		})
		if err != nil {
			return err
		}
		elector.Run(ctx)
		mu.Lock()
		done := termDone
		mu.Unlock()
		if done != nil {
			<-done
		}
	}
	return nil
}

func (l *statusLeader) changed(leading bool) {
	if l.OnChange != nil {
		l.OnChange(leading)
	}
}
