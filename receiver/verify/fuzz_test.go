package verify

import (
	"strconv"
	"testing"
	"time"
)

// The fuzz targets feed arbitrary header values to every parser and verifier: none may
// panic, and none may accept a signature it was not given the key for.

func FuzzPartnerHMAC(f *testing.F) {
	f.Add(strconv.FormatInt(now.Unix(), 10), "sha256=00", []byte(`{}`))
	f.Add("", "", []byte(nil))
	f.Add("1e9", "sha256="+string(make([]byte, 64)), []byte(`x`))
	f.Fuzz(func(t *testing.T, ts, sig string, body []byte) {
		if PartnerHMAC("whsec_fuzz", ts, sig, body, now, 5*time.Minute) == nil {
			t.Fatalf("accepted a signature made without the key: ts=%q sig=%q", ts, sig)
		}
	})
}

func FuzzStandardWebhooks(f *testing.F) {
	f.Add("msg_1", strconv.FormatInt(now.Unix(), 10), "v1,AAAA v2,BBBB")
	f.Add("", "", "")
	f.Fuzz(func(t *testing.T, id, ts, sig string) {
		_, _ = ParseStandardSignatures(sig)
		if StandardWebhooks("whsec_ZnV6ei1rZXk=", id, ts, sig, []byte(`{}`), now, 5*time.Minute) == nil {
			t.Fatalf("accepted without the key: %q %q %q", id, ts, sig)
		}
	})
}

func FuzzStripeHeader(f *testing.F) {
	f.Add("t=1795000000,v1=abc,v0=def")
	f.Add(",,,=,t=,v1=")
	f.Fuzz(func(t *testing.T, header string) {
		h, err := ParseStripeHeader(header)
		if err == nil && (h.Timestamp == "" || len(h.Signatures) == 0) {
			t.Fatalf("parsed %q without a timestamp or signature", header)
		}
		if Stripe([]byte("fuzz"), header, []byte(`{}`), now, 5*time.Minute) == nil {
			t.Fatalf("accepted without the key: %q", header)
		}
	})
}

func FuzzPrefixedHex(f *testing.F) {
	f.Add("sha256=abcdef", "v0=12")
	f.Fuzz(func(t *testing.T, github, slack string) {
		if GitHub([]byte("fuzz"), github, []byte(`{}`)) == nil {
			t.Fatalf("GitHub accepted %q", github)
		}
		if Slack([]byte("fuzz"), slack, strconv.FormatInt(now.Unix(), 10), []byte(`{}`), now, time.Minute) == nil {
			t.Fatalf("Slack accepted %q", slack)
		}
		if Shopify([]byte("fuzz"), github, []byte(`{}`)) == nil {
			t.Fatalf("Shopify accepted %q", github)
		}
	})
}

func FuzzGenericHMAC(f *testing.F) {
	f.Add("{timestamp}.{id}.{body}", "sha256=00", "hex")
	f.Add("{{{body}}}{", "", "base64")
	f.Fuzz(func(t *testing.T, template, sig, encoding string) {
		g := GenericHMAC{Header: "X-Sig", Prefix: "sha256=", Encoding: encoding, SignedContent: template}
		_ = g.Signed("1", "id", []byte("body"))
		if g.Verify([]byte("fuzz"), func(string) string { return sig }, "id", []byte("body"), now, time.Minute) == nil {
			t.Fatalf("accepted without the key: %q", sig)
		}
	})
}

func FuzzBearerAndJWT(f *testing.F) {
	f.Add("Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln")
	f.Add("bearer  ")
	f.Fuzz(func(t *testing.T, header string) {
		_, _ = ParseBearer(header)
		// No JWKS URL is reachable: nothing may verify, nothing may panic.
		cache := NewJWKSCache(nil)
		cache.MinRefresh = time.Hour
		cache.sets["http://127.0.0.1:1/jwks"] = &jwksEntry{lastAttempt: now}
		if JWT(t.Context(), cache, JWTConfig{JWKSURL: "http://127.0.0.1:1/jwks", Issuer: "i", Audience: "a"}, header, now, time.Minute) == nil {
			t.Fatalf("accepted %q", header)
		}
	})
}

func FuzzRSAKeyAndSignature(f *testing.F) {
	f.Add("MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA", "c2ln")
	f.Fuzz(func(t *testing.T, key, sig string) {
		if pub, err := ParseRSAPublicKey(key); err == nil {
			if RSASignature(pub, "X-Signature", sig, []byte(`{}`)) == nil {
				t.Fatalf("accepted %q", sig)
			}
		}
	})
}
