// Package testproxy is a TCP proxy for outage tests: it forwards to a server and can
// drop every connection and refuse new ones, then come back on the same address, which
// is an outage of that server as its clients see it.
package testproxy

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
)

// Cuttable forwards TCP from Addr to a target.
type Cuttable struct {
	target string
	// Addr is where clients connect.
	Addr  string
	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
}

// New starts a proxy to target on a loopback port; it is cut when the test ends.
func New(t testing.TB, target string) *Cuttable {
	t.Helper()
	p := &Cuttable{target: target, conns: map[net.Conn]bool{}}
	ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.Addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.Cut)
	return p
}

func (p *Cuttable) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.pipe(c)
		}
	}()
}

func (p *Cuttable) pipe(c net.Conn) {
	up, err := (&net.Dialer{}).DialContext(context.Background(), "tcp", p.target)
	if err != nil {
		_ = c.Close()
		return
	}
	p.mu.Lock()
	if p.ln == nil { // cut while dialling
		p.mu.Unlock()
		_ = c.Close()
		_ = up.Close()
		return
	}
	p.conns[c], p.conns[up] = true, true
	p.mu.Unlock()
	go func() { _, _ = io.Copy(up, c); _ = up.Close() }()
	_, _ = io.Copy(c, up)
	_ = c.Close()
}

// Cut closes every connection and stops listening: new connections are refused.
func (p *Cuttable) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		_ = c.Close()
	}
	p.conns = map[net.Conn]bool{}
}

// Restore listens again on the same address.
func (p *Cuttable) Restore(t testing.TB) {
	t.Helper()
	ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", p.Addr)
	if err != nil {
		t.Fatalf("re-listening on %s: %v", p.Addr, err)
	}
	p.serve(ln)
}
