package tcp

import (
	"errors"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/waiter"
)

func TestBindRules(t *testing.T) {
	s := newScript(t, Config{})
	p := s.p
	a := p.NewEndpoint()
	if err := a.Bind(netip.MustParseAddrPort("192.0.2.1:80")); err != nil {
		t.Fatal(err)
	}
	if err := a.Bind(netip.MustParseAddrPort("192.0.2.1:81")); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("rebind: %v", err)
	}
	b := p.NewEndpoint()
	if err := b.Bind(netip.MustParseAddrPort("0.0.0.0:80")); !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("overlapping bind: %v", err)
	}
	if err := b.Bind(netip.MustParseAddrPort("198.51.100.1:80")); !errors.Is(err, syscall.EADDRNOTAVAIL) {
		t.Fatalf("non-local bind: %v", err)
	}
	// Different address, same port: fine (127.0.0.1 is local).
	if err := b.Bind(netip.MustParseAddrPort("127.0.0.1:80")); err != nil {
		t.Fatal(err)
	}
	// SO_REUSEADDR on both, neither listening: allowed.
	c, d := p.NewEndpoint(), p.NewEndpoint()
	c.SetReuseAddr(true)
	d.SetReuseAddr(true)
	if err := c.Bind(netip.MustParseAddrPort("192.0.2.1:90")); err != nil {
		t.Fatal(err)
	}
	if err := d.Bind(netip.MustParseAddrPort("192.0.2.1:90")); err != nil {
		t.Fatalf("reuseaddr: %v", err)
	}
	// ...but not when the first one listens.
	c.Listen(1)
	e := p.NewEndpoint()
	e.SetReuseAddr(true)
	if err := e.Bind(netip.MustParseAddrPort("192.0.2.1:90")); !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("reuseaddr with a listener: %v", err)
	}
	// SO_REUSEPORT on both: two listeners.
	f, g := p.NewEndpoint(), p.NewEndpoint()
	f.SetReusePort(true)
	g.SetReusePort(true)
	if err := f.Bind(netip.MustParseAddrPort("0.0.0.0:100")); err != nil {
		t.Fatal(err)
	}
	if err := g.Bind(netip.MustParseAddrPort("0.0.0.0:100")); err != nil {
		t.Fatalf("reuseport: %v", err)
	}
	if f.Listen(1) != nil || g.Listen(1) != nil {
		t.Fatal("reuseport listen")
	}
	// Port 0: ephemeral.
	h := p.NewEndpoint()
	if err := h.Bind(netip.AddrPort{}); err != nil {
		t.Fatal(err)
	}
	if port := h.LocalAddr().Port(); port < ephemeralLow {
		t.Fatalf("ephemeral %d", port)
	}
	// Closing releases the port.
	a.Close()
	b2 := p.NewEndpoint()
	if err := b2.Bind(netip.MustParseAddrPort("192.0.2.1:80")); err != nil {
		t.Fatalf("after close: %v", err)
	}
}

func TestBindTimeWaitReuseAddr(t *testing.T) {
	s := newScript(t, Config{})
	l, c, iss := s.passiveOpen(noOpts)
	// Server closes first: its connection ends in TIME_WAIT on port 8080.
	c.Close()
	s.out()
	s.inject(seg{flags: fFA, seq: 1001, ack: iss + 2, win: 65535})
	if !inTimeWait(c) {
		t.Fatal(c.State())
	}
	l.Close()
	n := s.p.NewEndpoint()
	if err := n.Bind(s.local); !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("bind over TIME_WAIT without SO_REUSEADDR: %v", err)
	}
	n.SetReuseAddr(true)
	if err := n.Bind(s.local); err != nil {
		t.Fatalf("bind over TIME_WAIT with SO_REUSEADDR: %v", err)
	}
	s.clk.Advance(61 * time.Second)
	m := s.p.NewEndpoint()
	if err := m.Bind(netip.AddrPortFrom(s.local.Addr(), 8080)); !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("n still holds the port: %v", err)
	}
	n.Close()
	if err := m.Bind(netip.AddrPortFrom(s.local.Addr(), 8080)); err != nil {
		t.Fatal(err)
	}
}

func TestListenAcceptErrors(t *testing.T) {
	s := newScript(t, Config{SOMAXCONN: 8})
	l := s.p.NewEndpoint()
	if _, _, err := l.Accept(); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("accept on unbound: %v", err)
	}
	if err := l.Listen(100); err != nil {
		t.Fatal(err)
	}
	if l.LocalAddr().Port() == 0 {
		t.Fatal("listen did not autobind")
	}
	if l.ls.backlog != 8 {
		t.Fatalf("backlog %d not capped", l.ls.backlog)
	}
	if err := l.Listen(2); err != nil || l.ls.backlog != 2 {
		t.Fatal("adjust backlog")
	}
	if _, _, err := l.Accept(); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("empty accept: %v", err)
	}
	if _, err := l.Read(make([]byte, 1), false); !errors.Is(err, syscall.ENOTCONN) {
		t.Fatalf("read on listener: %v", err)
	}
	if err := l.Connect(s.remote); !errors.Is(err, syscall.EISCONN) {
		t.Fatalf("connect on listener: %v", err)
	}
	// SHUT_RD stops the listener; accept then fails with EINVAL.
	if err := l.Shutdown(ShutRd); err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.Accept(); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("accept after shutdown: %v", err)
	}
	e := s.p.NewEndpoint()
	if _, err := e.Write([]byte("x")); !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("write unconnected: %v", err)
	}
	if err := e.Shutdown(ShutWr); !errors.Is(err, syscall.ENOTCONN) {
		t.Fatalf("shutdown unconnected: %v", err)
	}
	if _, err := e.RemoteAddr(); !errors.Is(err, syscall.ENOTCONN) {
		t.Fatal(err)
	}
}

func TestListenerCloseResetsQueued(t *testing.T) {
	s := newScript(t, Config{})
	l, _, _ := s.passiveOpen(noOpts)
	// A second connection waits in the accept queue.
	s.remote = netip.AddrPortFrom(remoteIP, 40001)
	s.inject(seg{flags: fS, seq: 1000, win: 65535, opts: noOpts})
	sa := s.expectOne("SYN-ACK")
	s.inject(seg{flags: fA, seq: 1001, ack: sa.h.Seq + 1, win: 65535})
	if l.Readiness(waiter.EventIn) == 0 {
		t.Fatal("listener not readable")
	}
	l.Close()
	r := s.expectOne("RST")
	if r.h.Flags&fR == 0 || r.remote != s.remote {
		t.Fatalf("%v", r)
	}
}

func TestSynAckRetransmitAndTable(t *testing.T) {
	s := newScript(t, Config{SynAckRetries: 2})
	l := s.p.NewEndpoint()
	l.Bind(s.local)
	l.Listen(4)
	s.inject(seg{flags: fS, seq: 1000, win: 65535})
	sa := s.expectOne("SYN-ACK")
	tab := s.p.Table()
	if len(tab) != 2 {
		t.Fatalf("table %v", tab)
	}
	r, el := s.waitOne(5 * time.Second)
	if r.h.Flags != fSA || r.h.Seq != sa.h.Seq || !near(el, time.Second) {
		t.Fatalf("SYN-ACK retransmission %v after %v", r, el)
	}
	// The peer's retransmitted SYN gets the SYN-ACK again.
	s.inject(seg{flags: fS, seq: 1000, win: 65535})
	if r := s.expectOne("SYN-ACK again"); r.h.Flags != fSA {
		t.Fatal(r)
	}
	s.waitOne(5 * time.Second)
	s.clk.Advance(10 * time.Second)
	if len(s.p.Table()) != 1 {
		t.Fatalf("half-open connection not dropped: %v", s.p.Table())
	}
	if l.synQLen.Load() != 0 {
		t.Fatal("SYN queue count leaked")
	}
}
