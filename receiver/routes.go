package receiver

import (
	"crypto/rsa"
	"net/netip"
	"sync"

	"github.com/hookgate/hookgate/internal/routing"
	"github.com/hookgate/hookgate/receiver/verify"
)

// routes is a routing table with what the hot path needs already parsed: allowlists and
// RSA keys. It is built once per loaded table.
type routes struct {
	table     *routing.Table
	allowlist map[string][]netip.Prefix // by partner key; absent: any address
	rsaKeys   map[string]*rsa.PublicKey // by endpoint key
}

func compileRoutes(t *routing.Table) *routes {
	r := &routes{table: t, allowlist: map[string][]netip.Prefix{}, rsaKeys: map[string]*rsa.PublicKey{}}
	for _, p := range t.Partners {
		if len(p.IPAllowlist) == 0 {
			continue
		}
		prefixes := make([]netip.Prefix, 0, len(p.IPAllowlist))
		for _, cidr := range p.IPAllowlist {
			if prefix, err := netip.ParsePrefix(cidr); err == nil {
				prefixes = append(prefixes, prefix.Masked())
			}
		}
		// An allowlist whose entries all fail to parse admits nobody, not everybody.
		r.allowlist[routing.Key(p.Namespace, p.Name)] = prefixes
	}
	for _, e := range t.Endpoints {
		if e.Verification.Type == "RSASignature" {
			if key, err := verify.ParseRSAPublicKey(e.Verification.Secret); err == nil {
				r.rsaKeys[routing.Key(e.Namespace, e.Name)] = key
			}
		}
	}
	return r
}

// routeCache recompiles routes when the holder's table changes.
type routeCache struct {
	holder *routing.Holder
	mu     sync.Mutex
	cur    *routes
}

func (c *routeCache) get() *routes {
	t := c.holder.Current()
	if t == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur == nil || c.cur.table != t {
		c.cur = compileRoutes(t)
	}
	return c.cur
}
