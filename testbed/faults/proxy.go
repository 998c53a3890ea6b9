// Package faults puts a TCP proxy between a client and a server so that a
// test can break the connection on purpose: cut it, black-hole it (accept and
// never answer), slow it down, and heal it again. It is a thin layer over
// Toxiproxy used as a library, with no API server of its own.
package faults

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"k8s.io/client-go/rest"
)

// toxiproxy wants a server for its metrics and logs even when used as a
// library; one quiet instance serves every proxy in the process.
var (
	serverOnce sync.Once
	server     *toxiproxy.ApiServer
)

func quietServer() *toxiproxy.ApiServer {
	serverOnce.Do(func() {
		server = toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	})
	return server
}

// Proxy forwards one loopback port to an upstream address, with faults on
// demand. Its methods are safe for concurrent use.
type Proxy struct {
	mu    sync.Mutex
	proxy *toxiproxy.Proxy
	name  string
	// cut is true while the proxy refuses connections.
	cut bool
	// blackholed is true while a black hole swallows bytes.
	blackholed bool
}

// New starts a proxy called name from a free loopback port to upstream
// (host:port).
func New(name, upstream string) (*Proxy, error) {
	return NewAt(name, "127.0.0.1:0", upstream)
}

// NewAt is New on a given listen address, so that a proxy that fronts a
// restarting server can keep its port.
func NewAt(name, listen, upstream string) (*Proxy, error) {
	p := toxiproxy.NewProxy(quietServer(), name, listen, upstream)
	if err := p.Start(); err != nil {
		return nil, fmt.Errorf("proxy %s: listen on %s: %w", name, listen, err)
	}
	return &Proxy{proxy: p, name: name}, nil
}

// Addr returns the host:port clients should dial.
func (p *Proxy) Addr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.proxy.Listen
}

// Config returns a copy of base that reaches its server through this proxy.
// TLS still checks the server's name as base would have.
func (p *Proxy) Config(base *rest.Config) *rest.Config {
	c := rest.CopyConfig(base)
	u, err := url.Parse(base.Host)
	if err != nil || u.Host == "" {
		u = &url.URL{Scheme: "https", Host: base.Host}
	}
	if c.TLSClientConfig.ServerName == "" && !c.TLSClientConfig.Insecure {
		c.TLSClientConfig.ServerName = u.Hostname()
	}
	u.Host = p.Addr()
	c.Host = u.String()
	return c
}

// SetUpstream points the proxy at a new upstream; open connections are closed.
func (p *Proxy) SetUpstream(upstream string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.proxy.Update(&toxiproxy.Proxy{Listen: p.proxy.Listen, Upstream: upstream, Enabled: !p.cut}); err != nil {
		return fmt.Errorf("proxy %s: set upstream %s: %w", p.name, upstream, err)
	}
	return nil
}

// Cut closes every open connection and refuses new ones until Heal: as if
// the network between client and server went down.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	p.proxy.Stop()
}

// BlackHole keeps accepting connections and bytes but delivers none in
// either direction, until Heal: requests hang until their own timeouts.
func (p *Proxy) BlackHole() error {
	if err := p.addBoth("blackhole", "timeout", `{"timeout":0}`); err != nil {
		return err
	}
	p.mu.Lock()
	p.blackholed = true
	p.mu.Unlock()
	return nil
}

// Latency delays every byte by d in each direction, until Heal: a request
// and its answer take at least 2d.
func (p *Proxy) Latency(d time.Duration) error {
	return p.addBoth("latency", "latency", fmt.Sprintf(`{"latency":%d}`, d.Milliseconds()))
}

func (p *Proxy) addBoth(name, kind, attributes string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, stream := range []string{"upstream", "downstream"} {
		body := fmt.Sprintf(`{"name":%q,"type":%q,"stream":%q,"attributes":%s}`, name+"_"+stream, kind, stream, attributes)
		if _, err := p.proxy.Toxics.AddToxicJson(strings.NewReader(body)); err != nil {
			return fmt.Errorf("proxy %s: add %s toxic: %w", p.name, kind, err)
		}
	}
	return nil
}

// Heal removes every fault: the proxy accepts connections again and passes
// bytes untouched. Connections that carried a black hole are closed, since
// the bytes they dropped left them unusable.
func (p *Proxy) Heal() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.proxy.Toxics.ResetToxics(context.Background())
	if p.blackholed && !p.cut {
		p.proxy.Stop()
	}
	if p.cut || p.blackholed {
		p.cut, p.blackholed = false, false
		if err := p.proxy.Start(); err != nil {
			return fmt.Errorf("proxy %s: restart: %w", p.name, err)
		}
	}
	return nil
}

// Close stops the proxy for good.
func (p *Proxy) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.proxy.Toxics.ResetToxics(context.Background())
	p.proxy.Stop()
}

// FreePort returns a loopback address with a port nobody listens on now.
// Another process may take it before the caller binds it; on loopback in a
// test that is rare enough to accept, and fails loudly when it happens.
func FreePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
