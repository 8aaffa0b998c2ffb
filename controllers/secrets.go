package controllers

import (
	"context"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
)

// tenantSecretClient reads Secrets without caching the data of Secrets hookgate does not
// own. The manager's cache holds every watched Secret's metadata but the data only of
// those labelled managed-by=hookgate (the ones the operator makes; see
// dropForeignSecretData); the data of a user-made Secret that a Partner or endpoint names
// is read from the API server when its resourceVersion changes and kept only while it is
// read. So the operator never holds every Secret of the cluster in memory.
type tenantSecretClient struct {
	client.Client
	api client.Reader

	mu   sync.Mutex
	memo map[types.NamespacedName]*corev1.Secret
}

func newTenantSecretClient(cached client.Client, api client.Reader) *tenantSecretClient {
	return &tenantSecretClient{Client: cached, api: api, memo: map[types.NamespacedName]*corev1.Secret{}}
}

// managed reports whether the operator made the Secret, so that its data is cached.
func managed(o metav1.Object) bool {
	return o.GetLabels()[hookgatev1alpha1.LabelManagedBy] == hookgatev1alpha1.ManagedByValue
}

// dropForeignSecretData is the cache transform for Secrets: it keeps the metadata of
// every Secret (to see changes) and the data only of the operator's own.
func dropForeignSecretData(obj any) (any, error) {
	if s, ok := obj.(*corev1.Secret); ok {
		s.ManagedFields = nil
		if !managed(s) {
			s.Data, s.StringData = nil, nil
		}
	}
	return obj, nil
}

// Get reads Secrets as described above and everything else from the cache.
func (c *tenantSecretClient) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	secret, ok := obj.(*corev1.Secret)
	if !ok {
		return c.Client.Get(ctx, key, obj, opts...)
	}
	if err := c.Client.Get(ctx, key, secret, opts...); err != nil {
		if apierrors.IsNotFound(err) {
			c.forget(key)
		}
		return err
	}
	if managed(secret) {
		return nil
	}
	rv := secret.ResourceVersion
	c.mu.Lock()
	cached := c.memo[key]
	c.mu.Unlock()
	if cached != nil && cached.ResourceVersion == rv {
		cached.DeepCopyInto(secret)
		return nil
	}
	fresh := &corev1.Secret{}
	if err := c.api.Get(ctx, key, fresh); err != nil {
		if apierrors.IsNotFound(err) {
			c.forget(key)
		}
		return err
	}
	c.mu.Lock()
	c.memo[key] = fresh
	c.mu.Unlock()
	fresh.DeepCopyInto(secret)
	return nil
}

func (c *tenantSecretClient) forget(key types.NamespacedName) {
	c.mu.Lock()
	delete(c.memo, key)
	c.mu.Unlock()
}
