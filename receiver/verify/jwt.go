package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	hookgatev1alpha1 "github.com/hookgate/hookgate/api/v1alpha1"
	"github.com/hookgate/hookgate/internal/routing"
	"github.com/hookgate/hookgate/receiver/egress"
)

var _ = register(Scheme{
	Type:        hookgatev1alpha1.VerificationJWT,
	Signed:      false,
	Credentials: EndpointSecret,
	Timestamped: always, // exp and nbf bound a token's life
	Prepare: func(ep *routing.Endpoint, env Env) (Verifier, error) {
		v := ep.Verification
		cfg := JWTConfig{JWKSURL: v.JWKSURL, Issuer: v.Issuer, Audience: v.Audience}
		return VerifierFunc(func(ctx context.Context, r *Request) error {
			return JWT(ctx, env.JWKS, cfg, r.Header.Get(HeaderAuthorization), r.Now, v.Tolerance.Std())
		}), nil
	},
})

// HeaderAuthorization carries "Bearer <jwt>".
const HeaderAuthorization = "Authorization"

const (
	maxJWKSBytes   = 1 << 20
	maxTokenBytes  = 16 << 10
	jwksMinRefresh = 30 * time.Second
	// A key set is kept as long as its Cache-Control max-age says, within these bounds:
	// a partner that removes a key from its set can count on it being refused after at
	// most jwksMaxLifetime, and a max-age of 0 cannot make every request a fetch.
	jwksDefaultLifetime = 10 * time.Minute
	jwksMinLifetime     = 30 * time.Second
	jwksMaxLifetime     = 24 * time.Hour
	// jwksMaxStale is how long past its lifetime a set still verifies while every refetch
	// fails (the issuer's server down): long enough to ride out an outage, not forever.
	jwksMaxStale = 24 * time.Hour
)

// JWKSCache caches key sets by URL, each for the lifetime its Cache-Control max-age
// gives. A set past its lifetime keeps verifying while one request refetches it in the
// background; a key the new set lacks is refused from then on. A token with a key id the
// cached set does not hold triggers a refetch, at most once every MinRefresh per URL, so
// that a stream of forged key ids cannot turn the receiver into a load generator against
// the JWKS server. No lock is held during a fetch: a slow JWKS server delays only the
// requests that need its answer, and concurrent fetches of one URL are one fetch.
type JWKSCache struct {
	Client     *http.Client
	MinRefresh time.Duration

	mu   sync.Mutex
	sets map[string]*jwksEntry
}

type jwksEntry struct {
	mu   sync.Mutex
	keys jose.JSONWebKeySet
	// fetchedAt is when the set in keys was fetched (zero: never); it is fresh until
	// expires, usable until expires + jwksMaxStale.
	fetchedAt, expires time.Time
	// refreshAt is when a background refetch may start: expires, or MinRefresh after a
	// failed refetch.
	refreshAt   time.Time
	lastAttempt time.Time
	lastErr     error         // of the latest fetch, nil once one succeeded
	fetching    chan struct{} // while a fetch runs; closed when it has updated the entry
	fetches     int
}

// NewJWKSCache returns a cache using client (nil: NewJWKSClient(nil), which dials
// anything: the receiver passes a guarded one).
func NewJWKSCache(client *http.Client) *JWKSCache {
	if client == nil {
		client = NewJWKSClient(nil)
	}
	return &JWKSCache{Client: client, MinRefresh: jwksMinRefresh, sets: map[string]*jwksEntry{}}
}

// errJWKSRedirect: a JWKS URL must answer itself; a redirect could send the receiver
// anywhere, so it is never followed.
var errJWKSRedirect = errors.New("the JWKS URL answered with a redirect, which is not followed")

// NewJWKSClient is the client that fetches key sets: 5 s timeout, no redirects, no proxy,
// connections made with dial (the receiver's egress guard, for url destinations; nil: a
// plain dialer).
func NewJWKSClient(dial func(ctx context.Context, network, address string) (net.Conn, error)) *http.Client {
	if dial == nil {
		dial = (&net.Dialer{Timeout: 5 * time.Second}).DialContext
	}
	return &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			DialContext: dial, ForceAttemptHTTP2: true, TLSHandshakeTimeout: 5 * time.Second,
			MaxIdleConns: 16, MaxIdleConnsPerHost: 2, IdleConnTimeout: 90 * time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return errJWKSRedirect },
	}
}

// Fetches reports how many times a URL's set was fetched (for tests and metrics).
func (c *JWKSCache) Fetches(url string) int {
	e := c.entry(url)
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.fetches
}

func (c *JWKSCache) entry(url string) *jwksEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.sets[url]
	if !ok {
		e = &jwksEntry{}
		c.sets[url] = e
	}
	return e
}

// Key returns the key with kid from the set at url, fetching the set when needed.
func (c *JWKSCache) Key(ctx context.Context, url, kid string, now time.Time) (*jose.JSONWebKey, error) {
	e := c.entry(url)
	e.mu.Lock()
	usable := !e.fetchedAt.IsZero() && now.Before(e.expires.Add(jwksMaxStale))
	if usable && !now.Before(e.refreshAt) && e.fetching == nil {
		c.startFetch(url, e, now) // in the background: the cached set answers meanwhile
	}
	if usable {
		if k := findKey(e.keys, kid); k != nil {
			e.mu.Unlock()
			return k, nil
		}
	}
	// The set lacks kid, or there is none to use: wait for a fetch, the one running or a
	// new one, unless one started too recently.
	done := e.fetching
	if done == nil {
		if !e.lastAttempt.IsZero() && now.Sub(e.lastAttempt) < c.MinRefresh {
			err := e.lastErr
			e.mu.Unlock()
			if !usable && err != nil {
				return nil, fail(ReasonKeyUnavailable, "%s", jwksFetchMessage(err))
			}
			return nil, fail(ReasonUnknownKey, "the token's key id is not in the issuer's key set")
		}
		done = c.startFetch(url, e, now)
	}
	e.mu.Unlock()
	select {
	case <-done:
	case <-ctx.Done():
		return nil, fail(ReasonKeyUnavailable, "the issuer's key set could not be fetched; try again later")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.fetchedAt.IsZero() || !now.Before(e.expires.Add(jwksMaxStale)) {
		return nil, fail(ReasonKeyUnavailable, "%s", jwksFetchMessage(e.lastErr))
	}
	if k := findKey(e.keys, kid); k != nil {
		return k, nil
	}
	return nil, fail(ReasonUnknownKey, "the token's key id is not in the issuer's key set")
}

// startFetch fetches url's set for e in a goroutine of its own, which updates e and then
// closes the channel it returns. The fetch is not tied to the request that started it:
// other requests may be waiting for it. e.mu must be held.
func (c *JWKSCache) startFetch(url string, e *jwksEntry, now time.Time) chan struct{} {
	done := make(chan struct{})
	e.fetching = done
	e.lastAttempt = now
	e.fetches++
	go func() {
		set, lifetime, err := c.fetch(context.Background(), url)
		e.mu.Lock()
		defer e.mu.Unlock()
		if err == nil {
			e.keys, e.fetchedAt, e.expires, e.refreshAt = set, now, now.Add(lifetime), now.Add(lifetime)
		} else {
			// Keep the set there is, and try again after MinRefresh rather than at every
			// request while the issuer's server fails.
			e.refreshAt = now.Add(c.MinRefresh)
		}
		e.lastErr = err
		e.fetching = nil
		close(done)
	}()
	return done
}

func findKey(set jose.JSONWebKeySet, kid string) *jose.JSONWebKey {
	for i := range set.Keys {
		k := &set.Keys[i]
		if (kid == "" || k.KeyID == kid) && k.Valid() && k.IsPublic() && (k.Use == "" || k.Use == "sig") {
			return k
		}
	}
	return nil
}

func (c *JWKSCache) fetch(ctx context.Context, url string) (jose.JSONWebKeySet, time.Duration, error) {
	var set jose.JSONWebKeySet
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return set, 0, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.Client.Do(req)
	if err != nil {
		return set, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return set, 0, fmt.Errorf("JWKS answered %d", resp.StatusCode)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes))
	if err != nil {
		return set, 0, err
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return set, 0, err
	}
	return set, jwksLifetime(resp.Header.Values("Cache-Control")), nil
}

// jwksLifetime is how long a key set is fresh: its Cache-Control max-age within
// [jwksMinLifetime, jwksMaxLifetime]; no-store or no-cache the minimum; without a
// readable max-age, jwksDefaultLifetime.
func jwksLifetime(cacheControl []string) time.Duration {
	lifetime, found := jwksDefaultLifetime, false
	for _, v := range cacheControl {
		for _, directive := range strings.Split(v, ",") {
			name, value, _ := strings.Cut(strings.TrimSpace(directive), "=")
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "no-store", "no-cache":
				return jwksMinLifetime
			case "max-age":
				if found {
					continue // the first max-age wins, as in HTTP caches
				}
				secs, err := strconv.ParseInt(strings.Trim(strings.TrimSpace(value), `"`), 10, 64)
				if errors.Is(err, strconv.ErrRange) && secs > 0 {
					err = nil // more seconds than an int64 holds: the longest lifetime
				}
				if err != nil || secs < 0 {
					continue
				}
				found = true
				lifetime = jwksMaxLifetime
				if secs < int64(jwksMaxLifetime/time.Second) {
					lifetime = time.Duration(secs) * time.Second
				}
			}
		}
	}
	return min(max(lifetime, jwksMinLifetime), jwksMaxLifetime)
}

// jwksFetchMessage tells the sender why the key set is missing, without the URL or address.
func jwksFetchMessage(err error) string {
	var refused *egress.RefusedError
	switch {
	case errors.Is(err, errJWKSRedirect):
		return "the issuer's key set URL answered with a redirect, which is not followed; configure the final URL"
	case errors.As(err, &refused):
		return "the issuer's key set URL is refused by the receiver's egress policy"
	}
	return "the issuer's key set could not be fetched; try again later"
}

// JWTConfig is what a token must satisfy.
type JWTConfig struct {
	JWKSURL  string
	Issuer   string
	Audience string
}

// ParseBearer extracts the token from an Authorization header.
func ParseBearer(value string) (string, error) {
	if value == "" {
		return "", fail(ReasonMissingHeader, "header Authorization: Bearer <jwt> is required")
	}
	scheme, token, ok := strings.Cut(strings.TrimSpace(value), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return "", fail(ReasonMalformedHeader, "header Authorization must be Bearer <jwt>")
	}
	if len(token) > maxTokenBytes {
		return "", fail(ReasonMalformedHeader, "the bearer token is too long")
	}
	return strings.TrimSpace(token), nil
}

// JWT checks a bearer token: RS256 or ES256, a key from the JWKS, issuer, audience, and
// exp/nbf/iat with leeway. A token without exp is refused.
func JWT(ctx context.Context, cache *JWKSCache, cfg JWTConfig, authorization string, now time.Time, leeway time.Duration) error {
	raw, err := ParseBearer(authorization)
	if err != nil {
		return err
	}
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil || len(tok.Headers) != 1 {
		return fail(ReasonInvalidToken, "the bearer token is not a JWS signed with RS256 or ES256")
	}
	key, err := cache.Key(ctx, cfg.JWKSURL, tok.Headers[0].KeyID, now)
	if err != nil {
		return err
	}
	var claims jwt.Claims
	if err := tok.Claims(key.Key, &claims); err != nil {
		return fail(ReasonInvalidSignature, "the bearer token's signature does not verify")
	}
	if claims.Expiry == nil {
		return fail(ReasonInvalidToken, "the bearer token has no exp claim")
	}
	if err := claims.ValidateWithLeeway(jwt.Expected{Issuer: cfg.Issuer, AnyAudience: jwt.Audience{cfg.Audience}, Time: now}, leeway); err != nil {
		reason := ReasonInvalidToken
		if errors.Is(err, jwt.ErrExpired) || errors.Is(err, jwt.ErrNotValidYet) || errors.Is(err, jwt.ErrIssuedInTheFuture) {
			reason = ReasonStaleTimestamp
		}
		return fail(reason, "the bearer token is not valid here: %s", strings.TrimPrefix(err.Error(), "go-jose/go-jose/jwt: "))
	}
	return nil
}
