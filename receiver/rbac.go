package receiver

// The receiver's permissions, generated into config/rbac/receiver/role.yaml: its own
// Lease and the routing Secret (by name only) in its namespace, and the WebhookEvent view.
// +kubebuilder:rbac:groups="",namespace=hookgate-system,resources=secrets,resourceNames=hookgate-routing,verbs=get;list;watch
// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=hookgate-system,resources=leases,verbs=get;create;update;delete
// +kubebuilder:rbac:groups=hookgate.io,resources=webhookevents,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=hookgate.io,resources=partners/status,verbs=patch
