package receiver

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
	"github.com/hookgate/hookgate/internal/routing"
)

// partnerGuide is the partner documentation whose examples TestPartnerGuide runs.
const partnerGuide = "../docs/partner-guide.md"

// guideStatusExample names the status API example of the guide.
const guideStatusExample = "status"

// guideBlock is one runnable example of the guide: the scheme its marker names, its
// language (sh or js) and its code.
type guideBlock struct {
	scheme string
	lang   string
	code   string
	line   int
}

var (
	guideMarker = regexp.MustCompile(`^<!--\s*example:\s*([A-Za-z0-9_-]+)\s*-->\s*$`)
	guideFence  = regexp.MustCompile("^```\\s*([A-Za-z0-9_+-]*)\\s*$")
)

// guideRunners maps a fence's language to the interpreter that runs it and the
// normalised language name. A fence in one of these languages is meant to run, so it
// must carry a marker.
var guideRunners = map[string]string{"sh": "sh", "bash": "sh", "shell": "sh", "js": "js", "javascript": "js"}

// parseGuide returns the marked blocks of the guide. A marker must be followed (blank
// lines aside) by a sh or js fence, and every sh or js fence must have a marker.
func parseGuide(t *testing.T, path string) []guideBlock {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("reading the partner guide: %v", err)
	}
	defer f.Close()
	var blocks []guideBlock
	var problems []string
	scanner := bufio.NewScanner(f)
	lineNo := 0
	pending := "" // scheme of a marker waiting for its fence
	pendingLine := 0
	var cur *guideBlock
	var body []string
	inOther := false // inside a fence that is not runnable
	for scanner.Scan() {
		lineNo++
		line := scanner.Text()
		switch {
		case cur != nil:
			if strings.TrimSpace(line) == "```" {
				cur.code = strings.Join(body, "\n") + "\n"
				blocks = append(blocks, *cur)
				cur, body = nil, nil
				continue
			}
			body = append(body, line)
		case inOther:
			if strings.TrimSpace(line) == "```" {
				inOther = false
			}
		case guideMarker.MatchString(line):
			if pending != "" {
				problems = append(problems, fmt.Sprintf("line %d: marker %q is not followed by a sh or js block", pendingLine, pending))
			}
			pending, pendingLine = guideMarker.FindStringSubmatch(line)[1], lineNo
		case guideFence.MatchString(line):
			lang, runnable := guideRunners[strings.ToLower(guideFence.FindStringSubmatch(line)[1])]
			switch {
			case runnable && pending == "":
				problems = append(problems, fmt.Sprintf("line %d: a runnable block without an <!-- example: ... --> marker", lineNo))
				inOther = true
			case runnable:
				cur = &guideBlock{scheme: pending, lang: lang, line: lineNo}
			default:
				if pending != "" {
					problems = append(problems, fmt.Sprintf("line %d: marker %q is followed by a block that is neither sh nor js", pendingLine, pending))
				}
				inOther = true
			}
			pending = ""
		case strings.TrimSpace(line) == "":
		default:
			if pending != "" {
				problems = append(problems, fmt.Sprintf("line %d: marker %q is not followed by a sh or js block", pendingLine, pending))
				pending = ""
			}
		}
	}
	if err := scanner.Err(); err != nil {
		t.Fatalf("reading the partner guide: %v", err)
	}
	if cur != nil {
		problems = append(problems, fmt.Sprintf("line %d: the block never ends", cur.line))
	}
	if pending != "" {
		problems = append(problems, fmt.Sprintf("line %d: marker %q is not followed by a sh or js block", pendingLine, pending))
	}
	if len(problems) > 0 {
		t.Fatalf("%s is malformed:\n  %s", path, strings.Join(problems, "\n  "))
	}
	return blocks
}

// guideKeys are the credentials of one test run.
type guideKeys struct {
	apiKey, partnerSecret string
	endpointSecret        string // HMAC, Stripe, GitHub, Slack, Shopify
	standardSecret        string // whsec_<base64>
	rsaKey                *rsa.PrivateKey
	jwtKey                *rsa.PrivateKey
	jwksURL               string
}

const (
	guideNamespace   = "partners"
	guidePartner     = "acme"
	guideJWTIssuer   = "https://auth.acme.example/"
	guideJWTAudience = "hookgate"
	guideJWTKeyID    = "acme-2026-11"
)

func guidePrivateKeyPEM(t *testing.T, key *rsa.PrivateKey) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

func guidePublicKeyPEM(t *testing.T, key *rsa.PublicKey) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// guideVerification returns a Verification of the given type.
func guideVerification(typ hookgatev1alpha1.VerificationType) routing.Verification {
	return routing.Verification{Type: typ, Tolerance: routing.Duration(5 * time.Minute)}
}

// guideScheme is one verification scheme of the guide: how its endpoint is configured and
// which inputs its examples get, besides HOOKGATE_URL, HOOKGATE_PATH and API_KEY.
type guideScheme struct {
	scheme hookgatev1alpha1.VerificationType
	// endpoint configures the endpoint's verification (the partner's own credentials are
	// always in the table).
	endpoint func(t *testing.T, k *guideKeys, e *routing.Endpoint)
	env      func(t *testing.T, k *guideKeys) map[string]string
}

// guideEndpointSecret configures a scheme that signs with the endpoint's shared secret.
func guideEndpointSecret(_ *testing.T, k *guideKeys, e *routing.Endpoint) {
	e.Verification.Secret = routing.SecretValue(k.endpointSecret)
}

func guideSigningSecretEnv(_ *testing.T, k *guideKeys) map[string]string {
	return map[string]string{"SIGNING_SECRET": k.endpointSecret}
}

var guideSchemes = []guideScheme{
	{
		scheme:   hookgatev1alpha1.VerificationPartnerHMAC,
		endpoint: func(*testing.T, *guideKeys, *routing.Endpoint) {},
		env: func(_ *testing.T, k *guideKeys) map[string]string {
			return map[string]string{"SIGNING_SECRET": k.partnerSecret}
		},
	},
	{
		scheme:   hookgatev1alpha1.VerificationAPIKey,
		endpoint: func(*testing.T, *guideKeys, *routing.Endpoint) {},
		env:      func(*testing.T, *guideKeys) map[string]string { return nil },
	},
	{
		scheme: hookgatev1alpha1.VerificationJWT,
		endpoint: func(_ *testing.T, k *guideKeys, e *routing.Endpoint) {
			e.Verification.JWKSURL, e.Verification.Issuer, e.Verification.Audience = k.jwksURL, guideJWTIssuer, guideJWTAudience
		},
		env: func(t *testing.T, k *guideKeys) map[string]string {
			return map[string]string{
				"PRIVATE_KEY_PEM": guidePrivateKeyPEM(t, k.jwtKey),
				"JWT_ISSUER":      guideJWTIssuer, "JWT_AUDIENCE": guideJWTAudience, "JWT_KID": guideJWTKeyID,
			}
		},
	},
	{
		scheme: hookgatev1alpha1.VerificationRSASignature,
		endpoint: func(t *testing.T, k *guideKeys, e *routing.Endpoint) {
			e.Verification.Header = "X-Signature"
			e.Verification.Secret = routing.SecretValue(guidePublicKeyPEM(t, &k.rsaKey.PublicKey))
		},
		env: func(t *testing.T, k *guideKeys) map[string]string {
			return map[string]string{"PRIVATE_KEY_PEM": guidePrivateKeyPEM(t, k.rsaKey)}
		},
	},
	{
		scheme: hookgatev1alpha1.VerificationStandardWebhooks,
		endpoint: func(_ *testing.T, k *guideKeys, e *routing.Endpoint) {
			e.Verification.Secret = routing.SecretValue(k.standardSecret)
		},
		env: func(_ *testing.T, k *guideKeys) map[string]string {
			return map[string]string{"SIGNING_SECRET": k.standardSecret}
		},
	},
	{
		// As config/samples/hookgate_v1alpha1_webhookendpoint_hmac.yaml, which the guide names.
		scheme: hookgatev1alpha1.VerificationHMAC,
		endpoint: func(t *testing.T, k *guideKeys, e *routing.Endpoint) {
			guideEndpointSecret(t, k, e)
			e.Verification.Header, e.Verification.Prefix, e.Verification.Encoding = "X-Acme-Signature", "sha256=", "hex"
			e.Verification.SignedContent, e.Verification.TimestampHeader = "{timestamp}.{body}", "X-Acme-Timestamp"
			e.Idempotency = routing.Idempotency{Header: "X-Acme-Delivery", Window: routing.Duration(24 * time.Hour)}
		},
		env: guideSigningSecretEnv,
	},
	{scheme: hookgatev1alpha1.VerificationStripe, endpoint: guideEndpointSecret, env: guideSigningSecretEnv},
	{scheme: hookgatev1alpha1.VerificationGitHub, endpoint: guideEndpointSecret, env: guideSigningSecretEnv},
	{scheme: hookgatev1alpha1.VerificationSlack, endpoint: guideEndpointSecret, env: guideSigningSecretEnv},
	{scheme: hookgatev1alpha1.VerificationShopify, endpoint: guideEndpointSecret, env: guideSigningSecretEnv},
}

// guideAnswer is what an example prints: the receiver's JSON answer.
type guideAnswer struct {
	UUID      string `json:"uuid"`
	EventID   string `json:"eventId"`
	Type      string `json:"type"`
	Status    string `json:"status"`
	Duplicate bool   `json:"duplicate"`
	Error     string `json:"error"`
	Message   string `json:"message"`
}

// TestPartnerGuide runs every example of docs/partner-guide.md against a real receiver
// configured for the example's scheme: each must be answered 202 (checked in the JSON it
// prints and in the receiver's audit log), and the status example must then find the event.
func TestPartnerGuide(t *testing.T) {
	for _, tool := range []string{"bash", "openssl", "curl", "node"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed to run the partner guide's examples (.ci/run installs it): %v", tool, err)
		}
	}
	blocks := parseGuide(t, partnerGuide)
	if len(blocks) == 0 {
		t.Fatalf("%s has no <!-- example: ... --> blocks", partnerGuide)
	}
	byScheme := map[string][]guideBlock{}
	known := map[string]bool{guideStatusExample: true}
	for _, s := range guideSchemes {
		known[string(s.scheme)] = true
	}
	for _, b := range blocks {
		if !known[b.scheme] {
			t.Fatalf("%s line %d: example marker names %q, which is neither a verification type nor %q", partnerGuide, b.line, b.scheme, guideStatusExample)
		}
		byScheme[b.scheme] = append(byScheme[b.scheme], b)
	}
	// Every verification type of the API has a configuration here, so that a new type
	// cannot go without a partner example.
	configured := map[hookgatev1alpha1.VerificationType]bool{}
	for _, s := range guideSchemes {
		configured[s.scheme] = true
	}
	for _, typ := range hookgatev1alpha1.VerificationTypes {
		if !configured[typ] {
			t.Fatalf("verification type %s has no entry in guideSchemes: add one and an example to %s", typ, partnerGuide)
		}
	}
	for _, s := range guideSchemes {
		if len(byScheme[string(s.scheme)]) == 0 {
			t.Fatalf("%s has no example for verification type %s", partnerGuide, s.scheme)
		}
	}
	statusBlocks := byScheme[guideStatusExample]
	if len(statusBlocks) == 0 {
		t.Fatalf("%s has no status API example (<!-- example: %s -->)", partnerGuide, guideStatusExample)
	}

	keys := newGuideKeys(t)
	started := time.Now()
	for _, s := range guideSchemes {
		t.Run(string(s.scheme), func(t *testing.T) {
			path := "/api/webhooks/" + guideNamespace + "/" + strings.ToLower(string(s.scheme))
			rcv := startTestReceiver(t, guideTable(t, keys, s, path), nil)
			env := map[string]string{"HOOKGATE_URL": rcv.url, "HOOKGATE_PATH": path, "API_KEY": keys.apiKey}
			for k, v := range s.env(t, keys) {
				env[k] = v
			}
			for _, b := range byScheme[string(s.scheme)] {
				name := fmt.Sprintf("%s example at line %d", b.lang, b.line)
				answer := runGuideBlock(t, rcv, b, env)
				if answer.UUID == "" || answer.Duplicate || (answer.Status != "Stored" && answer.Status != "Queued") {
					t.Fatalf("%s: the receiver did not accept the event: %+v", name, answer)
				}
				// Every example sends an event id where its scheme reads one.
				if answer.EventID == "" || answer.EventID == answer.UUID {
					t.Errorf("%s: the event id was not found where the guide says (eventId %q, uuid %q)", name, answer.EventID, answer.UUID)
				}
				assertAudited(t, rcv, answer.UUID, http.StatusAccepted)

				// The status example finds the event with the partner's API key, whatever
				// the endpoint's scheme.
				for _, sb := range statusBlocks {
					statusEnv := map[string]string{"HOOKGATE_URL": rcv.url, "API_KEY": keys.apiKey, "EVENT_ID": answer.EventID}
					status := runGuideBlock(t, rcv, sb, statusEnv)
					if status.UUID != answer.UUID || status.EventID != answer.EventID || status.Status != "Stored" || status.Type == "" {
						t.Fatalf("status example at line %d for the %s: %+v", sb.line, name, status)
					}
				}
				t.Logf("%s: 202, eventId %s, uuid %s; the status example found it", name, answer.EventID, answer.UUID)
			}
		})
	}
	t.Logf("%d examples and the status example run against %d receivers in %s", len(blocks)-len(statusBlocks), len(guideSchemes), time.Since(started).Round(time.Millisecond))
}

func newGuideKeys(t *testing.T) *guideKeys {
	t.Helper()
	random := func(enc *base64.Encoding) string {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			t.Fatal(err)
		}
		return enc.EncodeToString(b)
	}
	k := &guideKeys{
		apiKey:         "hgk_" + random(base64.RawURLEncoding),
		partnerSecret:  "whsec_" + random(base64.StdEncoding),
		endpointSecret: "shared_" + random(base64.RawURLEncoding),
		standardSecret: "whsec_" + random(base64.StdEncoding),
	}
	var err error
	if k.rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	if k.jwtKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &k.jwtKey.PublicKey, KeyID: guideJWTKeyID, Algorithm: "RS256", Use: "sig"}}}
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(set)
	}))
	t.Cleanup(jwks.Close)
	k.jwksURL = jwks.URL + "/.well-known/jwks.json"
	return k
}

// guideTable is a routing table with the partner and one endpoint of the scheme, without
// a destination, so that accepted events are Stored.
func guideTable(t *testing.T, k *guideKeys, s guideScheme, path string) *routing.Table {
	t.Helper()
	e := routing.Endpoint{
		Namespace: guideNamespace, Name: strings.ToLower(string(s.scheme)), Path: path,
		Verification: guideVerification(s.scheme),
		Idempotency:  routing.Idempotency{Window: routing.Duration(72 * time.Hour)},
		MaxBodyBytes: 1 << 20,
		Retry:        routing.Retry{MaxAttempts: 12, InitialBackoff: routing.Duration(5 * time.Second), MaxBackoff: routing.Duration(time.Hour)},
	}
	if !s.scheme.UsesPartnerCredentials() {
		e.Partners = []string{guidePartner}
	}
	s.endpoint(t, k, &e)
	return &routing.Table{
		Partners: []routing.Partner{{Namespace: guideNamespace, Name: guidePartner,
			Credentials: []routing.Credential{{APIKeySHA256: routing.HashAPIKey(k.apiKey), SigningSecret: routing.SecretValue(k.partnerSecret)}}}},
		Endpoints: []routing.Endpoint{e},
	}
}

// runGuideBlock writes the block to a file, runs it with bash or node in an environment
// holding only env (and PATH, HOME, TMPDIR), and parses the JSON answer it prints.
func runGuideBlock(t *testing.T, rcv *testReceiver, b guideBlock, env map[string]string) guideAnswer {
	t.Helper()
	interpreter, file := "bash", "example.sh"
	if b.lang == "js" {
		interpreter, file = "node", "example.js"
	}
	path := filepath.Join(t.TempDir(), file)
	if err := os.WriteFile(path, []byte(b.code), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, interpreter, path)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "TMPDIR=" + os.TempDir()}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			t.Fatalf("%s example (%s line %d) did not run: %v", b.scheme, partnerGuide, b.line, err)
		}
		t.Fatalf("%s example (%s line %d) failed: %v\nstdout: %s\nstderr: %s\naudit log:\n%s",
			b.scheme, partnerGuide, b.line, err, out, stderr.String(), rcv.audit.String())
	}
	var answer guideAnswer
	if err := json.Unmarshal([]byte(strings.TrimSpace(string(out))), &answer); err != nil {
		t.Fatalf("%s example (%s line %d) did not print the receiver's JSON answer: %v\nstdout: %s\nstderr: %s",
			b.scheme, partnerGuide, b.line, err, out, stderr.String())
	}
	return answer
}
