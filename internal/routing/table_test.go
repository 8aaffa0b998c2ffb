package routing

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
)

func randomString(t testing.TB, prefix string, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

// bigTable has n partners, each in its grace period (two credentials) with an allowlist
// and a rate limit, and one endpoint per partner: a worst case for size.
func bigTable(t testing.TB, n int) *Table {
	notAfter := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	table := &Table{}
	for i := range n {
		ns, name := fmt.Sprintf("team-%03d", i%200), fmt.Sprintf("partner-%05d", i)
		table.Partners = append(table.Partners, Partner{
			Namespace: ns, Name: name, UID: "6f1c2b9e-6a7d-4c1e-9a1e-3f1f0c2f9a11",
			Credentials: []Credential{
				{APIKeySHA256: HashAPIKey(randomString(t, "hgk_", 32)), SigningSecret: SecretValue(randomString(t, "whsec_", 32))},
				{APIKeySHA256: HashAPIKey(randomString(t, "hgk_", 32)), SigningSecret: SecretValue(randomString(t, "whsec_", 32)), NotAfter: &notAfter},
			},
			IPAllowlist: []string{"203.0.113.0/24", "2001:db8::/32"},
			RateLimit:   &RateLimit{RequestsPerSecond: 100, Burst: 200},
		})
		table.Endpoints = append(table.Endpoints, Endpoint{
			Namespace: ns, Name: name, Path: "/api/webhooks/" + ns + "/" + name, Partners: []string{name},
			Verification: Verification{Type: hookgatev1alpha1.VerificationPartnerHMAC, Tolerance: Duration(5 * time.Minute)},
			Idempotency:  Idempotency{Window: Duration(72 * time.Hour)},
			MaxBodyBytes: 1 << 20,
			Destination: &Destination{URL: "http://orders." + ns + ".svc:8080/hooks", Timeout: Duration(30 * time.Second),
				SigningSecret: SecretValue(randomString(t, "whsec_", 32))},
			Retry: Retry{MaxAttempts: 12, InitialBackoff: Duration(5 * time.Second), MaxBackoff: Duration(time.Hour)},
		})
	}
	return table
}

func TestTwoThousandPartnersFitInASecret(t *testing.T) {
	table := bigTable(t, 2000)
	table.Finalize(nil)
	data, err := Encode(table)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("2000 partners (2 credentials each) and 2000 endpoints: %d bytes compressed (limit %d)", len(data), MaxSecretBytes)
	if len(data) >= MaxSecretBytes {
		t.Fatalf("table is %d bytes, over the Secret limit", len(data))
	}
	back, err := Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Partners) != 2000 || back.Hash != table.Hash {
		t.Fatalf("round trip lost data: %d partners, hash %s vs %s", len(back.Partners), back.Hash, table.Hash)
	}
}

func TestFinalizeIsDeterministicAndTracksRevisions(t *testing.T) {
	build := func(rate int32, extra bool) *Table {
		table := &Table{
			Partners: []Partner{
				{Namespace: "b", Name: "two", Credentials: []Credential{{APIKeySHA256: "k2", SigningSecret: "s2"}}},
				{Namespace: "a", Name: "one", Credentials: []Credential{{APIKeySHA256: "k1", SigningSecret: "s1"}}, RateLimit: &RateLimit{RequestsPerSecond: rate, Burst: rate}},
			},
			Endpoints: []Endpoint{{Namespace: "a", Name: "e", Path: "/api/webhooks/a/e"}},
		}
		if extra {
			table.Partners = append(table.Partners, Partner{Namespace: "c", Name: "three"})
		}
		return table
	}
	first := build(5, false)
	if !first.Finalize(nil) || first.Serial != 1 {
		t.Fatalf("first table: changed must be true and serial 1, got serial %d", first.Serial)
	}
	if first.Partners[0].Name != "one" {
		t.Error("partners are not sorted")
	}
	same := build(5, false)
	if same.Finalize(first) || same.Serial != 1 || same.Hash != first.Hash {
		t.Fatalf("an identical build must not change: serial %d hash %s vs %s", same.Serial, same.Hash, first.Hash)
	}
	changed := build(6, true)
	if !changed.Finalize(first) || changed.Serial != 2 {
		t.Fatalf("a changed build must take serial 2, got %d", changed.Serial)
	}
	revs := map[string]uint64{}
	for _, p := range changed.Partners {
		revs[p.Name] = p.Rev
	}
	if revs["one"] != 2 || revs["two"] != 1 || revs["three"] != 2 {
		t.Fatalf("revs = %v, want one:2 (changed) two:1 (unchanged) three:2 (new)", revs)
	}
	if changed.Endpoints[0].Rev != 1 {
		t.Errorf("unchanged endpoint rev = %d, want 1", changed.Endpoints[0].Rev)
	}
}

func TestDecodeRejectsBadTables(t *testing.T) {
	good := bigTable(t, 2)
	good.Finalize(nil)
	data, err := Encode(good)
	if err != nil {
		t.Fatal(err)
	}
	tampered := *good
	tampered.Partners = append([]Partner(nil), good.Partners...)
	tampered.Partners[0].Suspended = true // content changes, header hash does not
	tamperedData, err := Encode(&tampered)
	if err != nil {
		t.Fatal(err)
	}
	future := *good
	future.FormatVersion = FormatVersion + 1
	futureData, err := Encode(&future)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{
		"empty":          nil,
		"not gzip":       []byte(`{"formatVersion":1}`),
		"truncated":      data[:len(data)/2],
		"hash mismatch":  tamperedData,
		"unknown format": futureData,
	}
	for name, input := range cases {
		if _, err := Decode(input); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
	if _, err := Decode(data); err != nil {
		t.Fatalf("the good table: %v", err)
	}
}

func TestLookups(t *testing.T) {
	now := time.Now()
	past, future := now.Add(-time.Second), now.Add(time.Hour)
	table := &Table{Partners: []Partner{{Namespace: "n", Name: "p", Credentials: []Credential{
		{APIKeySHA256: HashAPIKey("current"), SigningSecret: "s-current"},
		{APIKeySHA256: HashAPIKey("grace"), SigningSecret: "s-grace", NotAfter: &future},
		{APIKeySHA256: HashAPIKey("expired"), SigningSecret: "s-expired", NotAfter: &past},
	}}}}
	table.Finalize(nil)
	for key, want := range map[string]bool{"current": true, "grace": true, "expired": false, "unknown": false} {
		if _, _, ok := table.PartnerByAPIKey(key, now); ok != want {
			t.Errorf("key %q: found %v, want %v", key, ok, want)
		}
	}
	for key, want := range map[string]string{"current": "s-current", "grace": "s-grace"} {
		if _, cred, _ := table.PartnerByAPIKey(key, now); cred == nil || string(cred.SigningSecret) != want {
			t.Errorf("key %q: not paired with signing secret %q", key, want)
		}
	}
}

func TestDiskCacheRoundTrip(t *testing.T) {
	cache := DiskCache{Path: filepath.Join(t.TempDir(), "sub", "routing.json.gz")}
	if got, err := cache.Load(); got != nil || err != nil {
		t.Fatalf("empty cache: %v %v", got, err)
	}
	table := bigTable(t, 3)
	table.Finalize(nil)
	data, err := Encode(table)
	if err != nil {
		t.Fatal(err)
	}
	if err := cache.Save(data); err != nil {
		t.Fatal(err)
	}
	got, err := cache.Load()
	if err != nil || got.Hash != table.Hash {
		t.Fatalf("load: %v, hash %v", err, got)
	}
}

// TestBinarySecretsSurviveTheTable: a key that is not UTF-8 (a raw HMAC key from a
// user's Secret) comes out of an encoded table byte for byte; text stays a string.
func TestBinarySecretsSurviveTheTable(t *testing.T) {
	binary := SecretValue([]byte{0x00, 0xff, 0xfe, 'k', 0x80})
	table := &Table{Endpoints: []Endpoint{{Namespace: "ns", Name: "e", Path: "/api/webhooks/ns/e",
		Verification: Verification{Type: hookgatev1alpha1.VerificationGitHub, Secret: binary}}},
		Partners: []Partner{{Namespace: "ns", Name: "p", Credentials: []Credential{{SigningSecret: "whsec_text"}}}}}
	table.Finalize(nil)
	data, err := Encode(table)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	if got.Endpoints[0].Verification.Secret != binary || got.Partners[0].Credentials[0].SigningSecret != "whsec_text" {
		t.Fatalf("secrets changed on the way: %q %q", got.Endpoints[0].Verification.Secret, got.Partners[0].Credentials[0].SigningSecret)
	}
}
