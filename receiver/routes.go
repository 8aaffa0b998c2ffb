package receiver

import (
	"crypto/rsa"
	"net/netip"
	"sync/atomic"

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

// routeCache recompiles routes when the holder's table changes. Requests read it without
// a lock; two that see a new table at once may both compile it, and either result is right.
type routeCache struct {
	holder *routing.Holder
	cur    atomic.Pointer[routes]
}

func (c *routeCache) get() *routes {
	t := c.holder.Current()
	if t == nil {
		return nil
	}
	if r := c.cur.Load(); r != nil && r.table == t {
		return r
	}
	r := compileRoutes(t)
	c.cur.Store(r)
	return r
}
