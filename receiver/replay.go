package receiver

import (
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/hookgate/hookgate/internal/routing"
	"github.com/hookgate/hookgate/receiver/verify"
)

// replayWindowFloor is the shortest dedup window of an endpoint whose signature carries
// no timestamp (RSASignature, GitHub, Shopify, a generic HMAC without one): nothing else
// stops a captured request from being sent again later, so it is remembered for as long
// as the API allows any window (30 days).
const replayWindowFloor = 30 * 24 * time.Hour

// dedupOn says what a new event is deduplicated on and for how long: its id for its
// endpoint's window, except where a signature without a timestamp would let a captured
// request be replayed. There the window is at least replayWindowFloor, and an id that the
// signature does not cover (a provider's delivery header) or no id at all gives way to
// the body's hash, which the signature does cover: a replay with a new id header is
// still a duplicate.
func dedupOn(scheme *verify.Scheme, ep *routing.Endpoint, parsed parsedEvent, body []byte) (string, time.Duration) {
	on, window := parsed.id, ep.Idempotency.Window.Std()
	if !replayable(scheme, ep) {
		return on, window
	}
	window = max(window, replayWindowFloor)
	idSigned := parsed.id != "" && (!parsed.idFromHeader || (scheme.SignsID != nil && scheme.SignsID(ep.Verification)))
	if !idSigned {
		sum := sha256.Sum256(body)
		on = "sha256:" + hex.EncodeToString(sum[:])
	}
	return on, window
}

// replayable: the endpoint's requests are signed but carry no signed timestamp, so only
// deduplication stops a captured one from being sent again.
func replayable(scheme *verify.Scheme, ep *routing.Endpoint) bool {
	return scheme.Signed && !scheme.Timestamped(ep.Verification)
}
