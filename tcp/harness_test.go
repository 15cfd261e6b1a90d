package tcp

import (
	"bytes"
	"fmt"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/clock"
	"github.com/sockstack/sockstack/wire"
)

// captured is one segment the endpoint sent.
type captured struct {
	local, remote netip.AddrPort
	h             wire.TCPHeader
	payload       []byte
	ttl, tos      uint8
	hopZero       bool
	ipOpts        IPOptions
	mark          uint32
}

func (c captured) String() string {
	return fmt.Sprintf("%s>%s %s seq=%d ack=%d win=%d len=%d opts=%+v", c.local, c.remote, flagStr(c.h.Flags), c.h.Seq, c.h.Ack, c.h.Window, len(c.payload), c.h.Options)
}

func flagStr(f uint8) string {
	s := ""
	for _, x := range []struct {
		f uint8
		n string
	}{{wire.TCPFlagSYN, "S"}, {wire.TCPFlagFIN, "F"}, {wire.TCPFlagRST, "R"}, {wire.TCPFlagPSH, "P"}, {wire.TCPFlagACK, "."}} {
		if f&x.f != 0 {
			s += x.n
		}
	}
	return "[" + s + "]"
}

// fakeHost implements Host with a manual clock and captures output.
type fakeHost struct {
	clk    clock.Clock
	mtu    int
	locals []netip.Addr
	mu     sync.Mutex
	out    []captured
	hook   func(seg *Segment) // two-endpoint harness: deliver instead of capture
	fail   func(seg *Segment) error
	// deferOut offers Route.Defer: writes flush after the lock (txdefer.go).
	deferOut bool
}

func newFakeHost(clk clock.Clock, locals ...netip.Addr) *fakeHost {
	return &fakeHost{clk: clk, mtu: 1500, locals: locals}
}

func (h *fakeHost) Clock() clock.Clock { return h.clk }

func (h *fakeHost) Output(seg *Segment) error {
	if h.fail != nil {
		if err := h.fail(seg); err != nil {
			return err
		}
	}
	if h.hook != nil {
		h.hook(seg)
		return nil
	}
	p := append(append([]byte(nil), seg.Payload[0]...), seg.Payload[1]...)
	h.mu.Lock()
	h.out = append(h.out, captured{seg.Local, seg.Remote, seg.Header, p, seg.TTL, seg.TOS, seg.HopZero, seg.IPOpts, seg.Mark})
	h.mu.Unlock()
	return nil
}

func (h *fakeHost) Route(remote netip.Addr) (Route, error) {
	if remote.Is4() && remote.As4()[0] == 10 && remote.As4()[1] == 99 {
		return Route{}, syscall.ENETUNREACH
	}
	return Route{Source: h.locals[0], MTU: h.mtu, Defer: h.deferOut}, nil
}

func (h *fakeHost) IsLocal(a netip.Addr) bool {
	for _, l := range h.locals {
		if l == a {
			return true
		}
	}
	return a.IsLoopback()
}

func (h *fakeHost) take() []captured {
	h.mu.Lock()
	defer h.mu.Unlock()
	o := h.out
	h.out = nil
	return o
}

var (
	localIP  = netip.MustParseAddr("192.0.2.1")
	remoteIP = netip.MustParseAddr("192.0.2.2")
	epoch    = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
)

// script drives one Protocol with crafted segments, like packetdrill.
type script struct {
	t      *testing.T
	clk    *clock.Manual
	h      *fakeHost
	p      *Protocol
	local  netip.AddrPort // our side
	remote netip.AddrPort // the simulated peer
}

func newScript(t *testing.T, cfg Config) *script {
	t.Helper()
	clk := clock.NewManual(epoch)
	h := newFakeHost(clk, localIP)
	if cfg.Seed == nil {
		cfg.Seed = []byte("test seed")
	}
	return &script{t: t, clk: clk, h: h, p: NewProtocol(h, cfg),
		local: netip.AddrPortFrom(localIP, 8080), remote: netip.AddrPortFrom(remoteIP, 40000)}
}

// seg is what a test injects or expects.
type seg struct {
	flags    uint8
	seq, ack uint32
	win      uint16
	opts     wire.TCPOptions
	data     []byte
	urg      uint16
}

func (s *script) inject(x seg) {
	s.t.Helper()
	h := wire.TCPHeader{SrcPort: s.remote.Port(), DstPort: s.local.Port(), Seq: x.seq, Ack: x.ack, Flags: x.flags, Window: x.win, Options: x.opts, Urgent: x.urg}
	b := make([]byte, h.Len()+len(x.data))
	n := h.Put(b)
	copy(b[n:], x.data)
	s.p.HandleSegment(s.remote.Addr(), s.local.Addr(), 0, b)
}

// out returns the segments sent since the last call.
func (s *script) out() []captured { return s.h.take() }

// expectOne asserts exactly one segment went out and returns it.
func (s *script) expectOne(what string) captured {
	s.t.Helper()
	o := s.out()
	if len(o) != 1 {
		s.t.Fatalf("%s: want 1 segment, got %d: %v", what, len(o), o)
	}
	return o[0]
}

func (s *script) expectNone(what string) {
	s.t.Helper()
	if o := s.out(); len(o) != 0 {
		s.t.Fatalf("%s: want no segment, got %d: %v", what, len(o), o)
	}
}

// check compares the fields of a sent segment that the test cares about.
func check(t *testing.T, what string, c captured, flags uint8, seq, ack uint32, dataLen int) {
	t.Helper()
	if c.h.Flags != flags || c.h.Seq != seq || (flags&wire.TCPFlagACK != 0 && c.h.Ack != ack) || len(c.payload) != dataLen {
		t.Fatalf("%s: got %v; want %s seq=%d ack=%d len=%d", what, c, flagStr(flags), seq, ack, dataLen)
	}
}

const (
	fS  = wire.TCPFlagSYN
	fA  = wire.TCPFlagACK
	fF  = wire.TCPFlagFIN
	fR  = wire.TCPFlagRST
	fP  = wire.TCPFlagPSH
	fSA = fS | fA
	fPA = fP | fA
	fFA = fF | fA
)

// peerSynOpts are the options a Linux peer sends.
func peerSynOpts(tsval uint32) wire.TCPOptions {
	return wire.TCPOptions{HasMSS: true, MSS: 1460, HasWScale: true, WScale: 7, SACKPermitted: true, HasTS: true, TSVal: tsval}
}

// passiveOpen listens on s.local and completes a handshake from the
// peer (ISN 1000, with opts); it returns the accepted endpoint and our ISN.
func (s *script) passiveOpen(opts wire.TCPOptions) (*Endpoint, *Endpoint, uint32) {
	s.t.Helper()
	l := s.p.NewEndpoint()
	if err := l.Bind(s.local); err != nil {
		s.t.Fatal(err)
	}
	if err := l.Listen(16); err != nil {
		s.t.Fatal(err)
	}
	s.inject(seg{flags: fS, seq: 1000, win: 65535, opts: opts})
	sa := s.expectOne("SYN-ACK")
	if sa.h.Flags != fSA || sa.h.Ack != 1001 {
		s.t.Fatalf("bad SYN-ACK %v", sa)
	}
	iss := sa.h.Seq
	ack := wire.TCPOptions{}
	if opts.HasTS {
		ack.HasTS, ack.TSVal, ack.TSEcr = true, opts.TSVal+1, sa.h.Options.TSVal
	}
	s.inject(seg{flags: fA, seq: 1001, ack: iss + 1, win: 65535, opts: ack})
	s.expectNone("after handshake ACK")
	c, ra, err := l.Accept()
	if err != nil {
		s.t.Fatalf("accept: %v", err)
	}
	if ra != s.remote {
		s.t.Fatalf("accept remote %v", ra)
	}
	return l, c, iss
}

// readAll reads what is available.
func readAll(e *Endpoint) []byte {
	var out bytes.Buffer
	b := make([]byte, 65536)
	for {
		n, err := e.Read(b, false)
		if n > 0 {
			out.Write(b[:n])
		}
		if err != nil || n == 0 {
			return out.Bytes()
		}
	}
}

// waitOne advances in 1 ms steps until a segment goes out (at most max)
// and returns it with the time it took.
func (s *script) waitOne(max time.Duration) (captured, time.Duration) {
	s.t.Helper()
	var el time.Duration
	for el < max {
		s.clk.Advance(time.Millisecond)
		el += time.Millisecond
		if o := s.out(); len(o) > 0 {
			if len(o) != 1 {
				s.t.Fatalf("want 1 segment, got %v", o)
			}
			return o[0], el
		}
	}
	s.t.Fatalf("no segment within %v", max)
	return captured{}, 0
}

// noOpts is a peer that sends only MSS 1460.
var noOpts = wire.TCPOptions{HasMSS: true, MSS: 1460}

// sackOpts is a peer with SACK but no timestamps or window scaling.
var sackOpts = wire.TCPOptions{HasMSS: true, MSS: 1460, SACKPermitted: true}

func near(d, want time.Duration) bool {
	return d >= want-2*time.Millisecond && d <= want+2*time.Millisecond
}

// spendQuickAcks leaves e as a connection that has just used up
// quickack mode's immediate ACKs (Linux's icsk_ack.quick at 0, the ACK
// timeout at its least, data received now), for tests of the
// delayed-ACK rules that apply after them.
func spendQuickAcks(e *Endpoint) {
	e.lock()
	e.ackMode &^= ackQuickMask
	e.setAto(e.atoMin())
	e.lastDataRecv = e.p.now()
	e.unlock()
}
