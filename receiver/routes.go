package receiver

import (
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/hookgate/hookgate/internal/routing"
	"github.com/hookgate/hookgate/receiver/verify"
)

// routes is a routing table with what the hot path needs already parsed: allowlists and
// each endpoint's verification scheme and prepared verifier. It is built once per
// loaded table.
type routes struct {
	table     *routing.Table
	allowlist map[string][]netip.Prefix // by partner key; absent: any address
	auth      map[string]*endpointAuth  // by endpoint key; absent: unknown scheme
	// filters are each endpoint's destination filters, by endpoint key, in the order of
	// its AllDestinations (nil: that destination takes every event); absent: no filters.
	filters map[string][]*destinationFilter
}

// endpointAuth is how one endpoint authenticates.
type endpointAuth struct {
	scheme   *verify.Scheme
	verifier verify.Verifier
}

func compileRoutes(t *routing.Table, env verify.Env) *routes {
	r := &routes{table: t, allowlist: map[string][]netip.Prefix{}, auth: map[string]*endpointAuth{}, filters: map[string][]*destinationFilter{}}
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
	for i := range t.Endpoints {
		e := &t.Endpoints[i]
		scheme, ok := verify.Lookup(e.Verification.Type)
		if !ok {
			continue
		}
		verifier, err := scheme.Prepare(e, env)
		if err != nil {
			verifier = verify.Unavailable()
		}
		r.auth[routing.Key(e.Namespace, e.Name)] = &endpointAuth{scheme: scheme, verifier: verifier}
	}
	for i := range t.Endpoints {
		e := &t.Endpoints[i]
		dests := e.AllDestinations()
		for i, d := range dests {
			if d.Filter == nil {
				continue
			}
			fs := r.filters[routing.Key(e.Namespace, e.Name)]
			if fs == nil {
				fs = make([]*destinationFilter, len(dests))
				r.filters[routing.Key(e.Namespace, e.Name)] = fs
			}
			fs[i] = compileDestinationFilter(d.Filter)
		}
	}
	return r
}

// routeCache recompiles routes when the holder's table changes. Requests read it without
// a lock while the table is unchanged. When it changes, one request compiles it and the
// others in flight wait for that one result: compiling prepares every endpoint's
// verifier and filters, and a swap under load would otherwise have every request in
// flight compile the same table at once.
type routeCache struct {
	holder *routing.Holder
	env    verify.Env
	cur    atomic.Pointer[routes]
	mu     sync.Mutex // held while compiling
	// onCompile, when set, is called before each compile (tests count them).
	onCompile func(*routing.Table)
}

func (c *routeCache) get() *routes {
	t := c.holder.Current()
	if t == nil {
		return nil
	}
	if r := c.cur.Load(); r != nil && r.table == t {
		return r
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// The table may have changed again while this request waited: compile the latest,
	// so that a request holding an older one never replaces newer routes with it.
	t = c.holder.Current()
	if r := c.cur.Load(); r != nil && r.table == t {
		return r
	}
	if c.onCompile != nil {
		c.onCompile(t)
	}
	r := compileRoutes(t, c.env)
	c.cur.Store(r)
	return r
}
