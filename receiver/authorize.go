package receiver

import (
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"github.com/hookgate/hookgate/internal/routing"
)

// authorize: the partner may use this endpoint, is not suspended, and sends from an
// allowed address. Every failure is a 403.
func authorize(rt *routes, ep *routing.Endpoint, p *routing.Partner, client netip.Addr) *rejection {
	if ep != nil {
		if p.Namespace != ep.Namespace || (len(ep.Partners) > 0 && !slices.Contains(ep.Partners, p.Name)) {
			return reject(http.StatusForbidden, "partner_not_allowed", "Forbidden", "this partner may not post to this endpoint")
		}
	}
	if p.Suspended {
		return reject(http.StatusForbidden, "partner_suspended", "Forbidden", "this partner is suspended; contact the platform team")
	}
	if allowed, restricted := rt.allowlist[routing.Key(p.Namespace, p.Name)]; restricted {
		ok := false
		for _, prefix := range allowed {
			if prefix.Contains(client) {
				ok = true
				break
			}
		}
		if !ok {
			return reject(http.StatusForbidden, "ip_denied", "Forbidden", "requests from this address are not allowed for this partner")
		}
	}
	return nil
}

// clientIP is the connection's address, unless that is a trusted proxy: then the
// right-most X-Forwarded-For entry that is not a trusted proxy.
func clientIP(r *http.Request, trusted []netip.Prefix) netip.Addr {
	peer := parseAddr(r.RemoteAddr)
	if !isTrusted(peer, trusted) {
		return peer
	}
	hops := forwardedFor(r.Header.Values("X-Forwarded-For"))
	for i := len(hops) - 1; i >= 0; i-- {
		addr := parseAddr(hops[i])
		if !addr.IsValid() {
			// A hop we cannot read ends what we can trust.
			return peer
		}
		if !isTrusted(addr, trusted) {
			return addr
		}
	}
	return peer
}

// forwardedFor splits X-Forwarded-For header values into hops, in order.
func forwardedFor(values []string) []string {
	var hops []string
	for _, v := range values {
		for _, hop := range strings.Split(v, ",") {
			if hop = strings.TrimSpace(hop); hop != "" {
				hops = append(hops, hop)
			}
		}
	}
	return hops
}

func parseAddr(s string) netip.Addr {
	if host, _, err := net.SplitHostPort(s); err == nil {
		s = host
	}
	s = strings.Trim(s, "[]")
	addr, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}
	}
	return addr.Unmap()
}

func isTrusted(addr netip.Addr, trusted []netip.Prefix) bool {
	if !addr.IsValid() {
		return false
	}
	for _, p := range trusted {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// ParseTrustedProxies reads a comma-separated list of CIDRs or addresses.
func ParseTrustedProxies(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, item := range strings.Split(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if !strings.Contains(item, "/") {
			addr, err := netip.ParseAddr(item)
			if err != nil {
				return nil, err
			}
			out = append(out, netip.PrefixFrom(addr.Unmap(), addr.Unmap().BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(item)
		if err != nil {
			return nil, err
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
