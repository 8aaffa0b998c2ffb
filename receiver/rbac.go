package receiver

// The receiver's permissions, generated into config/rbac/receiver/role.yaml: its own
// Lease and the routing Secret (by name only) in its namespace, and Partner status. The
// events API's delegated authentication and authorization are the bindings in
// config/rbac/bindings.yaml (system:auth-delegator, extension-apiserver-authentication-reader).
// +kubebuilder:rbac:groups="",namespace=hookgate-system,resources=secrets,resourceNames=hookgate-routing,verbs=get;list;watch
// Its Lease by name (the StatefulSet's pod; the chart lists one per replica), so that it
// can never renew or take the operator's leader Lease. create cannot be limited by name
// in RBAC; a Lease it creates under another name is one nobody else reads.
// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=hookgate-system,resources=leases,verbs=create
// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=hookgate-system,resources=leases,resourceNames=hookgate-receiver-0,verbs=get;update;delete
// The status Lease (statuslease.go), by name: replicas on PostgreSQL elect with it the one
// that prunes and writes Partner status.
// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=hookgate-system,resources=leases,resourceNames=hookgate-receiver-status,verbs=get;update
// +kubebuilder:rbac:groups=hookgate.io,resources=partners/status,verbs=patch
// Events on WebhookEndpoints (a destination's circuit).
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
