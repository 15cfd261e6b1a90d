package stack_test

import (
	"bytes"
	"errors"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/wire"
)

// srhOpt is an IPV6_RTHDR value: a Segment Routing Header (type 4) with
// the segments given, segments left sl, last entry len-1.
func srhOpt(sl int, segs ...string) string {
	h := make([]byte, 8)
	for _, s := range segs {
		a := netip.MustParseAddr(s).As16()
		h = append(h, a[:]...)
	}
	h[1], h[2], h[3], h[4] = byte(len(h)/8-1), 4, byte(sl), byte(len(segs)-1)
	return string(h)
}

// srhSeg is one captured TCP/IPv6 frame: the fixed header's destination,
// the routing header (nil: none), the TCP segment, and whether its
// checksum covers want (the final destination).
type srhSeg struct {
	dst   netip.Addr
	rt    []byte
	tcp   wire.TCP
	csum  bool
	flags uint8
}

func srhSegs(t *testing.T, c *capLink, final netip.Addr) []srhSeg {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []srhSeg
	for _, f := range c.frames {
		if len(f) < 14+40 || f[12] != 0x86 || f[13] != 0xdd {
			continue
		}
		ip := wire.IPv6(f[14:])
		var s srhSeg
		s.dst = ip.Dst()
		nh, off := ip.NextHeader(), 40
		for nh == wire.ProtoHopByHop || nh == wire.ProtoIPv6Opts || nh == wire.ProtoIPv6Route {
			l := (int(ip[off+1]) + 1) * 8
			if nh == wire.ProtoIPv6Route {
				s.rt = ip[off : off+l]
			}
			nh, off = ip[off], off+l
		}
		if nh != wire.ProtoTCP {
			continue
		}
		s.tcp = wire.TCP(ip[off:])
		s.flags = s.tcp.Flags()
		s.csum = wire.Fold(wire.Sum(s.tcp, wire.PseudoHeaderSum6(ip.Src16(), final.As16(), wire.ProtoTCP, len(s.tcp)))) == 0xffff
		out = append(out, s)
	}
	return out
}

// IPV6_RTHDR on a TCP socket: every segment of the connection (SYN,
// data cut from super-segments, ACKs, FIN) carries the SRH with the
// final destination in segments[0], goes to segments[segments_left],
// its checksum over the final destination; the MSS is what the SRH
// leaves. Here segments left is 0 and the one segment is the peer (an
// SRv6 receiver processes such a header as done), so the data flows and
// arrives intact.
func TestTCPSRHEverySegment(t *testing.T) {
	a, b, ca, _ := ext6Pair(t)
	rt := srhOpt(0, "fd00::2")
	c, s := ext6Conn(t, a, b, 7200, nil, func(c *socket.Socket) {
		setOpt6(t, c, socket.IPV6_RTHDR, rt)
	})
	if v, err := c.GetSockOpt(socket.IPPROTO_IPV6, socket.IPV6_RTHDR); err != nil || v != rt {
		t.Fatalf("getsockopt: %x %v", v, err)
	}
	const up = 200 << 10
	sent := pattern(up, 5)
	if err := c.SendAll(sent, 0); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, s, up); !bytes.Equal(got, sent) {
		t.Fatal("data arrived changed")
	}
	c.Shutdown(socket.SHUT_WR)
	if k, err := s.Recv(make([]byte, 1), 0); k != 0 || err != nil {
		t.Fatalf("EOF: %d %v", k, err)
	}
	final := netip.MustParseAddr("fd00::2")
	maxp, syn, fin := 0, false, false
	for _, f := range srhSegs(t, ca, final) {
		if f.rt == nil || !bytes.Equal(f.rt[1:], []byte(rt)[1:]) || f.dst != final || !f.csum {
			t.Fatalf("segment seq %d flags %#x: to %v, SRH %x, checksum ok %v", f.tcp.Seq(), f.flags, f.dst, f.rt, f.csum)
		}
		syn = syn || f.flags&wire.TCPFlagSYN != 0
		fin = fin || f.flags&wire.TCPFlagFIN != 0
		maxp = max(maxp, len(f.tcp)-f.tcp.DataOffset())
	}
	// 1500 less 40 of IPv6, 20 of TCP, 12 of timestamps, 24 of SRH.
	if want := 1500 - 40 - 20 - 12 - 24; !syn || !fin || maxp != want {
		t.Fatalf("SYN %v FIN %v, largest payload %d, want %d", syn, fin, maxp, want)
	}
}

// A connection to a final destination through another segment: the
// route is the first segment's (the final destination needs none), the
// SYN goes to segments[1] (fixed header and link), the SRH names the
// final destination in segments[0], the checksum covers it.
func TestTCPSRHFirstSegment(t *testing.T) {
	a, b, ca, _ := ext6Pair(t)
	ext6Conn(t, a, b, 7201, nil, nil) // fd00::2's link address known: the SYN leaves in connect
	c, _ := socket.New(a).Socket(socket.AF_INET6, socket.SOCK_STREAM, 0)
	defer c.Close()
	rt := srhOpt(1, "::", "fd00::2")
	setOpt6(t, c, socket.IPV6_RTHDR, rt)
	c.SetBlocking(false)
	// fd01::33 has no route here: the route looked up is the first
	// segment's, as Linux's tcp_v6_connect does.
	if err := c.Connect(socket.Inet6("fd01::33", 80)); !errors.Is(err, syscall.EINPROGRESS) {
		t.Fatalf("connect: %v, want EINPROGRESS", err)
	}
	final := netip.MustParseAddr("fd01::33")
	fb := final.As16()
	for _, f := range srhSegs(t, ca, final) {
		if f.flags&wire.TCPFlagSYN == 0 || f.tcp.DstPort() != 80 {
			continue
		}
		if f.dst != netip.MustParseAddr("fd00::2") || f.rt == nil || !bytes.Equal(f.rt[8:24], fb[:]) || !bytes.Equal(f.rt[24:], []byte(rt)[24:]) || !f.csum {
			t.Fatalf("SYN to %v, SRH %x, checksum over the final destination %v", f.dst, f.rt, f.csum)
		}
		return
	}
	t.Fatal("no SYN sent")
}

// notifyLink is a capLink that also signals each write.
type notifyLink struct {
	capLink
	wrote chan struct{}
}

func (c *notifyLink) WriteFrames(fs [][]byte) (int, error) {
	n, err := c.capLink.WriteFrames(fs)
	select {
	case c.wrote <- struct{}{}:
	default:
	}
	return n, err
}

// A listener's routing header routes its connections: the SYN-ACK to a
// client the listener's host has no route to goes out through the
// header's first segment, which is on-link, as Linux's
// inet6_csk_route_req applies the listener's np->opt before its lookup.
// The SRH names the client in segments[0] and the checksum covers it.
func TestTCPSRHListenerRoutesChild(t *testing.T) {
	ea, eb := link.NewPipe(wire.MAC{2, 0, 0, 0, 0, 1}, wire.MAC{2, 0, 0, 0, 0, 2}, 1500)
	opts := stack.Options{DADTransmits: -1}
	a, b := stack.New(opts), stack.New(opts)
	t.Cleanup(func() { a.Close(); b.Close() })
	cb := &notifyLink{capLink: capLink{Endpoint: eb}, wrote: make(chan struct{}, 1)}
	a.AddNIC("eth0", ea).AddAddress(netip.MustParsePrefix("fd00::1/64"))
	b.AddNIC("eth0", cb).AddAddress(netip.MustParsePrefix("fd00::2/64"))
	ext6Conn(t, a, b, 7203, nil, nil) // neighbours known both ways
	client := netip.MustParseAddr("fd09::1")
	if err := a.NICByName("eth0").AddAddress(netip.PrefixFrom(client, 128)); err != nil {
		t.Fatal(err)
	}
	ln, _ := socket.New(b).Socket(socket.AF_INET6, socket.SOCK_STREAM, 0)
	defer ln.Close()
	if err := ln.Bind(socket.Inet6("fd00::2", 7204)); err != nil {
		t.Fatal(err)
	}
	rt := srhOpt(1, "::", "fd00::1")
	setOpt6(t, ln, socket.IPV6_RTHDR, rt)
	if err := ln.Listen(4); err != nil {
		t.Fatal(err)
	}
	c, _ := socket.New(a).Socket(socket.AF_INET6, socket.SOCK_STREAM, 0)
	defer c.Close()
	if err := c.Bind(socket.Inet6("fd09::1", 0)); err != nil {
		t.Fatal(err)
	}
	c.SetBlocking(false)
	if err := c.Connect(socket.Inet6("fd00::2", 7204)); !errors.Is(err, syscall.EINPROGRESS) {
		t.Fatalf("connect: %v, want EINPROGRESS", err)
	}
	fb := client.As16()
	// Without the fix b sends nothing: the SYN retransmits after 1 s
	// and would be answered the same way, so 5 s bounds the wait.
	timeout := time.After(5 * time.Second)
	for {
		for _, f := range srhSegs(t, &cb.capLink, client) {
			if f.flags&(wire.TCPFlagSYN|wire.TCPFlagACK) != wire.TCPFlagSYN|wire.TCPFlagACK || f.tcp.SrcPort() != 7204 {
				continue
			}
			if f.dst != netip.MustParseAddr("fd00::1") || f.rt == nil || !bytes.Equal(f.rt[8:24], fb[:]) || !f.csum {
				t.Fatalf("SYN-ACK to %v, SRH %x, checksum over the client %v", f.dst, f.rt, f.csum)
			}
			return
		}
		select {
		case <-cb.wrote:
		case <-timeout:
			t.Fatal("no SYN-ACK sent: the child's route was looked up for the client, which has none")
		}
	}
}
