package delivery

import (
	"net/http"
	"net/netip"
	"time"

	"github.com/hookgate/hookgate/internal/routing"
	"github.com/hookgate/hookgate/receiver/egress"
)

// clients are the dispatcher's outbound clients: one per kind of destination, each with
// one shared transport whose dialer checks every resolved address against the egress
// guard at connect time. Two transports, not one with a per-request flag, because a
// transport reuses idle connections by host: a connection opened for a Service
// destination must never carry a request to a url destination naming the same host.
type clients struct {
	url, service *http.Client
}

// newClients builds both clients on guard (nil: egress.Default(), which refuses loopback
// and private addresses to url destinations).
func newClients(guard *egress.Guard) clients {
	if guard == nil {
		guard = egress.Default()
	}
	return clients{url: newClient(guard, egress.URL), service: newClient(guard, egress.Service)}
}

// forDestination is the client for d: the service one only for a Service that the
// operator resolved in the endpoint's own namespace.
func (c clients) forDestination(d *routing.Destination) *http.Client {
	if d.Service {
		return c.service
	}
	return c.url
}

// serviceAddrs parses a Service destination's addresses. One that does not parse stays
// as the zero address, which matches nothing: a list of only such entries refuses every
// address instead of falling back to any private one.
func serviceAddrs(addrs []string) []netip.Addr {
	out := make([]netip.Addr, len(addrs))
	for i, s := range addrs {
		out[i], _ = netip.ParseAddr(s)
	}
	return out
}

func newClient(guard *egress.Guard, kind egress.Kind) *http.Client {
	return &http.Client{
		Transport: newTransport(guard, kind),
		// Redirects are answers, not invitations: a 3xx fails the attempt.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// newTransport is a shared outbound transport for one kind of destination. It uses no
// proxy: the guard must see the destination's own address.
func newTransport(guard *egress.Guard, kind egress.Kind) *http.Transport {
	return &http.Transport{
		DialContext:           guard.DialContext(kind),
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   32,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 0, // the per-attempt timeout bounds everything
		ExpectContinueTimeout: time.Second,
	}
}
