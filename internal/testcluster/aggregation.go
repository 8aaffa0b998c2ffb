package testcluster

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/hookgate/hookgate/internal/certs"
)

// frontProxyClient is the name the kube-apiserver's front-proxy client certificate has
// and aggregated servers accept (--requestheader-allowed-names).
const frontProxyClient = "front-proxy-client"

// configureAggregation sets the kube-apiserver up to proxy aggregated APIs as a cluster's
// does: a front-proxy client certificate signed by a request-header CA of its own (which
// it publishes in kube-system/extension-apiserver-authentication for aggregated servers
// to trust). Not --enable-aggregator-routing: envtest has no kube-proxy, so an aggregated
// server is reached through an ExternalName Service to 127.0.0.1, which the aggregator
// resolves only when it routes to the Service itself (an Endpoint on loopback is refused).
func configureAggregation(env *envtest.Environment, dir string) error {
	ca, err := certs.NewCA(certs.Request{CommonName: "hookgate-test-front-proxy-ca", NotBefore: time.Now(), Validity: 24 * time.Hour})
	if err != nil {
		return err
	}
	client, err := ca.Sign(certs.Request{CommonName: frontProxyClient, Usage: x509.ExtKeyUsageClientAuth, NotBefore: time.Now(), Validity: 24 * time.Hour})
	if err != nil {
		return err
	}
	files := map[string][]byte{"front-proxy-ca.crt": ca.CertPEM, "front-proxy-client.crt": client.CertPEM, "front-proxy-client.key": client.KeyPEM}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return err
		}
	}
	args := env.ControlPlane.GetAPIServer().Configure()
	args.Set("requestheader-client-ca-file", filepath.Join(dir, "front-proxy-ca.crt"))
	args.Set("requestheader-allowed-names", frontProxyClient)
	args.Set("requestheader-username-headers", "X-Remote-User")
	args.Set("requestheader-group-headers", "X-Remote-Group")
	args.Set("requestheader-extra-headers-prefix", "X-Remote-Extra-")
	args.Set("proxy-client-cert-file", filepath.Join(dir, "front-proxy-client.crt"))
	args.Set("proxy-client-key-file", filepath.Join(dir, "front-proxy-client.key"))
	return nil
}

// ServingCert makes a CA and a serving certificate for an aggregated server behind the
// Service namespace/name (the name the kube-apiserver checks) and 127.0.0.1, written as
// tls.crt and tls.key in dir. It returns the CA, PEM, for the APIService's caBundle.
func ServingCert(dir, namespace, name string) ([]byte, error) {
	ca, err := certs.NewCA(certs.Request{CommonName: "hookgate-test-serving-ca", NotBefore: time.Now(), Validity: 24 * time.Hour})
	if err != nil {
		return nil, err
	}
	host := name + "." + namespace + ".svc"
	serving, err := ca.Sign(certs.Request{CommonName: host, DNSNames: []string{host, "localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)},
		Usage: x509.ExtKeyUsageServerAuth, NotBefore: time.Now(), Validity: 24 * time.Hour})
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.crt"), serving.CertPEM, 0o600); err != nil {
		return nil, err
	}
	return ca.CertPEM, os.WriteFile(filepath.Join(dir, "tls.key"), serving.KeyPEM, 0o600)
}

// RegisterAPIService points the kube-apiserver at an aggregated server on 127.0.0.1:port
// for group/version: an ExternalName Service to loopback (a loopback EndpointSlice is
// refused) and an APIService with the server's CA. It waits until the APIService is
// Available.
func (c *Cluster) RegisterAPIService(ctx context.Context, group, version, namespace, name string, port int, caBundle []byte) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}
	if err := c.Client.Create(ctx, ns); err != nil && !isAlreadyExists(err) {
		return err
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeExternalName, ExternalName: "127.0.0.1",
			Ports: []corev1.ServicePort{{Name: "https", Port: int32(port), TargetPort: intstr.FromInt(port)}}, //nolint:gosec // a TCP port
		},
	}
	if err := c.Client.Create(ctx, svc); err != nil && !isAlreadyExists(err) {
		return err
	}
	apiService := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
		"metadata": map[string]any{"name": version + "." + group},
		"spec": map[string]any{
			"group": group, "version": version, "groupPriorityMinimum": int64(1000), "versionPriority": int64(15),
			"service":  map[string]any{"namespace": namespace, "name": name, "port": int64(port)},
			"caBundle": caBundle,
		},
	}}
	if err := c.Client.Create(ctx, apiService); err != nil {
		return fmt.Errorf("creating the APIService: %w", err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		got := &unstructured.Unstructured{}
		got.SetGroupVersionKind(apiService.GroupVersionKind())
		if err := c.Client.Get(ctx, client.ObjectKey{Name: apiService.GetName()}, got); err != nil {
			return err
		}
		conditions, _, _ := unstructured.NestedSlice(got.Object, "status", "conditions")
		last := "no condition yet"
		for _, cond := range conditions {
			m, _ := cond.(map[string]any)
			if m["type"] == "Available" {
				if m["status"] == "True" {
					return nil
				}
				last = fmt.Sprintf("%v: %v", m["reason"], m["message"])
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the APIService %s is not Available: %s", apiService.GetName(), last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func isAlreadyExists(err error) bool { return client.IgnoreAlreadyExists(err) == nil }

// EventsAPI is a receiver's events API made ready for the cluster: a serving certificate
// and a free loopback port. Args are the receiver's flags for them; Register points the
// kube-apiserver at it once the receiver is started.
type EventsAPI struct {
	Args     []string
	port     int
	caBundle []byte
	cluster  *Cluster
}

// PrepareEventsAPI makes the events API's certificate in dir and picks its port.
func (c *Cluster) PrepareEventsAPI(dir string) (*EventsAPI, error) {
	caBundle, err := ServingCert(dir, "hookgate-system", "hookgate-receiver")
	if err != nil {
		return nil, err
	}
	var lc net.ListenConfig
	l, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	return &EventsAPI{
		Args: []string{"--api-listen", fmt.Sprintf("127.0.0.1:%d", port), "--api-cert-dir", dir},
		port: port, caBundle: caBundle, cluster: c,
	}, nil
}

// Register creates the Service and APIService and waits until the API is Available.
func (e *EventsAPI) Register(ctx context.Context) error {
	return e.cluster.RegisterAPIService(ctx, "events.hookgate.io", "v1alpha1", "hookgate-system", "hookgate-receiver", e.port, e.caBundle)
}
