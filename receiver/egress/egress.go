// Package egress decides which addresses the receiver may connect to. Every outbound
// connection of the receiver (deliveries to destinations, JWKS fetches) is dialled through
// a Guard, which checks the resolved address at connect time, after DNS, so that a name
// cannot get around the policy (docs/security.md, Egress).
package egress

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"
)

// Kind is what a connection is for; the private ranges are open to Service only.
type Kind int

const (
	// URL is a destination.url or a JWKS URL: anyone who can write an endpoint chooses it,
	// so it reaches public addresses, and private ones only within the allow list.
	URL Kind = iota
	// Service is a Service of the endpoint's own namespace, resolved by the operator: it may
	// reach the cluster's private ranges.
	Service
)

func (k Kind) String() string {
	if k == Service {
		return "service"
	}
	return "url"
}

// Config is what a Guard allows beyond public addresses, and what it refuses besides the
// fixed rules.
type Config struct {
	// AllowCIDRs are ranges that every kind may reach, whatever else they are (loopback,
	// private, the API server...), except unspecified and multicast addresses
	// (--destination-allow-cidrs).
	AllowCIDRs []netip.Prefix
	// AllowLinkLocal lets every kind reach link-local addresses such as 169.254.169.254
	// (--allow-link-local-destinations).
	AllowLinkLocal bool
	// APIServer are the API server's addresses (from the receiver's kubeconfig).
	APIServer []netip.Addr
	// Own are the receiver pod's addresses (see OwnAddrs).
	Own []netip.Addr
}

// Guard checks the addresses of outbound connections. It is immutable and safe for
// concurrent use.
type Guard struct {
	allow          []netip.Prefix
	allowLinkLocal bool
	apiServer      map[netip.Addr]bool
	own            map[netip.Addr]bool
}

// New returns a guard for cfg.
func New(cfg Config) *Guard {
	g := &Guard{allowLinkLocal: cfg.AllowLinkLocal, apiServer: addrSet(cfg.APIServer), own: addrSet(cfg.Own)}
	for _, p := range cfg.AllowCIDRs {
		if p.IsValid() {
			g.allow = append(g.allow, netip.PrefixFrom(p.Addr().Unmap(), unmappedBits(p)).Masked())
		}
	}
	return g
}

// Default is the guard of a receiver with no options: no allow list, no link-local, this
// machine's own addresses refused, and no API server known.
func Default() *Guard { return New(Config{Own: OwnAddrs()}) }

func addrSet(addrs []netip.Addr) map[netip.Addr]bool {
	m := make(map[netip.Addr]bool, len(addrs))
	for _, a := range addrs {
		if a.IsValid() {
			m[a.Unmap().WithZone("")] = true
		}
	}
	return m
}

// unmappedBits keeps an IPv4-mapped prefix (::ffff:10.0.0.0/104) meaningful once unmapped.
func unmappedBits(p netip.Prefix) int {
	if p.Addr().Is4In6() {
		return max(p.Bits()-96, 0)
	}
	return p.Bits()
}

// Ranges that only Service destinations (or the allow list) reach: RFC 1918, RFC 6598
// (carrier-grade NAT, used by some clusters for pods) and IPv6 unique local addresses.
var privateRanges = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("fc00::/7"),
}

// Ranges that are never a destination: "this network" (0.0.0.0/8, which Linux may route to
// the host itself), and the reserved 240.0.0.0/4, which holds the broadcast address.
var neverRanges = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("240.0.0.0/4"),
}

// RefusedError is a connection the egress policy does not allow. Its text names the
// address, for the receiver's log only; callers show their users a fixed phrase.
type RefusedError struct {
	Addr string
	Kind Kind
	// Rule is why, such as "loopback" or "a private range".
	Rule string
}

func (e *RefusedError) Error() string {
	hint := ""
	switch e.Rule {
	case ruleLinkLocal:
		hint = " (see --allow-link-local-destinations, --destination-allow-cidrs)"
	case ruleUnspecified, ruleMulticast, ruleInvalid:
	default:
		hint = " (see --destination-allow-cidrs)"
	}
	return fmt.Sprintf("egress policy refuses %s for a %s destination: %s%s", e.Addr, e.Kind, e.Rule, hint)
}

const (
	ruleInvalid     = "not an IP address"
	ruleUnspecified = "unspecified or reserved address"
	ruleMulticast   = "multicast address"
	ruleLinkLocal   = "link-local address"
	ruleLoopback    = "loopback address"
	ruleAPIServer   = "the API server's address"
	ruleOwn         = "the receiver's own address"
	rulePrivate     = "private range, open to service destinations only"
	ruleNotService  = "not an address of the destination's Service"
)

type serviceAddrsKey struct{}

// WithServiceAddrs carries the addresses of the Service a Service connection is for (its
// cluster IPs, or a headless Service's endpoints, as the operator resolved them in the
// endpoint's namespace): the dialer then lets it reach those and no other private or
// public address, so that a Service name cannot be made to resolve elsewhere. Without
// them (a table from an operator that did not send them) any private address passes.
func WithServiceAddrs(ctx context.Context, addrs []netip.Addr) context.Context {
	return context.WithValue(ctx, serviceAddrsKey{}, addrs)
}

func serviceAddrs(ctx context.Context) []netip.Addr {
	addrs, _ := ctx.Value(serviceAddrsKey{}).([]netip.Addr)
	return addrs
}

// Check says whether a connection of kind may go to addr: nil, or a *RefusedError.
// In order: unspecified, reserved and multicast addresses never; the allow list always;
// link-local only with AllowLinkLocal; loopback, the API server and the receiver's own
// addresses never; for a Service whose own addresses are known (CheckService) those
// only; private ranges for Service only; everything else (public) for all.
func (g *Guard) Check(addr netip.Addr, kind Kind) error {
	return g.CheckService(addr, kind, nil)
}

// CheckService is Check for a connection to one Service whose own addresses are known:
// a Service connection to anything else that the allow list does not cover is refused.
func (g *Guard) CheckService(addr netip.Addr, kind Kind, own []netip.Addr) error {
	ip := addr.Unmap().WithZone("")
	refuse := func(rule string) error { return &RefusedError{Addr: ip.String(), Kind: kind, Rule: rule} }
	switch {
	case !ip.IsValid():
		return &RefusedError{Addr: addr.String(), Kind: kind, Rule: ruleInvalid}
	case ip.IsUnspecified() || inAny(neverRanges, ip):
		return refuse(ruleUnspecified)
	case ip.IsMulticast():
		return refuse(ruleMulticast)
	case inAny(g.allow, ip):
		return nil
	case ip.IsLinkLocalUnicast():
		if g.allowLinkLocal {
			return nil
		}
		return refuse(ruleLinkLocal)
	case ip.IsLoopback():
		return refuse(ruleLoopback)
	case g.apiServer[ip]:
		return refuse(ruleAPIServer)
	case g.own[ip]:
		return refuse(ruleOwn)
	case kind == Service && len(own) > 0:
		for _, a := range own {
			if a.Unmap().WithZone("") == ip {
				return nil
			}
		}
		return refuse(ruleNotService)
	case inAny(privateRanges, ip):
		if kind == Service {
			return nil
		}
		return refuse(rulePrivate)
	}
	return nil
}

func inAny(prefixes []netip.Prefix, ip netip.Addr) bool {
	for _, p := range prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// Control is a net.Dialer Control function that refuses, before connecting, a socket
// whose address Check does not allow. An address that does not parse is refused.
func (g *Guard) Control(kind Kind) func(network, address string, c syscall.RawConn) error {
	return func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return &RefusedError{Addr: address, Kind: kind, Rule: ruleInvalid}
		}
		return g.Check(ap.Addr(), kind)
	}
}

// Dialer returns a dialer whose every connection for kind passes Check (CheckService
// with the addresses of WithServiceAddrs in the dial's context): each address a name
// resolves to is checked as it is dialled.
func (g *Guard) Dialer(kind Kind) *net.Dialer {
	return &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second,
		ControlContext: func(ctx context.Context, _, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return &RefusedError{Addr: address, Kind: kind, Rule: ruleInvalid}
			}
			return g.CheckService(ap.Addr(), kind, serviceAddrs(ctx))
		}}
}

// DialContext is Dialer(kind).DialContext, for an http.Transport. Such a transport must
// not use a proxy (Proxy nil), or the guard checks the proxy instead of the destination.
func (g *Guard) DialContext(kind Kind) func(ctx context.Context, network, address string) (net.Conn, error) {
	return g.Dialer(kind).DialContext
}

// OwnAddrs are the receiver pod's addresses: those of this machine's interfaces and, when
// set, $POD_IP and $POD_IPS (comma-separated), as the chart passes them.
func OwnAddrs() []netip.Addr {
	var out []netip.Addr
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil {
				out = append(out, p.Addr())
			}
		}
	}
	for _, v := range strings.Split(os.Getenv("POD_IP")+","+os.Getenv("POD_IPS"), ",") {
		if a, err := netip.ParseAddr(strings.TrimSpace(v)); err == nil {
			out = append(out, a)
		}
	}
	return out
}

// LookupHost resolves the host of a kubeconfig's server ("https://10.96.0.1:443",
// "api.example.com:6443", "localhost") to its addresses.
func LookupHost(ctx context.Context, server string) ([]netip.Addr, error) {
	if !strings.Contains(server, "://") {
		server = "https://" + server
	}
	u, err := url.Parse(server)
	if err != nil {
		return nil, err
	}
	host := u.Hostname()
	if host == "" {
		return nil, fmt.Errorf("no host in %q", server)
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}
