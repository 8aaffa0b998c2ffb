// Package controllers holds the operator's reconcilers: Partner, WebhookEndpoint and the
// routing-table builder.
package controllers

// The operator's permissions, generated into config/rbac/role.yaml.
// +kubebuilder:rbac:groups=hookgate.io,resources=partners;webhookendpoints,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=hookgate.io,resources=partners/status;webhookendpoints/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=hookgate.io,resources=partners/finalizers;webhookendpoints/finalizers,verbs=update
// Secrets: read (the data of user-made ones only by name, see tenantSecretClient), create
// and update its own; never delete (owner references do) or patch.
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=get;list;watch
// ConfigMaps: the public keys of RSA and JWT signing, its own only (cached by label).
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch;create;update
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// Leases only in the receiver namespace: the receivers' (read) and leader election's.
// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=hookgate-system,resources=leases,verbs=get;list;watch;create;update;patch;delete
