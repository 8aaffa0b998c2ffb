package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PartnerSpec describes an external partner that sends webhook events.
type PartnerSpec struct {
	// displayName is a human-readable name for the partner.
	// +kubebuilder:validation:MaxLength=256
	// +optional
	DisplayName string `json:"displayName,omitempty"`

	// tenantID identifies the organisational unit the partner's events come from; the
	// destination gets it in <prefix>Tenant-Id.
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[^\x00-\x1f\x7f]*$`
	// +optional
	TenantID string `json:"tenantID,omitempty"`

	// suspended refuses every request of this partner with 403 once it has authenticated.
	// +optional
	Suspended bool `json:"suspended,omitempty"`

	// credentials says where the partner's API key and signing secret live.
	// +kubebuilder:default={}
	// +optional
	Credentials PartnerCredentials `json:"credentials,omitempty"`

	// ipAllowlist lists the CIDRs (IPv4 or IPv6) the partner may send from.
	// Empty means any address.
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.all(c, isCIDR(c))",message="every entry must be a CIDR such as 203.0.113.0/24 or 2001:db8::/32"
	// +listType=set
	// +optional
	IPAllowlist []string `json:"ipAllowlist,omitempty"`

	// limits bound what the partner may take of the receiver's shared resources.
	// +optional
	Limits *PartnerLimits `json:"limits,omitempty"`

	// rateLimit is the partner's token bucket. When absent the receiver's defaults apply
	// (100 requests per second, burst 200).
	// +optional
	RateLimit *RateLimit `json:"rateLimit,omitempty"`
}

// PartnerCredentials locates and rotates a partner's credentials.
type PartnerCredentials struct {
	// secretName is the Secret holding keys apiKey and signingSecret. Defaults to
	// <partner name>-credentials. The operator creates it when absent and never changes a
	// Secret it did not create.
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	// +optional
	SecretName string `json:"secretName,omitempty"`

	// rotationGracePeriod is how long the previous credentials keep working after a
	// rotation (annotation hookgate.io/rotate). 0s revokes them at once.
	// +kubebuilder:default="24h"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
	// +optional
	RotationGracePeriod *metav1.Duration `json:"rotationGracePeriod,omitempty"`
}

// PartnerLimits bound one partner's share of the receiver.
type PartnerLimits struct {
	// maxStoredBytes bounds the payload bytes of the partner's events the receiver keeps;
	// past it new events get 507 Insufficient Storage until older ones are pruned. When
	// absent, the receiver's --max-stored-bytes-per-partner applies.
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:validation:XValidation:rule="quantity(string(self)).isGreaterThan(quantity('0'))",message="maxStoredBytes must be positive, such as 512Mi"
	// +optional
	MaxStoredBytes *resource.Quantity `json:"maxStoredBytes,omitempty"`
}

// The rate limit of a Partner that sets none: each receiver replica keeps its own
// bucket, so a partner may send up to replicas × this (docs/scale-out.md).
const (
	DefaultRequestsPerSecond = 100
	DefaultBurst             = 200
)

// RateLimit is a token bucket, kept by each receiver replica for itself.
type RateLimit struct {
	// requestsPerSecond is the sustained rate.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000
	RequestsPerSecond int32 `json:"requestsPerSecond"`

	// burst is the bucket size.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000
	// +optional
	Burst int32 `json:"burst,omitempty"`
}

// PartnerStatus is the observed state of a Partner.
type PartnerStatus struct {
	// observedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready and CredentialsReady.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// secretName is the Secret the credentials are read from.
	// +optional
	SecretName string `json:"secretName,omitempty"`

	// apiKeyPrefix is the first 8 characters of the current API key, to tell keys apart.
	// +optional
	APIKeyPrefix string `json:"apiKeyPrefix,omitempty"`

	// credentialsRotatedAt is when the credentials were last rotated.
	// +optional
	CredentialsRotatedAt *metav1.Time `json:"credentialsRotatedAt,omitempty"`

	// lastEventAt is when the partner's latest event was accepted (updated at most once a minute).
	// +optional
	LastEventAt *metav1.Time `json:"lastEventAt,omitempty"`

	// rateLimit is the rate the partner may send at, as the receivers apply it: each live
	// receiver replica keeps its own token bucket, so with N replicas behind a load
	// balancer the partner may reach N times the per-replica rate, such as
	// "100/s per receiver, 2 receivers: up to 200/s".
	// +optional
	RateLimit string `json:"rateLimit,omitempty"`
}

// Partner is an external system allowed to send webhook events.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,categories=hookgate
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Key",type=string,JSONPath=`.status.apiKeyPrefix`
// +kubebuilder:printcolumn:name="Rate",type=string,JSONPath=`.status.rateLimit`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Partner struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +kubebuilder:default={}
	// +optional
	Spec   PartnerSpec   `json:"spec,omitempty"`
	Status PartnerStatus `json:"status,omitempty"`
}

// CredentialsSecretName is the Secret the partner's credentials live in.
func (p *Partner) CredentialsSecretName() string {
	if p.Spec.Credentials.SecretName != "" {
		return p.Spec.Credentials.SecretName
	}
	return p.Name + "-credentials"
}

// PartnerList is a list of Partners.
// +kubebuilder:object:root=true
type PartnerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Partner `json:"items"`
}
