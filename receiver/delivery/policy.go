// Package delivery forwards stored events to their destinations: at least once, with
// exponential backoff and full jitter, and records every attempt in the store.
package delivery

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"

	"github.com/hookgate/hookgate/internal/routing"
	"github.com/hookgate/hookgate/receiver/egress"
	"github.com/hookgate/hookgate/receiver/store"
)

// result is what one attempt saw.
type result struct {
	code       int
	err        error
	retryAfter time.Duration // from a Retry-After header, 0 if none
}

// decide turns an attempt's result into the event's next phase (docs/architecture.md): 2xx
// Delivered; 429, 5xx, timeouts and connection errors retried with exponential backoff
// and full jitter (Retry-After honoured, clamped to maxBackoff) until maxAttempts; any
// other answer, a refusal by the egress policy and other permanent errors Failed at once.
func decide(r result, attemptInBudget int32, policy routing.Retry, now time.Time, jitter func(time.Duration) time.Duration) store.Outcome {
	switch {
	case r.err == nil && r.code >= 200 && r.code < 300:
		return store.Outcome{Phase: store.PhaseDelivered}
	case !retryable(r):
		return store.Outcome{Phase: store.PhaseFailed}
	case attemptInBudget >= max(policy.MaxAttempts, 1):
		return store.Outcome{Phase: store.PhaseFailed}
	}
	delay := backoff(attemptInBudget, policy, jitter)
	if r.retryAfter > 0 {
		delay = min(r.retryAfter, policy.MaxBackoff.Std())
	}
	return store.Outcome{Phase: store.PhaseRetrying, NextAttemptAt: now.Add(delay)}
}

func retryable(r result) bool {
	if r.err != nil {
		var permanent *permanentError
		var refused *egress.RefusedError
		return !errors.As(r.err, &permanent) && !errors.As(r.err, &refused)
	}
	return r.code == http.StatusTooManyRequests || r.code >= 500
}

// backoff is full jitter over min(maxBackoff, initial × 2^(n-1)) after the n-th attempt.
func backoff(n int32, policy routing.Retry, jitter func(time.Duration) time.Duration) time.Duration {
	ceiling := policy.InitialBackoff.Std()
	for i := int32(1); i < n && ceiling < policy.MaxBackoff.Std(); i++ {
		ceiling *= 2
	}
	ceiling = min(ceiling, policy.MaxBackoff.Std())
	if ceiling <= 0 {
		return 0
	}
	return jitter(ceiling)
}

// fullJitter draws uniformly from [0, ceiling].
func fullJitter(ceiling time.Duration) time.Duration {
	return time.Duration(rand.Int64N(int64(ceiling) + 1)) //nolint:gosec // jitter needs no cryptographic randomness
}

// parseRetryAfter reads seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// permanentError is a failure that no retry can mend; class is what lastError shows.
type permanentError struct{ class, msg string }

func (e *permanentError) Error() string { return e.msg }

// The permanent failures that send finds before dialling.
var (
	errInvalidDestination = &permanentError{class: classInvalidDestination, msg: "the destination URL is invalid"}
	errSigningKeyUnusable = &permanentError{class: classSigningKey, msg: "the endpoint's signing secret is not usable"}
)

// Error classes: all that lastError (the WebhookEvent and the partner-facing status API)
// ever says about a failed attempt, besides "HTTP <code>" for an answer outside 2xx. They
// name no URL, query string or address; the full error goes to the receiver's log.
const (
	classTimeout            = "timeout"
	classConnRefused        = "connection refused"
	classDNS                = "dns error"
	classTLS                = "tls error"
	classEgressRefused      = "destination refused by egress policy"
	classConnReset          = "connection reset"
	classInvalidDestination = "invalid destination"
	classSigningKey         = "signing key unusable"
	classNetwork            = "network error"
)

// describe renders an attempt's outcome for status.lastError: "" when delivered, "HTTP
// <code>" for another answer, else the error's class.
func describe(r result) string {
	if r.err == nil {
		if r.code >= 200 && r.code < 300 {
			return ""
		}
		return "HTTP " + strconv.Itoa(r.code)
	}
	return classify(r.err)
}

// classify names the class of a transport error. The order matters: a refusal or a DNS
// failure may also be a timeout or wrap an errno, and is reported as what it is first.
func classify(err error) string {
	var (
		refused   *egress.RefusedError
		permanent *permanentError
		dnsErr    *net.DNSError
		netErr    net.Error
	)
	switch {
	case errors.As(err, &refused):
		return classEgressRefused
	case errors.As(err, &permanent):
		return permanent.class
	case isInvalidURL(err):
		return classInvalidDestination
	case errors.As(err, &dnsErr):
		return classDNS
	case isTLS(err):
		return classTLS
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return classTimeout
	case errors.Is(err, syscall.ECONNREFUSED):
		return classConnRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNABORTED),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return classConnReset
	}
	return classNetwork
}

// isInvalidURL: the client refused the URL itself (net/http has no typed error for these).
func isInvalidURL(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "unsupported protocol scheme") || strings.Contains(msg, "no Host in request URL")
}

func isTLS(err error) bool {
	var (
		header   tls.RecordHeaderError
		alert    tls.AlertError
		verify   *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
	)
	if errors.As(err, &header) || errors.As(err, &alert) || errors.As(err, &verify) ||
		errors.As(err, &unknown) || errors.As(err, &hostname) || errors.As(err, &invalid) {
		return true
	}
	// Alerts from the peer ("remote error: tls: ...") and a plain HTTP answer to an https
	// URL have no exported type.
	msg := err.Error()
	return strings.Contains(msg, "tls: ") || strings.Contains(msg, "x509: ") || strings.Contains(msg, "HTTP response to HTTPS client")
}

// logAttempt writes a failed attempt to the receiver's log, once: its class, the
// destination without query string or user info, and the full error with the same URL.
// Refusals by the egress policy are logged at Info level, for the admin to see; other
// failures at V(1), since the destination owner sees their class already.
func logAttempt(log logr.Logger, ev *store.Event, ep *routing.Endpoint, dest *routing.Destination, attempt store.Attempt, r result) {
	if attempt.Error == "" {
		return
	}
	kv := []any{"uuid", ev.UUID, "endpoint", routing.Key(ep.Namespace, ep.Name), "destinationName", dest.NameOrDefault(),
		"attempt", attempt.Number, "class", attempt.Error, "destination", redactURL(dest.URL), "service", dest.Service}
	if r.err == nil {
		log.V(1).Info("delivery attempt failed", append(kv, "code", r.code)...)
		return
	}
	kv = append(kv, "error", redactError(r.err))
	if attempt.Error == classEgressRefused {
		log.Info("delivery refused by the egress policy", kv...)
		return
	}
	log.V(1).Info("delivery attempt failed", kv...)
}

// redactURL drops a URL's query string, fragment and password: they may carry credentials.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = "", false, "", ""
	if u.User != nil {
		u.User = url.User(u.User.Username())
	}
	return u.String()
}

// redactError is err's text with the URL net/http put in it redacted.
func redactError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return (&url.Error{Op: ue.Op, URL: redactURL(ue.URL), Err: ue.Err}).Error()
	}
	return err.Error()
}
