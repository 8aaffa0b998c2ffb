package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
	"github.com/hookgate/hookgate/internal/scheme"
)

// partnerFlags are the flags send and status share: who the partner is and where its
// credentials come from.
type partnerFlags struct {
	partner, namespace    string
	apiKey, signingSecret string
	timeout               time.Duration
	logs                  *logFlags
}

func (p *partnerFlags) bind(fs *flag.FlagSet) {
	fs.StringVar(&p.partner, "partner", "", "Partner name (its credentials Secret is read through KUBECONFIG)")
	fs.StringVar(&p.namespace, "n", "", "namespace of the Partner")
	fs.StringVar(&p.namespace, "namespace", "", "namespace of the Partner")
	fs.StringVar(&p.apiKey, "api-key", os.Getenv("HOOKGATE_API_KEY"), "API key (default $HOOKGATE_API_KEY; else read from the Partner's Secret)")
	fs.StringVar(&p.signingSecret, "signing-secret", os.Getenv("HOOKGATE_SIGNING_SECRET"), "signing secret (default $HOOKGATE_SIGNING_SECRET; else read from the Partner's Secret)")
	fs.DurationVar(&p.timeout, "timeout", 30*time.Second, "time limit of the request")
	p.logs = bindLogFlags(fs)
}

// credentials fills in what the flags did not give from the Partner's Secret.
func (p *partnerFlags) credentials(ctx context.Context, needSecret bool) error {
	if p.apiKey != "" && (p.signingSecret != "" || !needSecret) {
		return nil
	}
	if p.partner == "" || p.namespace == "" {
		return errors.New("--partner and -n are needed to read the credentials from the cluster (or give --api-key and --signing-secret)")
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("no cluster to read the credentials from (set KUBECONFIG, or give --api-key and --signing-secret): %w", err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme.New()})
	if err != nil {
		return err
	}
	var partner hookgatev1alpha1.Partner
	if err := c.Get(ctx, types.NamespacedName{Namespace: p.namespace, Name: p.partner}, &partner); err != nil {
		return fmt.Errorf("reading Partner %s/%s: %w", p.namespace, p.partner, err)
	}
	var secret corev1.Secret
	name := partner.CredentialsSecretName()
	if err := c.Get(ctx, types.NamespacedName{Namespace: p.namespace, Name: name}, &secret); err != nil {
		return fmt.Errorf("reading the credentials Secret %s/%s: %w", p.namespace, name, err)
	}
	if p.apiKey == "" {
		p.apiKey = string(secret.Data[hookgatev1alpha1.SecretKeyAPIKey])
	}
	if p.signingSecret == "" {
		p.signingSecret = string(secret.Data[hookgatev1alpha1.SecretKeySigningSecret])
	}
	if p.apiKey == "" || (needSecret && p.signingSecret == "") {
		return fmt.Errorf("the Secret %s/%s lacks apiKey or signingSecret", p.namespace, name)
	}
	return nil
}

func runSend(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("hookgate send", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var p partnerFlags
	p.bind(fs)
	var target, typ, data, id string
	fs.StringVar(&target, "url", "", "endpoint URL, such as http://localhost:8080/api/webhooks/events (required)")
	fs.StringVar(&typ, "type", "", "event type (required)")
	fs.StringVar(&data, "data", "{}", "event data: JSON, or @FILE")
	fs.StringVar(&id, "id", "", "event id (default: generated)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctrl.SetLogger(p.logs.logger(stderr))
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(stderr, "hookgate send: "+format+"\n", a...)
		return code
	}
	if target == "" {
		return fail(2, "--url is required")
	}
	if typ == "" {
		return fail(2, "--type is required")
	}
	raw := []byte(data)
	if file, ok := strings.CutPrefix(data, "@"); ok {
		var err error
		if raw, err = os.ReadFile(file); err != nil {
			return fail(2, "--data: %v", err)
		}
	}
	if !json.Valid(raw) {
		return fail(2, "--data is not valid JSON")
	}
	if id == "" {
		b := make([]byte, 8)
		_, _ = rand.Read(b)
		id = "evt_" + hex.EncodeToString(b)
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	if err := p.credentials(ctx, true); err != nil {
		return fail(1, "%v", err)
	}
	body, err := json.Marshal(map[string]any{"id": id, "type": typ, "data": json.RawMessage(raw)})
	if err != nil {
		return fail(2, "--data: %v", err)
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	mac := hmac.New(sha256.New, []byte(p.signingSecret))
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return fail(2, "--url: %v", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("x-api-key", p.apiKey)
	req.Header.Set("x-timestamp", ts)
	req.Header.Set("x-webhook-signature", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	return printResponse("send", req, stdout, stderr)
}

func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("hookgate status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var p partnerFlags
	p.bind(fs)
	var base string
	fs.StringVar(&base, "url", "", "receiver base URL, such as http://localhost:8080 (required)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctrl.SetLogger(p.logs.logger(stderr))
	if base == "" || fs.NArg() != 1 {
		fmt.Fprintln(stderr, "hookgate status: usage: hookgate status --partner NAME -n NS --url http://HOST:PORT EVENT_ID")
		return 2
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	if err := p.credentials(ctx, false); err != nil {
		fmt.Fprintf(stderr, "hookgate status: %v\n", err)
		return 1
	}
	target := strings.TrimSuffix(base, "/") + "/api/webhooks/status?eventId=" + url.QueryEscape(fs.Arg(0))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		fmt.Fprintf(stderr, "hookgate status: --url: %v\n", err)
		return 2
	}
	req.Header.Set("x-api-key", p.apiKey)
	return printResponse("status", req, stdout, stderr)
}

// printResponse sends the request and prints the JSON answer; a non-2xx answer is an
// error (exit 1) with the receiver's message.
func printResponse(cmd string, req *http.Request, stdout, stderr io.Writer) int {
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "hookgate %s: %v\n", cmd, err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var pretty bytes.Buffer
	if json.Indent(&pretty, body, "", "  ") != nil {
		pretty.Reset()
		pretty.Write(body)
	}
	if resp.StatusCode/100 != 2 {
		fmt.Fprintf(stderr, "hookgate %s: the receiver answered %s\n%s\n", cmd, resp.Status, pretty.String())
		return 1
	}
	fmt.Fprintln(stdout, pretty.String())
	return 0
}
