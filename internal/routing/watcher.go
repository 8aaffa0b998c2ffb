package routing

import (
	"context"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// SecretWatcher loads the routing Secret into a Holder. It watches only that one Secret
// (a field selector on its name, which RBAC resourceNames can restrict to), keeps the last
// good table when a new one does not decode, and saves each good one to disk.
type SecretWatcher struct {
	Client    kubernetes.Interface
	Namespace string
	Name      string
	Holder    *Holder
	Cache     *DiskCache
	Log       logr.Logger
	// OnLoad, when set, is called after each table swap (metrics, audit).
	OnLoad func(*Table)
}

// Start loads the cached copy, if any, then watches the Secret until ctx ends.
func (w *SecretWatcher) Start(ctx context.Context) error {
	if w.Cache != nil && w.Holder.Current() == nil {
		t, err := w.Cache.Load()
		switch {
		case err != nil:
			w.Log.Error(err, "ignoring the cached routing table")
		case t != nil:
			w.Log.Info("serving the cached routing table until the API server answers", "serial", t.Serial, "hash", t.Hash)
			w.swap(t, nil)
		}
	}
	factory := informers.NewSharedInformerFactoryWithOptions(w.Client, 10*time.Minute,
		informers.WithNamespace(w.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", w.Name).String()
		}))
	informer := factory.Core().V1().Secrets().Informer()
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { w.load(obj) },
		UpdateFunc: func(_, obj any) { w.load(obj) },
		DeleteFunc: func(any) {
			w.Log.Info("routing Secret deleted; serving the last good table", "secret", w.Name)
		},
	}); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	<-ctx.Done()
	factory.Shutdown()
	return nil
}

func (w *SecretWatcher) load(obj any) {
	secret, ok := obj.(*corev1.Secret)
	if !ok || secret.Name != w.Name {
		return
	}
	data := secret.Data[SecretDataKey]
	t, err := Decode(data)
	if err != nil {
		w.Log.Error(err, "routing Secret does not hold a usable table; serving the last good one", "secret", w.Name)
		return
	}
	if cur := w.Holder.Current(); cur != nil && cur.Hash == t.Hash && cur.Serial == t.Serial {
		return
	}
	w.swap(t, data)
}

func (w *SecretWatcher) swap(t *Table, data []byte) {
	w.Holder.Swap(t)
	w.Log.Info("routing table loaded", "serial", t.Serial, "hash", t.Hash, "partners", len(t.Partners), "endpoints", len(t.Endpoints))
	if data != nil && w.Cache != nil {
		if err := w.Cache.Save(data); err != nil {
			w.Log.Error(err, "saving the routing table to disk")
		}
	}
	if w.OnLoad != nil {
		w.OnLoad(t)
	}
}

// String names the watched Secret.
func (w *SecretWatcher) String() string { return fmt.Sprintf("%s/%s", w.Namespace, w.Name) }
