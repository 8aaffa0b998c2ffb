package routing

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"time"
)

type index struct {
	byPath     map[string]*Endpoint
	byKeyHash  map[string]*Partner
	byPartner  map[string]*Partner
	byEndpoint map[string]*Endpoint
}

func (t *Table) buildIndex() {
	ix := &index{
		byPath:     make(map[string]*Endpoint, len(t.Endpoints)),
		byKeyHash:  make(map[string]*Partner, len(t.Partners)),
		byPartner:  make(map[string]*Partner, len(t.Partners)),
		byEndpoint: make(map[string]*Endpoint, len(t.Endpoints)),
	}
	for i := range t.Endpoints {
		ix.byPath[t.Endpoints[i].Path] = &t.Endpoints[i]
		ix.byEndpoint[Key(t.Endpoints[i].Namespace, t.Endpoints[i].Name)] = &t.Endpoints[i]
	}
	for i := range t.Partners {
		p := &t.Partners[i]
		ix.byPartner[Key(p.Namespace, p.Name)] = p
		for _, c := range p.Credentials {
			ix.byKeyHash[c.APIKeySHA256] = p
		}
	}
	t.index = ix
}

func (t *Table) idx() *index {
	if t.index == nil {
		t.buildIndex()
	}
	return t.index
}

// EndpointByPath finds the endpoint serving a path.
func (t *Table) EndpointByPath(path string) (*Endpoint, bool) {
	e, ok := t.idx().byPath[path]
	return e, ok
}

// Partner finds a partner by namespace and name.
func (t *Table) Partner(namespace, name string) (*Partner, bool) {
	p, ok := t.idx().byPartner[Key(namespace, name)]
	return p, ok
}

// HashAPIKey is the hash under which the table knows an API key.
func HashAPIKey(apiKey string) string {
	sum := sha256.Sum256([]byte(apiKey))
	return hex.EncodeToString(sum[:])
}

// PartnerByAPIKey finds the partner owning a currently valid API key and returns the
// credential it matched. The map lookup is on a hash of the key, so its timing says
// nothing about the key; the final comparison is constant-time all the same.
func (t *Table) PartnerByAPIKey(apiKey string, now time.Time) (*Partner, *Credential, bool) {
	h := HashAPIKey(apiKey)
	p, ok := t.idx().byKeyHash[h]
	if !ok {
		return nil, nil, false
	}
	for i := range p.Credentials {
		c := &p.Credentials[i]
		if subtle.ConstantTimeCompare([]byte(c.APIKeySHA256), []byte(h)) == 1 && c.ValidAt(now) {
			return p, c, true
		}
	}
	return nil, nil, false
}

// ValidAt reports whether the credential is usable at a time.
func (c *Credential) ValidAt(now time.Time) bool { return c.NotAfter == nil || now.Before(*c.NotAfter) }

// Endpoint finds an endpoint by namespace and name.
func (t *Table) Endpoint(namespace, name string) (*Endpoint, bool) {
	e, ok := t.idx().byEndpoint[Key(namespace, name)]
	return e, ok
}
