package egress

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"
)

// The decision itself, for every rule; nothing here dials the internet.
func TestGuardCheck(t *testing.T) {
	apiServer, own := netip.MustParseAddr("10.96.0.1"), netip.MustParseAddr("10.244.1.7")
	strict := New(Config{APIServer: []netip.Addr{apiServer}, Own: []netip.Addr{own, netip.MustParseAddr("fd00::7")}})
	allowing := New(Config{
		AllowCIDRs:     []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"), netip.MustParsePrefix("10.20.0.0/16"), netip.MustParsePrefix("10.96.0.1/32")},
		AllowLinkLocal: true, APIServer: []netip.Addr{apiServer}, Own: []netip.Addr{own},
	})
	const ok = ""
	cases := []struct {
		addr  string
		guard *Guard
		// want is the rule refusing a url and a service destination ("": allowed).
		url, service string
	}{
		{"127.0.0.1", strict, ruleLoopback, ruleLoopback},
		{"127.5.6.7", strict, ruleLoopback, ruleLoopback},
		{"::1", strict, ruleLoopback, ruleLoopback},
		{"::ffff:127.0.0.1", strict, ruleLoopback, ruleLoopback},
		{"169.254.169.254", strict, ruleLinkLocal, ruleLinkLocal},
		{"fe80::1", strict, ruleLinkLocal, ruleLinkLocal},
		{"fe80::1%eth0", strict, ruleLinkLocal, ruleLinkLocal},
		{"0.0.0.0", strict, ruleUnspecified, ruleUnspecified},
		{"::", strict, ruleUnspecified, ruleUnspecified},
		{"0.1.2.3", strict, ruleUnspecified, ruleUnspecified},
		{"255.255.255.255", strict, ruleUnspecified, ruleUnspecified},
		{"224.0.0.1", strict, ruleMulticast, ruleMulticast},
		{"ff02::1", strict, ruleMulticast, ruleMulticast},
		{"10.1.2.3", strict, rulePrivate, ok},
		{"172.16.0.1", strict, rulePrivate, ok},
		{"192.168.1.1", strict, rulePrivate, ok},
		{"100.64.0.1", strict, rulePrivate, ok},
		{"fd12:3456::1", strict, rulePrivate, ok},
		{"::ffff:10.1.2.3", strict, rulePrivate, ok},
		{"10.96.0.1", strict, ruleAPIServer, ruleAPIServer},
		{"10.244.1.7", strict, ruleOwn, ruleOwn},
		{"fd00::7", strict, ruleOwn, ruleOwn},
		{"93.184.216.34", strict, ok, ok},
		{"2606:2800:220:1:248:1893:25c8:1946", strict, ok, ok},
		{"100.128.0.1", strict, ok, ok}, // just past 100.64.0.0/10
		// The allow list wins over loopback, private, the API server...
		{"127.0.0.1", allowing, ok, ok},
		{"::1", allowing, ok, ok},
		{"10.20.3.4", allowing, ok, ok},
		{"10.96.0.1", allowing, ok, ok},
		{"10.21.0.1", allowing, rulePrivate, ok},
		{"10.244.1.7", allowing, ruleOwn, ruleOwn},
		{"169.254.169.254", allowing, ok, ok},
		// ...but not over unspecified and multicast addresses.
		{"0.0.0.0", New(Config{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}}), ruleUnspecified, ruleUnspecified},
		{"224.0.0.1", New(Config{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}}), ruleMulticast, ruleMulticast},
		// An IPv4-mapped allow entry is the IPv4 range.
		{"127.0.0.1", New(Config{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("::ffff:127.0.0.0/104")}}), ok, ok},
	}
	for _, c := range cases {
		for _, k := range []struct {
			kind Kind
			want string
		}{{URL, c.url}, {Service, c.service}} {
			name := c.addr + " " + k.kind.String()
			if c.guard == allowing {
				name += " (allow list)"
			}
			t.Run(name, func(t *testing.T) {
				err := c.guard.Check(netip.MustParseAddr(c.addr), k.kind)
				var refused *RefusedError
				switch {
				case k.want == ok && err != nil:
					t.Fatalf("refused: %v", err)
				case k.want != ok && !errors.As(err, &refused):
					t.Fatalf("allowed, want refused as %q (err %v)", k.want, err)
				case k.want != ok && refused.Rule != k.want:
					t.Fatalf("refused as %q, want %q", refused.Rule, k.want)
				}
			})
		}
	}
}

// A real dial: the refusal happens before connecting, whatever the name resolves to.
func TestDialerRefusesBeforeConnecting(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan struct{}, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			accepted <- struct{}{}
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	// Without an allow list, loopback is refused even to a Service destination, by address
	// and by a name that resolves to it.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, addr := range []string{ln.Addr().String(), net.JoinHostPort("localhost", strconv.Itoa(port))} {
		_, err := Default().DialContext(Service)(ctx, "tcp", addr)
		var refused *RefusedError
		if !errors.As(err, &refused) {
			t.Fatalf("dial %s: %v, want a refusal", addr, err)
		}
	}
	allowed := New(Config{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	conn, err := allowed.DialContext(URL)(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatalf("dial with loopback allowed: %v", err)
	}
	conn.Close()
	select {
	case <-accepted:
	case <-time.After(5 * time.Second):
		t.Fatal("the allowed connection never arrived")
	}
	select {
	case <-accepted:
		t.Fatal("a refused dial connected")
	default:
	}
}

func TestLookupHost(t *testing.T) {
	for server, want := range map[string]string{
		"https://10.96.0.1:443": "10.96.0.1",
		"127.0.0.1:6443":        "127.0.0.1",
		"https://[fd00::1]:443": "fd00::1",
		"https://localhost:1":   "127.0.0.1",
	} {
		addrs, err := LookupHost(context.Background(), server)
		if err != nil {
			t.Fatalf("%s: %v", server, err)
		}
		found := false
		for _, a := range addrs {
			found = found || a.Unmap().String() == want
		}
		if !found {
			t.Errorf("%s resolved to %v, want %s among them", server, addrs, want)
		}
	}
}

func TestOwnAddrsIncludePodIP(t *testing.T) {
	t.Setenv("POD_IP", "10.244.9.9")
	t.Setenv("POD_IPS", "10.244.9.9,fd00::9")
	got := map[string]bool{}
	for _, a := range OwnAddrs() {
		got[a.String()] = true
	}
	for _, want := range []string{"10.244.9.9", "fd00::9", "127.0.0.1"} {
		if !got[want] {
			t.Errorf("own addresses %v lack %s", got, want)
		}
	}
}

// A Service destination whose Service's addresses are known reaches those only: a name
// made to resolve to another namespace's pod or a node (an ExternalName, hand-made
// records) is refused, private or public; the fixed refusals and the allow list stay in
// force above it, and without known addresses the private ranges stay open (tables of
// older operators).
func TestServiceOwnAddresses(t *testing.T) {
	guard := New(Config{
		AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16")},
		APIServer:  []netip.Addr{netip.MustParseAddr("10.96.0.1")},
	})
	billing := []netip.Addr{netip.MustParseAddr("10.96.14.2"), netip.MustParseAddr("fd00:10::e")} // tenant-a/billing
	const ok = ""
	for _, c := range []struct {
		name string
		addr string
		own  []netip.Addr
		kind Kind
		want string
	}{
		{"its cluster IP", "10.96.14.2", billing, Service, ok},
		{"its IPv6 cluster IP", "fd00:10::e", billing, Service, ok},
		{"its cluster IP, IPv4-mapped", "::ffff:10.96.14.2", billing, Service, ok},
		{"tenant-b's pod", "10.244.3.9", billing, Service, ruleNotService},
		{"a node", "192.168.0.10", billing, Service, ruleNotService},
		{"a public host an ExternalName names", "93.184.216.34", billing, Service, ruleNotService},
		{"the API server, even if listed", "10.96.0.1", []netip.Addr{netip.MustParseAddr("10.96.0.1")}, Service, ruleAPIServer},
		{"loopback, even if listed", "127.0.0.1", []netip.Addr{netip.MustParseAddr("127.0.0.1")}, Service, ruleLoopback},
		{"the allow list", "10.20.1.1", billing, Service, ok},
		{"any private address without known addresses", "10.244.3.9", nil, Service, ok},
		{"a url is not a Service", "10.96.14.2", billing, URL, rulePrivate},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := guard.CheckService(netip.MustParseAddr(c.addr), c.kind, c.own)
			var refused *RefusedError
			switch {
			case c.want == ok && err != nil:
				t.Fatalf("refused: %v", err)
			case c.want != ok && !errors.As(err, &refused):
				t.Fatalf("allowed, want refused as %q (err %v)", c.want, err)
			case c.want != ok && refused.Rule != c.want:
				t.Fatalf("refused as %q, want %q", refused.Rule, c.want)
			}
		})
	}
	// The dialer takes the addresses from the dial's context, and refuses before
	// connecting: 10.244.3.9 need not exist.
	ctx, cancel := context.WithTimeout(WithServiceAddrs(context.Background(), billing), 5*time.Second)
	defer cancel()
	_, err := guard.DialContext(Service)(ctx, "tcp", "10.244.3.9:80")
	var refused *RefusedError
	if !errors.As(err, &refused) || refused.Rule != ruleNotService {
		t.Fatalf("dialling another namespace's pod for tenant-a/billing: %v, want refused as %q", err, ruleNotService)
	}
}
