package receiver

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
	"github.com/hookgate/hookgate/internal/routing"
	"github.com/hookgate/hookgate/internal/signing"
	"github.com/hookgate/hookgate/internal/testcluster"
)

// destinationExamples is hack/destination-examples with its npm packages installed
// (make test runs npm ci there). Missing packages fail the test in CI and skip it
// elsewhere, saying how to get them.
func destinationExamples(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(testcluster.RepoRoot(), "hack", "destination-examples")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "express-jwt")); err != nil {
		msg := "hack/destination-examples has no node_modules: run 'make node-deps' (npm ci there)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("node is not installed")
	}
	return dir
}

// nodeDestination runs one of the example destinations and returns its address and the
// JSON lines it prints, one per request.
func nodeDestination(t *testing.T, script string, env ...string) (string, <-chan map[string]any) {
	t.Helper()
	dir := destinationExamples(t)
	addr := freeLoopbackAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command("node", filepath.Join(dir, script))
	cmd.Env = append(os.Environ(), append(env, "PORT="+port)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := make(chan map[string]any, 100)
	listening := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "Server listening") {
				close(listening)
				continue
			}
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				lines <- m
			}
		}
	}()
	select {
	case <-listening:
	case <-time.After(20 * time.Second):
		t.Fatalf("%s did not start", script)
	}
	return addr, lines
}

func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func nextLine(t *testing.T, lines <-chan map[string]any) map[string]any {
	t.Helper()
	select {
	case m := <-lines:
		return m
	case <-time.After(30 * time.Second):
		t.Fatal("the destination saw no request within 30s")
		return nil
	}
}

// signedEndpoint adds to the fixture an endpoint forwarding to url with signing.
func (f *fixture) signedEndpoint(name, url string, sg *routing.Signing, prefix string) {
	f.forward(name, url)
	e := &f.table.Endpoints[len(f.table.Endpoints)-1]
	e.Destination.Signing, e.Destination.MetadataPrefix = sg, prefix
	for i := range f.table.Partners {
		if f.table.Partners[i].Name == "acme" {
			f.table.Partners[i].TenantID = "OU1243"
		}
	}
}

func sendSigned(t *testing.T, rcv *testReceiver, id string) string {
	t.Helper()
	return sendTo(t, rcv, "signed", id)
}

func sendTo(t *testing.T, rcv *testReceiver, endpoint, id string) string {
	t.Helper()
	body := fmt.Appendf(nil, `{"id":%q,"type":"orders/placed","data":{"amount":120}}`, id)
	resp := do(t, nil, newRequest(t, http.MethodPost, rcv.url+"/api/webhooks/"+endpoint, partnerHMACHeaders(acmeKey, acmeSecret, time.Now(), body), body))
	if resp.status != http.StatusAccepted {
		t.Fatalf("ingest: %d %s", resp.status, resp.raw)
	}
	return resp.body["uuid"].(string)
}

// TestJWTDeliveriesVerifyWithTheSeedsExpressApp: the destination of webhook-endpoint-jwt's
// guide (express, express-jwt, jwks-rsa from npm, its code as written there, trustedIssuer
// the endpoint's namespace issuer under the receiver's --public-url) verifies hookgate's JWT deliveries through the JWKS URL and
// reads the X-Pps- headers; a token for another audience, or an expired one, is refused.
func TestJWTDeliveriesVerifyWithTheSeedsExpressApp(t *testing.T) {
	key, err := signing.NewRSAKey()
	if err != nil {
		t.Fatal(err)
	}
	priv, _ := signing.ParseRSAKey(key)
	kid, _ := signing.KeyID(&priv.PublicKey)
	listen := freeLoopbackAddr(t)
	publicURL := "http://" + listen
	issuer := publicURL + "/issuers/" + fixtureNamespace
	dest, lines := nodeDestination(t, "jwt-destination.js", "TRUSTED_ISSUER="+issuer, "AUDIENCE=test-tenant")

	f := newFixture(t)
	f.signedEndpoint("signed", "http://"+dest+"/receive-webhook", &routing.Signing{Type: hookgatev1alpha1.SigningJWT, Audience: "test-tenant", Keys: []routing.SigningKey{{Key: routing.SecretValue(key), ID: kid}}}, "X-Pps-")
	rcv := startTestReceiver(t, f.table, func(o *Options) { o.Listen, o.PublicURL = listen, publicURL })

	discovery := do(t, nil, newRequest(t, http.MethodGet, issuer+"/.well-known/openid-configuration", nil, nil))
	if discovery.status != http.StatusOK || discovery.body["issuer"] != issuer || discovery.body["jwks_uri"] != issuer+"/.well-known/jwks.json" {
		t.Fatalf("discovery: %d %s", discovery.status, discovery.raw)
	}

	uuid := sendSigned(t, rcv, "evt_jwt_1")
	got := nextLine(t, lines)
	if got["verified"] != true || got["sub"] != "acme" || got["jti"] != uuid || got["topic"] != "orders/placed" || got["tenant"] != "OU1243" || got["webhookId"] != uuid {
		t.Fatalf("the express app saw %v; want a verified token for acme, jti %s, and the X-Pps- headers", got, uuid)
	}
	if _, err := time.Parse(time.RFC3339Nano, got["triggeredAt"].(string)); err != nil {
		t.Fatalf("X-Pps-Triggered-At %v: %v", got["triggeredAt"], err)
	}
	waitStatus(t, rcv, "evt_jwt_1", "Delivered")

	// Tokens the app must refuse, signed with the very key the JWKS serves.
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: priv}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, c := range []struct {
		name   string
		claims jwt.Claims
	}{
		{"another audience", jwt.Claims{Issuer: issuer, Audience: jwt.Audience{"another-tenant"}, Subject: "acme", IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(time.Minute))}},
		{"expired", jwt.Claims{Issuer: issuer, Audience: jwt.Audience{"test-tenant"}, Subject: "acme", IssuedAt: jwt.NewNumericDate(now.Add(-10 * time.Minute)), Expiry: jwt.NewNumericDate(now.Add(-5 * time.Minute))}},
	} {
		token, err := jwt.Signed(signer).Claims(c.claims).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		resp := do(t, nil, newRequest(t, http.MethodPost, "http://"+dest+"/receive-webhook", map[string]string{"Authorization": "Bearer " + token, "Content-Type": "application/json"}, []byte(`{}`)))
		line := nextLine(t, lines)
		if resp.status != http.StatusForbidden || line["verified"] != false {
			t.Errorf("%s token: %d %q, app saw %v; want 403 Invalid token", c.name, resp.status, resp.raw, line)
		}
	}
}

// TestJWTIssuerPerNamespace: namespace rival's endpoint, with the same audience and a
// partner of the same name as namespace partners', delivers JWTs to partners' destination,
// which verifies as webhook-endpoint-jwt's example does (express-jwt and jwks-rsa, issuer
// and audience, keys from ${issuer}/.well-known/jwks.json) against partners' issuer:
// partners' own deliveries are accepted, rival's are refused with 403 and fail. Each
// issuer's key set holds its namespace's keys only, and the receiver-wide key paths of
// earlier releases serve no keys.
func TestJWTIssuerPerNamespace(t *testing.T) {
	const rivalNS, rivalKey, rivalSecret = "rival", "hgk_rival-key", "whsec_rival-secret"
	newKey := func() (routing.SigningKey, string) {
		pemKey, err := signing.NewRSAKey()
		if err != nil {
			t.Fatal(err)
		}
		priv, _ := signing.ParseRSAKey(pemKey)
		kid, _ := signing.KeyID(&priv.PublicKey)
		return routing.SigningKey{Key: routing.SecretValue(pemKey), ID: kid}, kid
	}
	ownKey, ownKID := newKey()
	rivalSigningKey, rivalKID := newKey()
	listen := freeLoopbackAddr(t)
	publicURL := "http://" + listen
	issuer := publicURL + "/issuers/" + fixtureNamespace
	dest, lines := nodeDestination(t, "jwt-destination.js", "TRUSTED_ISSUER="+issuer, "AUDIENCE=orders-service")
	destURL := "http://" + dest + "/receive-webhook"

	f := newFixture(t)
	f.signedEndpoint("signed", destURL, &routing.Signing{Type: hookgatev1alpha1.SigningJWT, Audience: "orders-service", Keys: []routing.SigningKey{ownKey}}, "")
	// The rival: a Partner named acme too, an endpoint of its own namespace with the same
	// audience, pointed at the same destination.
	rival := f.table.Endpoints[len(f.table.Endpoints)-1]
	rival.Namespace, rival.Path = rivalNS, "/api/webhooks/"+rivalNS+"/signed"
	rival.Retry = routing.Retry{MaxAttempts: 1, InitialBackoff: routing.Duration(100 * time.Millisecond), MaxBackoff: routing.Duration(time.Second)}
	rival.Destination = &routing.Destination{URL: destURL, Timeout: routing.Duration(5 * time.Second),
		Signing: &routing.Signing{Type: hookgatev1alpha1.SigningJWT, Audience: "orders-service", Keys: []routing.SigningKey{rivalSigningKey}}}
	f.table.Endpoints = append(f.table.Endpoints, rival)
	f.table.Partners = append(f.table.Partners, routing.Partner{Namespace: rivalNS, Name: "acme", UID: "uid-rival-acme",
		Credentials: []routing.Credential{{APIKeySHA256: routing.HashAPIKey(rivalKey), SigningSecret: rivalSecret}}})
	rcv := startTestReceiver(t, f.table, func(o *Options) { o.Listen, o.PublicURL = listen, publicURL })

	kids := func(url string) []string {
		resp := do(t, nil, newRequest(t, http.MethodGet, url, nil, nil))
		if resp.status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", url, resp.status, resp.raw)
		}
		var set jose.JSONWebKeySet
		if err := json.Unmarshal([]byte(resp.raw), &set); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, k := range set.Keys {
			out = append(out, k.KeyID)
		}
		return out
	}
	if got := kids(issuer + "/.well-known/jwks.json"); len(got) != 1 || got[0] != ownKID {
		t.Fatalf("partners' key set holds %v, want only its own kid %s", got, ownKID)
	}
	if got := kids(publicURL + "/issuers/" + rivalNS + "/.well-known/jwks.json"); len(got) != 1 || got[0] != rivalKID {
		t.Fatalf("rival's key set holds %v, want only its own kid %s", got, rivalKID)
	}
	if got := kids(publicURL + "/issuers/no-such-namespace/.well-known/jwks.json"); len(got) != 0 {
		t.Fatalf("a namespace without JWT destinations serves %v", got)
	}
	for _, path := range []string{"/.well-known/jwks.json", "/.well-known/openid-configuration"} {
		if resp := do(t, nil, newRequest(t, http.MethodGet, publicURL+path, nil, nil)); resp.status != http.StatusNotFound {
			t.Errorf("GET %s: %d %s, want 404 (no receiver-wide issuer)", path, resp.status, resp.raw)
		}
	}

	uuid := sendTo(t, rcv, "signed", "evt_own")
	if got := nextLine(t, lines); got["verified"] != true || got["jti"] != uuid {
		t.Fatalf("partners' own delivery: the destination saw %v, want it verified", got)
	}
	waitStatus(t, rcv, "evt_own", "Delivered")

	body := []byte(`{"id":"evt_forged","type":"orders/placed","data":{"amount":120}}`)
	resp := do(t, nil, newRequest(t, http.MethodPost, rcv.url+rival.Path, partnerHMACHeaders(rivalKey, rivalSecret, time.Now(), body), body))
	if resp.status != http.StatusAccepted {
		t.Fatalf("rival ingest: %d %s", resp.status, resp.raw)
	}
	if got := nextLine(t, lines); got["verified"] != false {
		t.Fatalf("rival's delivery: the destination saw %v, want it refused", got)
	}
	testcluster.Eventually(t, 20*time.Second, "rival's event Failed with HTTP 403", func() error {
		st := do(t, nil, newRequest(t, http.MethodGet, rcv.url+"/api/webhooks/status?eventId=evt_forged", map[string]string{"x-api-key": rivalKey}, nil))
		if st.body["status"] != "Failed" || st.body["lastResponseCode"] != float64(http.StatusForbidden) {
			return fmt.Errorf("%d %s", st.status, st.raw)
		}
		return nil
	})
}

// TestRSADeliveriesVerifyWithThePublishedKey: a program that knows only the Base64 public
// key verifies RSA-signed deliveries with crypto.verify('RSA-SHA256'), as
// outbound-webhooks-rsa describes, in the header the endpoint chose.
func TestRSADeliveriesVerifyWithThePublishedKey(t *testing.T) {
	key, err := signing.NewRSAKey()
	if err != nil {
		t.Fatal(err)
	}
	priv, _ := signing.ParseRSAKey(key)
	public, _ := signing.PublicKeyBase64(&priv.PublicKey)
	dest, lines := nodeDestination(t, "rsa-destination.js", "PUBLIC_KEY="+public, "SIGNATURE_HEADER=X-Asteroid-Signature")
	f := newFixture(t)
	f.signedEndpoint("signed", "http://"+dest+"/", &routing.Signing{Type: "RSA", Header: "X-Asteroid-Signature", Keys: []routing.SigningKey{{Key: routing.SecretValue(key)}}}, "")
	rcv := startTestReceiver(t, f.table, nil)
	uuid := sendSigned(t, rcv, "evt_rsa_1")
	if got := nextLine(t, lines); got["verified"] != true || got["webhookId"] != uuid {
		t.Fatalf("the destination saw %v", got)
	}
	waitStatus(t, rcv, "evt_rsa_1", "Delivered")
}

func waitStatus(t *testing.T, rcv *testReceiver, eventID, want string) {
	t.Helper()
	testcluster.Eventually(t, 20*time.Second, "status "+want, func() error {
		st := do(t, nil, newRequest(t, http.MethodGet, rcv.url+"/api/webhooks/status?eventId="+eventID, map[string]string{"x-api-key": acmeKey}, nil))
		if st.body["status"] != want {
			return fmt.Errorf("%d %s", st.status, st.raw)
		}
		return nil
	})
}
