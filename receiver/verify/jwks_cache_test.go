package verify

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// jwksServer serves sets[i] at its i-th fetch (the last one after that) with a
// Cache-Control header; a set that is nil answers 500. Fetches from gateFrom on wait
// until gate is closed, after saying so on arrived.
type jwksServer struct {
	*httptest.Server
	cacheControl string
	sets         []*jose.JSONWebKeySet
	gateFrom     int
	gate         chan struct{}
	arrived      chan struct{}

	mu     sync.Mutex
	served int
}

func newJWKSServer(t *testing.T, cacheControl string, sets ...*jose.JSONWebKeySet) *jwksServer {
	s := &jwksServer{cacheControl: cacheControl, sets: sets, gateFrom: -1, gate: make(chan struct{}), arrived: make(chan struct{}, 64)}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.mu.Lock()
		i := s.served
		s.served++
		s.mu.Unlock()
		if s.gateFrom >= 0 && i >= s.gateFrom {
			s.arrived <- struct{}{}
			<-s.gate
		}
		set := s.sets[min(i, len(s.sets)-1)]
		if set == nil {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		if s.cacheControl != "" {
			w.Header().Set("Cache-Control", s.cacheControl)
		}
		_ = json.NewEncoder(w).Encode(set)
	}))
	t.Cleanup(func() {
		select {
		case <-s.gate:
		default:
			close(s.gate)
		}
		s.Close()
	})
	return s
}

func testKeySet(t *testing.T, kids ...string) *jose.JSONWebKeySet {
	set := &jose.JSONWebKeySet{}
	for _, kid := range kids {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: &key.PublicKey, KeyID: kid, Algorithm: "ES256", Use: "sig"})
	}
	return set
}

// settle waits until no fetch of url is running.
func settle(t *testing.T, c *JWKSCache, url string) {
	t.Helper()
	e := c.entry(url)
	deadline := time.Now().Add(5 * time.Second)
	for {
		e.mu.Lock()
		running := e.fetching != nil
		e.mu.Unlock()
		if !running {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("a JWKS fetch still runs after 5 s")
		}
		time.Sleep(time.Millisecond)
	}
}

// jwksStep is one lookup of a scenario: at a time after the first fetch, a kid, the
// reason expected ("" for the key), and the fetches the cache has started by then.
type jwksStep struct {
	at          time.Duration
	kid         string
	wantReason  string
	wantFetches int
}

func runJWKSSteps(t *testing.T, c *JWKSCache, url string, steps []jwksStep) {
	t.Helper()
	for i, s := range steps {
		k, err := c.Key(context.Background(), url, s.kid, now.Add(s.at))
		if got := reasonOf(err); got != s.wantReason {
			t.Fatalf("step %d (kid %s at +%s): reason %q (%v), want %q", i, s.kid, s.at, got, err, s.wantReason)
		}
		if err == nil && k.KeyID != s.kid {
			t.Fatalf("step %d: key %q, want %q", i, k.KeyID, s.kid)
		}
		if got := c.Fetches(url); got != s.wantFetches {
			t.Fatalf("step %d (kid %s at +%s): %d fetches, want %d", i, s.kid, s.at, got, s.wantFetches)
		}
		settle(t, c, url)
	}
}

// TestJWKSCacheLifetimes: a key set is fresh for its Cache-Control max-age, bounded to
// 30 s – 24 h (10 min without one); past that the cached set still answers at once while
// one background refetch runs, and a key the refetched set no longer holds stops
// verifying.
func TestJWKSCacheLifetimes(t *testing.T) {
	cases := []struct {
		cacheControl string
		lifetime     time.Duration
	}{
		{"", 10 * time.Minute},
		{"max-age=120", 2 * time.Minute},
		{"public, max-age=3600, must-revalidate", time.Hour},
		{"max-age=5", 30 * time.Second},
		{"max-age=0", 30 * time.Second},
		{"no-store", 30 * time.Second},
		{"no-cache, max-age=600", 30 * time.Second},
		{"max-age=604800", 24 * time.Hour},
		{"max-age=99999999999999999999", 24 * time.Hour},
		{"max-age=soon", 10 * time.Minute},
	}
	for _, c := range cases {
		t.Run("Cache-Control "+c.cacheControl, func(t *testing.T) {
			// The partner removes k1 from its set after the first fetch.
			srv := newJWKSServer(t, c.cacheControl, testKeySet(t, "k1", "k2"), testKeySet(t, "k2", "k3"))
			cache := NewJWKSCache(nil)
			runJWKSSteps(t, cache, srv.URL, []jwksStep{
				{0, "k1", "", 1},
				{c.lifetime - time.Second, "k1", "", 1},               // fresh: no fetch
				{c.lifetime - time.Second, "k2", "", 1},               // fresh: no fetch
				{c.lifetime, "k1", "", 2},                             // stale: the cached set answers, one refetch starts
				{c.lifetime + time.Second, "k1", ReasonUnknownKey, 2}, // removed: refused, no refetch within 30 s
				{c.lifetime + time.Second, "k2", "", 2},
				{c.lifetime + time.Second, "k3", "", 2},                  // added: known without a fetch of its own
				{c.lifetime + 31*time.Second, "k1", ReasonUnknownKey, 3}, // unknown kid, 30 s on: refetched, still refused
			})
		})
	}
}

// TestJWKSFailingRefetch: while the issuer's server fails, the last set keeps verifying
// (a refetch tried every 30 s) for 24 h past its lifetime, then tokens are refused with
// key_unavailable; an unknown kid is refused without waiting.
func TestJWKSFailingRefetch(t *testing.T) {
	const lifetime = 10 * time.Minute
	srv := newJWKSServer(t, "", testKeySet(t, "k1"), nil)
	cache := NewJWKSCache(nil)
	runJWKSSteps(t, cache, srv.URL, []jwksStep{
		{0, "k1", "", 1},
		{lifetime, "k1", "", 2},                  // stale: answered, the refetch fails in the background
		{lifetime + 10*time.Second, "k1", "", 2}, // no new attempt within 30 s of the failed one
		{lifetime + 10*time.Second, "k9", ReasonUnknownKey, 2},
		{lifetime + 31*time.Second, "k1", "", 3}, // tried again, fails again
		{lifetime + 24*time.Hour - time.Second, "k1", "", 4},
		{lifetime + 24*time.Hour, "k1", ReasonKeyUnavailable, 4},                  // too stale, and that last attempt failed
		{lifetime + 24*time.Hour + 31*time.Second, "k1", ReasonKeyUnavailable, 5}, // a fetch is waited for, and fails
		{lifetime + 24*time.Hour + 32*time.Second, "k1", ReasonKeyUnavailable, 5},
	})
}

// TestJWKSSlowServerBlocksNoFreshKey: while a fetch of a URL waits on a slow JWKS server,
// requests whose key is in the cached set are answered at once, and the requests that
// need the fetch wait for that one fetch instead of each starting their own.
func TestJWKSSlowServerBlocksNoFreshKey(t *testing.T) {
	cases := []struct {
		name    string
		trigger jwksStep // the lookup that starts the slow fetch
		waits   bool     // whether it waits for the fetch
	}{
		{"an unknown kid's refetch", jwksStep{at: 31 * time.Second, kid: "k9"}, true},
		{"a stale set's background refetch", jwksStep{at: 10 * time.Minute, kid: "k1"}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := newJWKSServer(t, "", testKeySet(t, "k1"))
			srv.gateFrom = 1
			cache := NewJWKSCache(nil)
			if _, err := cache.Key(context.Background(), srv.URL, "k1", now); err != nil {
				t.Fatal(err)
			}
			lookup := func(kid string, at time.Duration) chan error {
				done := make(chan error, 1)
				go func() {
					_, err := cache.Key(context.Background(), srv.URL, kid, now.Add(at))
					done <- err
				}()
				return done
			}
			trigger := lookup(c.trigger.kid, c.trigger.at)
			select {
			case <-srv.arrived:
			case <-time.After(5 * time.Second):
				t.Fatal("no refetch reached the JWKS server")
			}
			if !c.waits {
				select {
				case err := <-trigger:
					if err != nil {
						t.Fatalf("the stale set's key: %v", err)
					}
				case <-time.After(2 * time.Second):
					t.Fatal("a request for a cached key waited for the background refetch")
				}
			}
			// The fetch hangs; a key in the cached set still verifies at once.
			select {
			case err := <-lookup("k1", c.trigger.at+time.Second):
				if err != nil {
					t.Fatalf("cached key during a slow fetch: %v", err)
				}
			case <-time.After(2 * time.Second):
				t.Fatal("a request for a cached key waited for the slow JWKS server")
			}
			// Unknown kids meanwhile join the fetch in flight.
			joiners := make([]chan error, 8)
			for i := range joiners {
				joiners[i] = lookup("k9", c.trigger.at+2*time.Second)
			}
			time.Sleep(50 * time.Millisecond)
			close(srv.gate)
			for i, j := range append(joiners, trigger) {
				if i == len(joiners) && !c.waits {
					break
				}
				select {
				case err := <-j:
					if reasonOf(err) != ReasonUnknownKey {
						t.Fatalf("unknown kid: %v", err)
					}
				case <-time.After(5 * time.Second):
					t.Fatal("a request still waits after the fetch ended")
				}
			}
			if got := cache.Fetches(srv.URL); got != 2 {
				t.Errorf("%d fetches, want 2: the first and one refetch", got)
			}
			srv.mu.Lock()
			defer srv.mu.Unlock()
			if srv.served != 2 {
				t.Errorf("the JWKS server saw %d fetches, want 2", srv.served)
			}
		})
	}
}
