// Package eventsapi is the receiver's aggregated API server: WebhookEvents
// (events.hookgate.io/v1alpha1) served from the event store, behind the kube-apiserver,
// which authenticates and authorizes every request for it (delegated: TokenReview,
// SubjectAccessReview and the front proxy's request headers), so RBAC on webhookevents
// in one namespace grants nothing in another.
package eventsapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	openapinamer "k8s.io/apiserver/pkg/endpoints/openapi"
	registryrest "k8s.io/apiserver/pkg/registry/rest"
	genericapiserver "k8s.io/apiserver/pkg/server"
	genericoptions "k8s.io/apiserver/pkg/server/options"
	"k8s.io/apiserver/pkg/util/compatibility"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	eventsv1alpha1 "github.com/hookgate/hookgate/api/events/v1alpha1"
	"github.com/hookgate/hookgate/receiver/eventsapi/webhookevents"
)

// Options configure the events API server.
type Options struct {
	// Listener is where it serves HTTPS (--api-listen).
	Listener net.Listener
	// CertDir holds its serving certificate, tls.crt and tls.key, reloaded when they
	// change (a mounted Secret that the operator or cert-manager renews). Empty: a
	// self-signed certificate made at start, for an APIService that skips verification.
	CertDir string
	// KubeConfig reaches the kube-apiserver that authentication and authorization are
	// delegated to.
	KubeConfig *rest.Config
	// WorkDir is a private directory for the delegation client's kubeconfig.
	WorkDir string
	Storage webhookevents.Options
	Log     logr.Logger
}

// Run serves until ctx ends.
func Run(ctx context.Context, o Options) error {
	server, err := New(o)
	if err != nil {
		return err
	}
	return server.PrepareRun().RunWithContext(ctx)
}

// New builds the server.
func New(o Options) (*genericapiserver.GenericAPIServer, error) {
	if o.Listener == nil || o.KubeConfig == nil {
		return nil, errors.New("the events API needs a listener and a cluster connection")
	}
	cfg := genericapiserver.NewConfig(Codecs)
	cfg.EffectiveVersion = compatibility.DefaultBuildEffectiveVersion()
	// The receiver has its own /metrics; the API's handlers keep theirs to themselves.
	cfg.EnableMetrics = false
	cfg.EnableProfiling = false

	secure := genericoptions.NewSecureServingOptions().WithLoopback()
	secure.Listener = o.Listener
	if o.CertDir != "" {
		secure.ServerCert.CertKey.CertFile = filepath.Join(o.CertDir, "tls.crt")
		secure.ServerCert.CertKey.KeyFile = filepath.Join(o.CertDir, "tls.key")
	}
	if err := secure.MaybeDefaultWithSelfSignedCerts("localhost", nil, []net.IP{net.IPv4(127, 0, 0, 1)}); err != nil {
		return nil, fmt.Errorf("the events API's self-signed certificate: %w", err)
	}
	if err := secure.ApplyTo(&cfg.SecureServing, &cfg.LoopbackClientConfig); err != nil {
		return nil, fmt.Errorf("the events API's serving options: %w", err)
	}

	kubeconfig, err := writeKubeconfig(o.KubeConfig, o.WorkDir)
	if err != nil {
		return nil, err
	}
	authn := genericoptions.NewDelegatingAuthenticationOptions()
	authn.RemoteKubeConfigFile = kubeconfig
	cfg.OpenAPIConfig = genericapiserver.DefaultOpenAPIConfig(openAPIDefinitions, openapinamer.NewDefinitionNamer(Scheme))
	cfg.OpenAPIConfig.Info.Title, cfg.OpenAPIConfig.Info.Version = "hookgate events", eventsv1alpha1.GroupVersion.Version
	cfg.OpenAPIV3Config = genericapiserver.DefaultOpenAPIV3Config(openAPIDefinitions, openapinamer.NewDefinitionNamer(Scheme))
	cfg.OpenAPIV3Config.Info.Title, cfg.OpenAPIV3Config.Info.Version = "hookgate events", eventsv1alpha1.GroupVersion.Version
	if err := authn.ApplyTo(&cfg.Authentication, cfg.SecureServing, cfg.OpenAPIConfig); err != nil {
		return nil, fmt.Errorf("the events API's delegated authentication: %w", err)
	}
	authz := genericoptions.NewDelegatingAuthorizationOptions()
	authz.RemoteKubeConfigFile = kubeconfig
	if err := authz.ApplyTo(&cfg.Authorization); err != nil {
		return nil, fmt.Errorf("the events API's delegated authorization: %w", err)
	}

	server, err := cfg.Complete(nil).New("hookgate-events", genericapiserver.NewEmptyDelegate())
	if err != nil {
		return nil, err
	}
	group := genericapiserver.NewDefaultAPIGroupInfo(eventsv1alpha1.GroupVersion.Group, Scheme, metav1.ParameterCodec, Codecs)
	group.VersionedResourcesStorageMap[eventsv1alpha1.GroupVersion.Version] = map[string]registryrest.Storage{
		eventsv1alpha1.Resource: webhookevents.New(o.Storage),
	}
	if err := server.InstallAPIGroup(&group); err != nil {
		return nil, err
	}
	return server, nil
}

// writeKubeconfig writes cfg as the kubeconfig file the delegating options read (they
// take a path, or the in-cluster configuration, which cfg may already be).
func writeKubeconfig(cfg *rest.Config, dir string) (string, error) {
	if dir == "" {
		return "", errors.New("the events API needs a work directory")
	}
	host := cfg.Host
	if !strings.Contains(host, "://") {
		host = "https://" + host
	}
	c := clientcmdapi.NewConfig()
	c.Clusters["api"] = &clientcmdapi.Cluster{
		Server: host, CertificateAuthority: cfg.CAFile, CertificateAuthorityData: cfg.CAData,
		InsecureSkipTLSVerify: cfg.Insecure, TLSServerName: cfg.ServerName,
	}
	c.AuthInfos["receiver"] = &clientcmdapi.AuthInfo{
		ClientCertificate: cfg.CertFile, ClientCertificateData: cfg.CertData, ClientKey: cfg.KeyFile, ClientKeyData: cfg.KeyData,
		Token: cfg.BearerToken, TokenFile: cfg.BearerTokenFile, Username: cfg.Username, Password: cfg.Password,
	}
	c.Contexts["api"] = &clientcmdapi.Context{Cluster: "api", AuthInfo: "receiver"}
	c.CurrentContext = "api"
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "delegation.kubeconfig")
	if err := clientcmd.WriteToFile(*c, path); err != nil {
		return "", fmt.Errorf("writing the events API's delegation kubeconfig: %w", err)
	}
	return path, os.Chmod(path, 0o600)
}
