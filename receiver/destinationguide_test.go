package receiver

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookgate/hookgate/internal/routing"
	"github.com/hookgate/hookgate/internal/signing"
	"github.com/hookgate/hookgate/internal/testcluster"
)

// destinationGuide is the destination owners' documentation whose verifiers
// TestDestinationGuide runs.
const destinationGuide = "../docs/destination-guide.md"

var (
	verifyMarker = regexp.MustCompile(`^<!--\s*verify:\s*([A-Za-z]+)\s+([a-z]+)\s*-->\s*$`)
	verifyFence  = regexp.MustCompile("^```\\s*([a-z]*)\\s*$")
)

type verifierBlock struct {
	signing, lang, code string
	line                int
}

// parseVerifiers returns the marked blocks; every go, js or python fence must be marked,
// and a marker's language must be its fence's.
func parseVerifiers(t *testing.T) []verifierBlock {
	t.Helper()
	raw, err := os.ReadFile(destinationGuide)
	if err != nil {
		t.Fatal(err)
	}
	var out []verifierBlock
	var pending *verifierBlock
	var code *strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if code != nil {
			if strings.TrimSpace(line) == "```" {
				pending.code = code.String()
				out = append(out, *pending)
				pending, code = nil, nil
				continue
			}
			code.WriteString(line + "\n")
			continue
		}
		if m := verifyMarker.FindStringSubmatch(line); m != nil {
			pending = &verifierBlock{signing: m[1], lang: m[2], line: n}
			continue
		}
		if m := verifyFence.FindStringSubmatch(line); m != nil && m[1] != "" {
			switch {
			case m[1] != "go" && m[1] != "js" && m[1] != "python":
			case pending == nil:
				t.Fatalf("%s line %d: a %s block without a <!-- verify: <type> %s --> marker", destinationGuide, n, m[1], m[1])
			case pending.lang != m[1]:
				t.Fatalf("%s line %d: marker says %s, fence %s", destinationGuide, n, pending.lang, m[1])
			default:
				code = &strings.Builder{}
			}
		}
	}
	return out
}

// captured is the last delivery a path of the sink received.
type captured struct {
	header http.Header
	body   []byte
}

// TestDestinationGuide runs every verifier of docs/destination-guide.md (Go, Node and
// Python, for Standard Webhooks, RSA and JWT) against a real delivery of a real receiver:
// each must print "verified", and must refuse the same delivery with its body changed.
func TestDestinationGuide(t *testing.T) {
	blocks := parseVerifiers(t)
	examples := destinationExamples(t)
	python := "/usr/bin/python3" // Debian's, with python3-cryptography and python3-jwt
	if _, err := os.Stat(python); err != nil {
		python = "python3"
	}
	var mu sync.Mutex
	got := map[string]captured{}
	sink := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got[r.URL.Path] = captured{header: r.Header.Clone(), body: body}
		mu.Unlock()
	}))
	defer sink.Close()

	rsaPEM, err := signing.NewRSAKey()
	if err != nil {
		t.Fatal(err)
	}
	rsaPriv, _ := signing.ParseRSAKey(rsaPEM)
	rsaPublic, _ := signing.PublicKeyBase64(&rsaPriv.PublicKey)
	jwtPEM, err := signing.NewRSAKey()
	if err != nil {
		t.Fatal(err)
	}
	jwtPriv, _ := signing.ParseRSAKey(jwtPEM)
	kid, _ := signing.KeyID(&jwtPriv.PublicKey)
	listen := freeLoopbackAddr(t)
	publicURL := "http://" + listen
	f := newFixture(t)
	f.signedEndpoint("signed-sw", sink.URL+"/StandardWebhooks", &routing.Signing{Type: "StandardWebhooks", Keys: []routing.SigningKey{{Key: standardSecret}}}, "")
	f.signedEndpoint("signed-rsa", sink.URL+"/RSA", &routing.Signing{Type: "RSA", Header: "X-Hookgate-Signature", Keys: []routing.SigningKey{{Key: routing.SecretValue(rsaPEM)}}}, "")
	f.signedEndpoint("signed-jwt", sink.URL+"/JWT", &routing.Signing{Type: "JWT", Audience: "orders-service", Keys: []routing.SigningKey{{Key: routing.SecretValue(jwtPEM), ID: kid}}}, "")
	rcv := startTestReceiver(t, f.table, func(o *Options) { o.Listen, o.PublicURL = listen, publicURL })
	for _, ep := range []string{"signed-sw", "signed-rsa", "signed-jwt"} {
		sendTo(t, rcv, ep, "evt_guide_"+ep)
	}
	testcluster.Eventually(t, 20*time.Second, "a delivery of each signing type", func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(got) < 3 {
			return errors.New("not yet")
		}
		return nil
	})

	envFor := func(typ string, c captured, bodyFile string) []string {
		env := []string{"BODY_FILE=" + bodyFile}
		switch typ {
		case "StandardWebhooks":
			return append(env, "WEBHOOK_SECRET="+standardSecret, "WEBHOOK_ID="+c.header.Get("webhook-id"),
				"WEBHOOK_TIMESTAMP="+c.header.Get("webhook-timestamp"), "WEBHOOK_SIGNATURE="+c.header.Get("webhook-signature"))
		case "RSA":
			return append(env, "PUBLIC_KEY="+rsaPublic, "SIGNATURE="+c.header.Get("X-Hookgate-Signature"))
		case "JWT":
			return append(env, "ISSUER="+publicURL+"/issuers/"+fixtureNamespace, "AUDIENCE=orders-service", "TOKEN="+strings.TrimPrefix(c.header.Get("Authorization"), "Bearer "))
		}
		t.Fatalf("%s: unknown signing type %q", destinationGuide, typ)
		return nil
	}
	seen := map[string]bool{}
	for _, b := range blocks {
		seen[b.signing+" "+b.lang] = true
		t.Run(b.signing+"/"+b.lang, func(t *testing.T) {
			mu.Lock()
			c := got["/"+b.signing]
			mu.Unlock()
			run := verifierRunner(t, b, examples, python)
			dir := t.TempDir()
			good, bad := filepath.Join(dir, "body"), filepath.Join(dir, "tampered")
			if err := os.WriteFile(good, c.body, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(bad, append(bytes.Clone(c.body), ' '), 0o600); err != nil {
				t.Fatal(err)
			}
			if out, err := run(envFor(b.signing, c, good)); err != nil || strings.TrimSpace(out) != "verified" {
				t.Fatalf("%s line %d: a real delivery did not verify: %v\n%s", destinationGuide, b.line, err, out)
			}
			if out, err := run(envFor(b.signing, c, bad)); err == nil {
				t.Fatalf("%s line %d: a tampered body verified:\n%s", destinationGuide, b.line, out)
			}
		})
	}
	for _, typ := range []string{"StandardWebhooks", "RSA", "JWT"} {
		for _, lang := range []string{"go", "js", "python"} {
			if !seen[typ+" "+lang] {
				t.Errorf("%s has no %s verifier in %s", destinationGuide, typ, lang)
			}
		}
	}
}

// verifierRunner prepares a block (a Go one is built once, inside the module so that
// its imports resolve) and returns a function that runs it with env.
func verifierRunner(t *testing.T, b verifierBlock, examples, python string) func(env []string) (string, error) {
	t.Helper()
	var argv []string
	base := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	switch b.lang {
	case "go":
		// A directory whose name starts with "_" is invisible to ./... patterns.
		dir, err := os.MkdirTemp(filepath.Join(testcluster.RepoRoot(), "bin"), "_guide-")
		if err != nil {
			if err := os.MkdirAll(filepath.Join(testcluster.RepoRoot(), "bin"), 0o755); err != nil {
				t.Fatal(err)
			}
			if dir, err = os.MkdirTemp(filepath.Join(testcluster.RepoRoot(), "bin"), "_guide-"); err != nil {
				t.Fatal(err)
			}
		}
		t.Cleanup(func() { _ = os.RemoveAll(dir) })
		if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(b.code), 0o600); err != nil {
			t.Fatal(err)
		}
		bin := filepath.Join(dir, "verifier")
		cmd := exec.Command("go", "build", "-o", bin, "./"+filepath.Base(dir))
		cmd.Dir = filepath.Dir(dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s line %d: the Go example does not build: %v\n%s", destinationGuide, b.line, err, out)
		}
		argv = []string{bin}
		base = os.Environ()
	case "js":
		file := filepath.Join(t.TempDir(), "verify.js")
		if err := os.WriteFile(file, []byte(b.code), 0o600); err != nil {
			t.Fatal(err)
		}
		argv = []string{"node", file}
		base = append(base, "NODE_PATH="+filepath.Join(examples, "node_modules"))
	case "python":
		file := filepath.Join(t.TempDir(), "verify.py")
		if err := os.WriteFile(file, []byte(b.code), 0o600); err != nil {
			t.Fatal(err)
		}
		argv = []string{python, file}
	default:
		t.Fatalf("%s line %d: no runner for %s", destinationGuide, b.line, b.lang)
	}
	return func(env []string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Env = append(append([]string{}, base...), env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
}
