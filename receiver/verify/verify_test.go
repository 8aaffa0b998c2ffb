package verify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strconv"
	"testing"
	"time"
)

var now = time.Unix(1_795_000_000, 0)

func mac(key string, parts ...string) []byte {
	m := hmac.New(sha256.New, []byte(key))
	for _, p := range parts {
		m.Write([]byte(p))
	}
	return m.Sum(nil)
}

func reasonOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	if err != nil {
		return "other"
	}
	return ""
}

func TestPartnerHMAC(t *testing.T) {
	body := []byte(`{"id":"evt_1"}`)
	ts := strconv.FormatInt(now.Unix(), 10)
	good := "sha256=" + hex.EncodeToString(mac("whsec_new", ts, ".", string(body)))
	cases := []struct {
		name      string
		secret    string
		ts, sig   string
		body      []byte
		wantError string
	}{
		{"valid", "whsec_new", ts, good, body, ""},
		{"upper-case hex", "whsec_new", ts, "sha256=" + hex.EncodeToString(mac("whsec_new", ts, ".", string(body)))[:0] + upperHex(mac("whsec_new", ts, ".", string(body))), body, ""},
		{"wrong secret", "whsec_old", ts, good, body, ReasonInvalidSignature},
		{"tampered body", "whsec_new", ts, good, []byte(`{"id":"evt_2"}`), ReasonInvalidSignature},
		{"no prefix", "whsec_new", ts, good[len("sha256="):], body, ReasonMalformedHeader},
		{"short mac", "whsec_new", ts, "sha256=abc123", body, ReasonMalformedHeader},
		{"missing signature", "whsec_new", ts, "", body, ReasonMissingHeader},
		{"missing timestamp", "whsec_new", "", good, body, ReasonMissingHeader},
		{"timestamp not a number", "whsec_new", "yesterday", good, body, ReasonMalformedHeader},
		{"stale", "whsec_new", strconv.FormatInt(now.Add(-301*time.Second).Unix(), 10), good, body, ReasonStaleTimestamp},
		{"future", "whsec_new", strconv.FormatInt(now.Add(301*time.Second).Unix(), 10), good, body, ReasonStaleTimestamp},
		{"no secret", "", ts, good, body, ReasonInvalidSignature},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := reasonOf(PartnerHMAC(c.secret, c.ts, c.sig, c.body, now, 5*time.Minute)); got != c.wantError {
				t.Fatalf("reason %q, want %q", got, c.wantError)
			}
		})
	}
}

func upperHex(b []byte) string {
	const digits = "0123456789ABCDEF"
	out := make([]byte, 0, len(b)*2)
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

func TestStandardWebhooks(t *testing.T) {
	secret := "whsec_" + base64.StdEncoding.EncodeToString([]byte("a-32-byte-standard-webhooks-key!"))
	key, _ := DecodeStandardSecret(secret)
	body := []byte(`{"type":"x"}`)
	sig := StandardWebhooksSign(key, "msg_1", now.Unix(), body)
	ts := strconv.FormatInt(now.Unix(), 10)
	cases := []struct {
		name, id, ts, sig, secret string
		want                      string
	}{
		{"valid", "msg_1", ts, sig, secret, ""},
		{"one of several", "msg_1", ts, "v1,AAAA " + sig, secret, ""},
		{"secret without prefix", "msg_1", ts, sig, secret[len("whsec_"):], ""},
		{"other id", "msg_2", ts, sig, secret, ReasonInvalidSignature},
		{"missing id", "", ts, sig, secret, ReasonMissingHeader},
		{"only other versions", "msg_1", ts, "v2," + sig[3:], secret, ReasonMalformedHeader},
		{"stale", "msg_1", strconv.FormatInt(now.Add(-time.Hour).Unix(), 10), sig, secret, ReasonStaleTimestamp},
		{"bad secret", "msg_1", ts, sig, "whsec_!!!", ReasonKeyUnavailable},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := reasonOf(StandardWebhooks(c.secret, c.id, c.ts, c.sig, body, now, 5*time.Minute)); got != c.want {
				t.Fatalf("reason %q, want %q", got, c.want)
			}
		})
	}
}

func TestPresets(t *testing.T) {
	secret := []byte("shh")
	body := []byte(`{"id":"evt_1"}`)
	ts := strconv.FormatInt(now.Unix(), 10)
	stale := strconv.FormatInt(now.Add(-10*time.Minute).Unix(), 10)
	stripe := func(t string) string { return "t=" + t + ",v1=" + hex.EncodeToString(mac("shh", t, ".", string(body))) }
	cases := []struct {
		name string
		err  error
		want string
	}{
		{"stripe valid", Stripe(secret, stripe(ts), body, now, 5*time.Minute), ""},
		{"stripe v0 ignored, v1 valid", Stripe(secret, "v0=00,"+stripe(ts), body, now, 5*time.Minute), ""},
		{"stripe stale", Stripe(secret, stripe(stale), body, now, 5*time.Minute), ReasonStaleTimestamp},
		{"stripe no v1", Stripe(secret, "t="+ts, body, now, 5*time.Minute), ReasonMalformedHeader},
		{"stripe wrong", Stripe([]byte("other"), stripe(ts), body, now, 5*time.Minute), ReasonInvalidSignature},
		{"github valid", GitHub(secret, "sha256="+hex.EncodeToString(mac("shh", string(body))), body), ""},
		{"github sha1 header", GitHub(secret, "sha1=abc", body), ReasonMalformedHeader},
		{"github wrong", GitHub(secret, "sha256="+hex.EncodeToString(mac("x", string(body))), body), ReasonInvalidSignature},
		{"slack valid", Slack(secret, "v0="+hex.EncodeToString(mac("shh", "v0:", ts, ":", string(body))), ts, body, now, 5*time.Minute), ""},
		{"slack stale", Slack(secret, "v0="+hex.EncodeToString(mac("shh", "v0:", stale, ":", string(body))), stale, body, now, 5*time.Minute), ReasonStaleTimestamp},
		{"slack missing", Slack(secret, "", ts, body, now, 5*time.Minute), ReasonMissingHeader},
		{"shopify valid", Shopify(secret, base64.StdEncoding.EncodeToString(mac("shh", string(body))), body), ""},
		{"shopify hex is not base64 of 32 bytes", Shopify(secret, hex.EncodeToString(mac("shh", string(body))), body), ReasonMalformedHeader},
		{"shopify wrong", Shopify([]byte("x"), base64.StdEncoding.EncodeToString(mac("shh", string(body))), body), ReasonInvalidSignature},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := reasonOf(c.err); got != c.want {
				t.Fatalf("reason %q (%v), want %q", got, c.err, c.want)
			}
		})
	}
}

func TestGenericHMAC(t *testing.T) {
	body := []byte(`{"a":1}`)
	ts := strconv.FormatInt(now.Unix(), 10)
	headers := map[string]string{}
	get := func(k string) string { return headers[k] }
	g := GenericHMAC{Header: "X-Sig", Prefix: "sha256=", Encoding: "hex", SignedContent: "{timestamp}.{id}.{body}", TimestampHeader: "X-Ts"}
	headers["X-Ts"] = ts
	headers["X-Sig"] = "sha256=" + hex.EncodeToString(mac("k", ts, ".", "id-1", ".", string(body)))
	if err := g.Verify([]byte("k"), get, "id-1", body, now, time.Minute); err != nil {
		t.Fatalf("valid: %v", err)
	}
	if got := reasonOf(g.Verify([]byte("k"), get, "id-2", body, now, time.Minute)); got != ReasonInvalidSignature {
		t.Errorf("other id: %q", got)
	}
	b64 := GenericHMAC{Header: "X-Sig", Encoding: "base64"}
	headers["X-Sig"] = base64.StdEncoding.EncodeToString(mac("k", string(body)))
	if err := b64.Verify([]byte("k"), get, "", body, now, time.Minute); err != nil {
		t.Fatalf("base64 over the body: %v", err)
	}
	if got := string(g.Signed("1", "x", []byte("B"))); got != "1.x.B" {
		t.Errorf("template = %q", got)
	}
	if got := string((GenericHMAC{SignedContent: "{unknown}{body}"}).Signed("", "", []byte("B"))); got != "{unknown}B" {
		t.Errorf("unknown placeholder = %q", got)
	}
}
