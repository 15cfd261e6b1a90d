package stack

import (
	"errors"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/clock"
	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/tcp"
	"github.com/sockstack/sockstack/waiter"
	"github.com/sockstack/sockstack/wire"
)

// ipWire is one end of a TUN-like link whose frames the test moves by
// hand (pump), so two stacks on a manual clock talk deterministically.
type ipWire struct {
	mu    sync.Mutex
	out   [][]byte
	recv  link.Receiver
	stats link.Stats
}

func (w *ipWire) MTU() int               { return 1500 }
func (w *ipWire) Kind() link.Kind        { return link.KindIP }
func (w *ipWire) HardwareAddr() wire.MAC { return wire.MAC{} }
func (w *ipWire) Attach(r link.Receiver) { w.recv = r }
func (w *ipWire) Stats() *link.Stats     { return &w.stats }
func (w *ipWire) Close() error           { return nil }
func (w *ipWire) WriteFrames(fs [][]byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, f := range fs {
		w.out = append(w.out, append([]byte(nil), f...))
	}
	return len(fs), nil
}

func (w *ipWire) take() [][]byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	o := w.out
	w.out = nil
	return o
}

// holdPair is a client stack routing 198.51.100.0/24 and
// 2001:db8:77::/48 to a proxy stack over an IP link; the proxy diverts
// them to held-SYN transparent listeners on port 9000.
type holdPair struct {
	t          *testing.T
	clk        *clock.Manual
	c, p       *Stack
	cw, pw     *ipWire
	l4, l6     *tcp.Endpoint
	toClient   [][]byte // what the proxy sent the client, since the last look
	clientAddr netip.Addr
}

var (
	holdDst4 = netip.MustParseAddrPort("198.51.100.7:443")
	holdDst6 = netip.MustParseAddrPort("[2001:db8:77::7]:443")
)

func newHoldPair(t *testing.T) *holdPair {
	clk := clock.NewManual(time.Unix(1_700_000_000, 0))
	h := &holdPair{t: t, clk: clk, cw: &ipWire{}, pw: &ipWire{}}
	h.c = New(Options{Clock: clk})
	h.p = New(Options{Clock: clk})
	t.Cleanup(h.c.Close)
	t.Cleanup(h.p.Close)
	cn := h.c.AddNIC("tun0", h.cw)
	pn := h.p.AddNIC("tun0", h.pw)
	for _, a := range []string{"10.0.0.1/24", "fd00::1/64"} {
		if err := cn.AddAddress(netip.MustParsePrefix(a)); err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range []string{"10.0.0.2/24", "fd00::2/64"} {
		if err := pn.AddAddress(netip.MustParsePrefix(a)); err != nil {
			t.Fatal(err)
		}
	}
	for _, pf := range []string{"198.51.100.0/24", "2001:db8:77::/48"} {
		p := netip.MustParsePrefix(pf)
		h.c.AddRoute(Route{Prefix: p, NIC: cn})
		if err := h.p.AddTransparentRule(TransparentRule{Proto: TransparentTCP, Dst: p, ToPort: 9000}); err != nil {
			t.Fatal(err)
		}
	}
	for _, v6 := range []bool{false, true} {
		l := h.p.TCP.NewEndpoint()
		any := netip.IPv4Unspecified()
		if v6 {
			l.SetInet6()
			l.SetV6Only(true)
			any = netip.IPv6Unspecified()
		}
		l.SetTransparent(true)
		if err := l.SetHoldSYN(true, 0); err != nil {
			t.Fatal(err)
		}
		if err := l.Bind(netip.AddrPortFrom(any, 9000)); err != nil {
			t.Fatal(err)
		}
		if err := l.Listen(8); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(l.Close)
		if v6 {
			h.l6 = l
		} else {
			h.l4 = l
		}
	}
	h.pump()
	h.toClient = nil
	return h
}

// pump moves frames both ways until neither stack sends more.
func (h *holdPair) pump() {
	for range 100 {
		a, b := h.cw.take(), h.pw.take()
		if len(a)+len(b) == 0 {
			return
		}
		for _, f := range a {
			h.pw.recv.DeliverFrames([][]byte{f})
		}
		for _, f := range b {
			h.toClient = append(h.toClient, f)
			h.cw.recv.DeliverFrames([][]byte{f})
		}
	}
	h.t.Fatal("the stacks never went quiet")
}

// dial starts a connect from the client to dst and delivers its SYN.
func (h *holdPair) dial(dst netip.AddrPort) *tcp.Endpoint {
	h.t.Helper()
	e := h.c.TCP.NewEndpoint()
	if dst.Addr().Is6() {
		e.SetInet6()
	}
	if err := e.Connect(dst); !errors.Is(err, syscall.EINPROGRESS) {
		h.t.Fatalf("connect %v: %v", dst, err)
	}
	h.t.Cleanup(e.Close)
	h.pump()
	return e
}

// request takes the one request the proxy holds for dst.
func (h *holdPair) request(dst netip.AddrPort) *tcp.SynRequest {
	h.t.Helper()
	l := h.l4
	if dst.Addr().Is6() {
		l = h.l6
	}
	r, err := l.NextSynRequest()
	if err != nil {
		h.t.Fatalf("no request for %v: %v", dst, err)
	}
	if r.Local() != dst {
		h.t.Fatalf("request for %v, want %v", r.Local(), dst)
	}
	if _, err := l.NextSynRequest(); !errors.Is(err, syscall.EAGAIN) {
		h.t.Fatalf("a second request: %v", err)
	}
	return r
}

// connectResult is the client's connect outcome once settled.
func connectResult(e *tcp.Endpoint) (tcp.State, error) {
	if e.Readiness(waiter.EventOut|waiter.EventErr|waiter.EventHUp) == 0 {
		return e.State(), syscall.EINPROGRESS
	}
	return e.State(), e.SoError()
}

// The client's connect stays in progress while the SYN is held, its
// retransmission is absorbed, and it succeeds only when the request is
// completed; data then flows through the proxy's connection, whose
// local address is the original destination.
func TestHoldSYNStackComplete(t *testing.T) {
	for _, dst := range []netip.AddrPort{holdDst4, holdDst6} {
		h := newHoldPair(t)
		e := h.dial(dst)
		if len(h.toClient) != 0 {
			t.Fatalf("%v: the held SYN was answered: %d packets", dst, len(h.toClient))
		}
		h.clk.Advance(1100 * time.Millisecond) // the client's SYN RTO
		h.pump()
		if len(h.toClient) != 0 {
			t.Fatalf("%v: the retransmitted SYN was answered", dst)
		}
		if st := h.p.TCP.HoldSYNStats(); st.Held != 1 || st.Retrans != 1 {
			t.Fatalf("%v: %+v", dst, st)
		}
		r := h.request(dst)
		if _, err := connectResult(e); !errors.Is(err, syscall.EINPROGRESS) {
			t.Fatalf("%v: connect settled before the answer: %v", dst, err)
		}
		c, err := r.Complete()
		if err != nil {
			t.Fatal(err)
		}
		h.pump()
		if st, err := connectResult(e); err != nil || st != tcp.StateEstablished {
			t.Fatalf("%v: connect %v, %v", dst, st, err)
		}
		if c.State() != tcp.StateEstablished || c.LocalAddr() != dst {
			t.Fatalf("%v: proxy side %v at %v", dst, c.State(), c.LocalAddr())
		}
		if _, err := e.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		h.pump()
		b := make([]byte, 8)
		if n, err := c.Read(b, false); err != nil || string(b[:n]) != "ping" {
			t.Fatalf("%v: proxy read %q, %v", dst, b[:n], err)
		}
		c.Close()
	}
}

// Each rejection reaches the client's connect as the errno a stack
// gives for it: a reset or a port unreachable ECONNREFUSED, a host
// unreachable or administratively prohibited EHOSTUNREACH, a network
// unreachable ENETUNREACH. The ICMP errors come from the proxy's own
// address, as a router's, and quote the client's SYN.
func TestHoldSYNStackReject(t *testing.T) {
	for _, c := range []struct {
		dst  netip.AddrPort
		how  tcp.Reject
		want syscall.Errno
	}{
		{holdDst4, tcp.RejectReset, syscall.ECONNREFUSED},
		{holdDst4, tcp.RejectHostUnreach, syscall.EHOSTUNREACH},
		{holdDst4, tcp.RejectNetUnreach, syscall.ENETUNREACH},
		{holdDst4, tcp.RejectPortUnreach, syscall.ECONNREFUSED},
		{holdDst4, tcp.RejectAdminProhibited, syscall.EHOSTUNREACH},
		{holdDst6, tcp.RejectReset, syscall.ECONNREFUSED},
		{holdDst6, tcp.RejectHostUnreach, syscall.EHOSTUNREACH},
		{holdDst6, tcp.RejectNetUnreach, syscall.ENETUNREACH},
		{holdDst6, tcp.RejectPortUnreach, syscall.ECONNREFUSED},
	} {
		h := newHoldPair(t)
		e := h.dial(c.dst)
		if err := h.request(c.dst).Reject(c.how); err != nil {
			t.Fatalf("%v %v: %v", c.dst, c.how, err)
		}
		h.pump()
		st, err := connectResult(e)
		if st != tcp.StateClosed || !errors.Is(err, c.want) {
			t.Errorf("%v %v: client %v, %v; want closed, %v", c.dst, c.how, st, err, c.want)
		}
		if len(h.toClient) != 1 {
			t.Fatalf("%v %v: %d packets to the client, want 1", c.dst, c.how, len(h.toClient))
		}
		checkRejectPacket(t, h.toClient[0], c.dst, c.how)
		hs := h.p.TCP.HoldSYNStats()
		if c.how == tcp.RejectReset && hs.Reset != 1 || c.how != tcp.RejectReset && hs.ICMP != 1 {
			t.Errorf("%v %v: %+v", c.dst, c.how, hs)
		}
	}
}

// checkRejectPacket checks the proxy's answer to a rejected SYN.
func checkRejectPacket(t *testing.T, p []byte, dst netip.AddrPort, how tcp.Reject) {
	t.Helper()
	var src netip.Addr
	var proto uint8
	var body []byte
	if dst.Addr().Is4() {
		h, err := wire.ParseIPv4(p)
		if err != nil {
			t.Fatal(err)
		}
		src, proto, body = h.Src(), h.Protocol(), h.Payload()
	} else {
		h, err := wire.ParseIPv6(p)
		if err != nil {
			t.Fatal(err)
		}
		src, proto, body = h.Src(), h.NextHeader(), h.Payload()
	}
	if how == tcp.RejectReset {
		if src != dst.Addr() || proto != wire.ProtoTCP || wire.TCP(body).Flags()&wire.TCPFlagRST == 0 {
			t.Fatalf("reset: from %v proto %d", src, proto)
		}
		return
	}
	own := netip.MustParseAddr("10.0.0.2")
	var quote []byte
	if dst.Addr().Is4() {
		if proto != wire.ProtoICMP || body[0] != wire.ICMPDestUnreach {
			t.Fatalf("%v: proto %d type %d, want a destination unreachable", how, proto, body[0])
		}
		quote = body[wire.ICMPv4HeaderLen:]
		if q := wire.IPv4(quote); q.Dst() != dst.Addr() || q.Protocol() != wire.ProtoTCP {
			t.Fatalf("quote to %v proto %d", q.Dst(), q.Protocol())
		}
		quote = quote[wire.IPv4MinHeaderLen:]
	} else {
		own = netip.MustParseAddr("fd00::2")
		if proto != wire.ProtoICMPv6 || body[0] != wire.ICMPv6DestUnreach {
			t.Fatalf("%v: proto %d type %d, want a destination unreachable", how, proto, body[0])
		}
		quote = body[wire.ICMPv6HeaderLen:]
		if q := wire.IPv6(quote); q.Dst() != dst.Addr() || q.NextHeader() != wire.ProtoTCP {
			t.Fatalf("quote to %v", q.Dst())
		}
		quote = quote[wire.IPv6HeaderLen:]
	}
	if src != own {
		t.Fatalf("%v from %v, want the proxy's %v", how, src, own)
	}
	if q := wire.TCP(quote); q.DstPort() != dst.Port() || q.Flags() != wire.TCPFlagSYN {
		t.Fatalf("quoted TCP to port %d flags %#x", q.DstPort(), q.Flags())
	}
}

// A silent rejection leaves the client retransmitting: each SYN after
// one is a new request, and rejecting every one of them silently makes
// the client's connect time out (ETIMEDOUT) with nothing sent to it.
func TestHoldSYNStackSilent(t *testing.T) {
	h := newHoldPair(t)
	e := h.dial(holdDst4)
	reqs := 0
	for range 300 {
		for {
			r, err := h.l4.NextSynRequest()
			if err != nil {
				break
			}
			reqs++
			r.Reject(tcp.RejectSilent)
		}
		if e.State() == tcp.StateClosed {
			break
		}
		h.clk.Advance(time.Second)
		h.pump()
	}
	st, err := connectResult(e)
	if st != tcp.StateClosed || !errors.Is(err, syscall.ETIMEDOUT) {
		t.Fatalf("client %v, %v; want closed, ETIMEDOUT", st, err)
	}
	if len(h.toClient) != 0 {
		t.Fatalf("%d packets to the client", len(h.toClient))
	}
	// Linux's tcp_syn_retries: 6 retransmissions, 7 SYNs.
	if hs := h.p.TCP.HoldSYNStats(); reqs != 7 || hs.Silent != 7 {
		t.Fatalf("%d requests, %+v; want 7", reqs, hs)
	}
}
