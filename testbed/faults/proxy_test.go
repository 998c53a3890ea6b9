package faults

import (
	"bufio"
	"io"
	"net"
	"testing"
	"time"
)

func echoServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	return l.Addr().String()
}

// roundTrip sends a line through addr and reads it back within limit.
func roundTrip(addr string, limit time.Duration) error {
	c, err := net.DialTimeout("tcp", addr, limit)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(limit))
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return err
	}
	_, err = bufio.NewReader(c).ReadString('\n')
	return err
}

func TestProxyFaults(t *testing.T) {
	p, err := New("echo", echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := roundTrip(p.Addr(), time.Second); err != nil {
		t.Fatalf("healthy proxy: %v", err)
	}

	p.Cut()
	if err := roundTrip(p.Addr(), time.Second); err == nil {
		t.Fatal("a cut proxy passed traffic")
	}
	if err := p.Heal(); err != nil {
		t.Fatal(err)
	}
	if err := roundTrip(p.Addr(), time.Second); err != nil {
		t.Fatalf("after healing a cut: %v", err)
	}

	if err := p.BlackHole(); err != nil {
		t.Fatal(err)
	}
	if err := roundTrip(p.Addr(), 300*time.Millisecond); err == nil {
		t.Fatal("a black hole answered")
	}
	if err := p.Heal(); err != nil {
		t.Fatal(err)
	}
	if err := roundTrip(p.Addr(), time.Second); err != nil {
		t.Fatalf("after healing a black hole: %v", err)
	}

	const delay = 200 * time.Millisecond
	if err := p.Latency(delay); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := roundTrip(p.Addr(), 5*time.Second); err != nil {
		t.Fatalf("with latency: %v", err)
	}
	if took := time.Since(start); took < 2*delay {
		t.Fatalf("round trip took %v with %v each way", took, delay)
	}
	if err := p.Heal(); err != nil {
		t.Fatal(err)
	}
}
