package socket

import (
	"bytes"
	"net/netip"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/stack"
)

// setsockopt/getsockopt(SOL_UDP, UDP_SEGMENT / UDP_GRO) with Linux's
// values and errnos.
func TestUDPSegmentOption(t *testing.T) {
	p := newPair(t, 1500, stack.Options{})
	s := mustSocket(t, p.a, AF_INET, SOCK_DGRAM, 0)
	if v, err := s.GetSockOpt(SOL_UDP, UDP_SEGMENT); err != nil || v != 0 {
		t.Fatalf("default UDP_SEGMENT %v %v", v, err)
	}
	if err := s.SetSockOpt(SOL_UDP, UDP_SEGMENT, 1400); err != nil {
		t.Fatal(err)
	}
	if v, _ := s.GetSockOpt(SOL_UDP, UDP_SEGMENT); v != 1400 {
		t.Fatalf("UDP_SEGMENT %v, want 1400", v)
	}
	errIs(t, "UDP_SEGMENT 65536", s.SetSockOpt(SOL_UDP, UDP_SEGMENT, 65536), syscall.EINVAL)
	errIs(t, "UDP_SEGMENT -1", s.SetSockOpt(SOL_UDP, UDP_SEGMENT, -1), syscall.EINVAL)
	errIs(t, "UDP_SEGMENT as a byte", s.SetSockOpt(SOL_UDP, UDP_SEGMENT, uint8(1)), syscall.EINVAL)
	if v, _ := s.GetSockOpt(SOL_UDP, UDP_SEGMENT); v != 1400 {
		t.Fatalf("UDP_SEGMENT %v after refused sets", v)
	}
	if v, err := s.GetSockOpt(SOL_UDP, UDP_GRO); err != nil || v != 0 {
		t.Fatalf("default UDP_GRO %v %v", v, err)
	}
	if err := s.SetSockOpt(SOL_UDP, UDP_GRO, 1); err != nil {
		t.Fatal(err)
	}
	if v, _ := s.GetSockOpt(SOL_UDP, UDP_GRO); v != 1 {
		t.Fatalf("UDP_GRO %v", v)
	}
	errIs(t, "unknown SOL_UDP option", s.SetSockOpt(SOL_UDP, 999, 1), syscall.ENOPROTOOPT)
	_, err := s.GetSockOpt(SOL_UDP, 999)
	errIs(t, "get unknown SOL_UDP option", err, syscall.ENOPROTOOPT)
	// Raw and ping sockets: ip_setsockopt / ip_getsockopt know no SOL_UDP.
	r := mustSocket(t, p.a, AF_INET, SOCK_RAW, IPPROTO_UDP)
	errIs(t, "raw UDP_SEGMENT", r.SetSockOpt(SOL_UDP, UDP_SEGMENT, 1000), syscall.ENOPROTOOPT)
	_, err = r.GetSockOpt(SOL_UDP, UDP_SEGMENT)
	errIs(t, "raw get UDP_SEGMENT", err, syscall.EOPNOTSUPP)
	tc := mustSocket(t, p.a, AF_INET, SOCK_STREAM, 0)
	if err := tc.SetSockOpt(SOL_UDP, UDP_SEGMENT, 1000); err == nil {
		t.Fatal("UDP_SEGMENT on a TCP socket succeeded")
	}
}

// recvAll reads n datagrams (each read one datagram, never more).
func recvAll(t *testing.T, s *Socket, n int) [][]byte {
	t.Helper()
	var out [][]byte
	buf := make([]byte, 65536)
	for len(out) < n {
		k, _, err := s.RecvFrom(buf, 0)
		if err != nil {
			t.Fatalf("after %d datagrams: %v", len(out), err)
		}
		out = append(out, append([]byte(nil), buf[:k]...))
	}
	return out
}

// The receiver sees exactly the sender's segments, one datagram each,
// whether the option or a control message asks, over IPv4 and IPv6,
// across the pipe (the super-datagram carried whole and cut on receive)
// and over loopback; a send that fits one segment stays one datagram.
func TestUDPSegmentBoundaries(t *testing.T) {
	p := newPair6(t)
	// Resolve the neighbours first: a burst to an unresolved one waits in
	// its bounded queue, which evicts the oldest (as any burst would).
	for _, dst := range []netip.Addr{addrA.Next(), netip.MustParseAddr("2001:db8::2")} {
		fam := AF_INET
		if dst.Is6() {
			fam = AF_INET6
		}
		srv := mustSocket(t, p.b, fam, SOCK_DGRAM, 0)
		srv.SetTimeout(5 * time.Second)
		if err := srv.Bind(InetAddr(netip.AddrPortFrom(dst, 8999))); err != nil {
			t.Fatal(err)
		}
		cli := mustSocket(t, p.a, fam, SOCK_DGRAM, 0)
		if _, err := cli.SendTo([]byte("warm"), 0, InetAddr(netip.AddrPortFrom(dst, 8999))); err != nil {
			t.Fatal(err)
		}
		recvAll(t, srv, 1)
	}
	for _, c := range []struct {
		name     string
		fam      int
		from     *Net
		dst      netip.Addr
		viaCmsg  bool
		gso, len int
	}{
		{"v4 option", AF_INET, p.a, addrA.Next(), false, 1000, 40*1000 + 333},
		{"v4 cmsg", AF_INET, p.a, addrA.Next(), true, 1472, 44 * 1472},
		{"v6 option", AF_INET6, p.a, netip.MustParseAddr("2001:db8::2"), false, 1200, 50*1200 + 1},
		{"v6 cmsg", AF_INET6, p.a, netip.MustParseAddr("2001:db8::2"), true, 1452, 10 * 1452},
		{"v4 loopback", AF_INET, p.b, addrB, false, 1000, 5500},
		{"v4 one segment", AF_INET, p.a, addrA.Next(), false, 1000, 999},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := mustSocket(t, p.b, c.fam, SOCK_DGRAM, 0)
			srv.SetTimeout(5 * time.Second)
			if err := srv.SetSockOpt(SOL_SOCKET, SO_RCVBUF, 4<<20); err != nil {
				t.Fatal(err)
			}
			unspec := netip.IPv4Unspecified()
			if c.fam == AF_INET6 {
				unspec = netip.IPv6Unspecified()
			}
			if err := srv.Bind(InetAddr(netip.AddrPortFrom(unspec, 9000))); err != nil {
				t.Fatal(err)
			}
			cli := mustSocket(t, c.from, c.fam, SOCK_DGRAM, 0)
			payload := make([]byte, c.len)
			for i := range payload {
				payload[i] = byte(i*7 + i/1000)
			}
			to := InetAddr(netip.AddrPortFrom(c.dst, 9000))
			var n int
			var err error
			if c.viaCmsg {
				n, err = cli.SendMsg(payload, 0, to, UDPSegment(c.gso))
			} else {
				if err := cli.SetSockOpt(SOL_UDP, UDP_SEGMENT, c.gso); err != nil {
					t.Fatal(err)
				}
				n, err = cli.SendTo(payload, 0, to)
			}
			if err != nil || n != len(payload) {
				t.Fatalf("send: %d %v", n, err)
			}
			want := (c.len + c.gso - 1) / c.gso
			got := recvAll(t, srv, want)
			for i, d := range got {
				end := min((i+1)*c.gso, len(payload))
				if !bytes.Equal(d, payload[i*c.gso:end]) {
					t.Fatalf("datagram %d: %d bytes, not the sender's segment", i, len(d))
				}
			}
			buf := make([]byte, 10)
			if k, _, err := srv.RecvFrom(buf, MSG_DONTWAIT); err != syscall.EAGAIN {
				t.Fatalf("an extra datagram of %d bytes (%v)", k, err)
			}
		})
	}
	// The four sends across the pipe went as one super-datagram each.
	if got := p.sa.Stats().Link.OutGSOFrames.Load(); got != 4 {
		t.Fatalf("OutGSOFrames %d, want 4", got)
	}
}

// The errors of a UDP_SEGMENT send, as Linux 6.18: a first datagram
// over the MTU is EMSGSIZE, more than 128 segments (UDP_MAX_SEGMENTS)
// EINVAL; a control message of 0 sends one (here fragmented) datagram;
// raw sockets ignore the message.
func TestUDPSegmentSendErrors(t *testing.T) {
	p := newPair(t, 1500, stack.Options{})
	cli := mustSocket(t, p.a, AF_INET, SOCK_DGRAM, 0)
	to := ap(addrB, 9)
	_, err := cli.SendMsg(make([]byte, 2000), 0, to, UDPSegment(1473))
	errIs(t, "segment 1473 on MTU 1500", err, syscall.EMSGSIZE)
	_, err = cli.SendMsg(make([]byte, 128*100+1), 0, to, UDPSegment(100))
	errIs(t, "129 segments", err, syscall.EINVAL)
	if n, err := cli.SendMsg(make([]byte, 128*100), 0, to, UDPSegment(100)); err != nil || n != 12800 {
		t.Fatalf("128 segments: %d %v", n, err)
	}
	if err := cli.SetSockOpt(SOL_UDP, UDP_SEGMENT, 2000); err != nil {
		t.Fatal(err)
	}
	_, err = cli.SendTo(make([]byte, 1600), 0, to)
	errIs(t, "option over the MTU", err, syscall.EMSGSIZE)
	if _, err := cli.SendMsg(make([]byte, 3000), 0, to, UDPSegment(0)); err != nil {
		t.Fatalf("cmsg 0 overriding the option: %v", err)
	}
	r := mustSocket(t, p.a, AF_INET, SOCK_RAW, IPPROTO_UDP)
	if _, err := r.SendMsg(make([]byte, 8), 0, ap(addrB, 0), UDPSegment(1)); err != nil {
		t.Fatalf("raw socket with UDP_SEGMENT cmsg: %v", err)
	}
	if got := p.sa.Stats().UDP.OutGSOErrors.Load(); got != 3 {
		t.Fatalf("OutGSOErrors %d, want 3", got)
	}
}

// With UDP_GRO on, a super-datagram that crosses whole is one read
// whose UDP_GRO control message gives the sender's segment size, as
// Linux; a send of one segment is a plain read; a short buffer
// truncates (MSG_TRUNC) and loses the rest, as any datagram.
func TestUDPGROReceive(t *testing.T) {
	p := newPair6(t)
	for _, dst := range []netip.Addr{addrA.Next(), netip.MustParseAddr("2001:db8::2")} {
		fam, unspec := AF_INET, netip.IPv4Unspecified()
		if dst.Is6() {
			fam, unspec = AF_INET6, netip.IPv6Unspecified()
		}
		srv := mustSocket(t, p.b, fam, SOCK_DGRAM, 0)
		srv.SetTimeout(5 * time.Second)
		if err := srv.Bind(InetAddr(netip.AddrPortFrom(unspec, uint16(9100+fam)))); err != nil {
			t.Fatal(err)
		}
		cli := mustSocket(t, p.a, fam, SOCK_DGRAM, 0)
		to := InetAddr(netip.AddrPortFrom(dst, uint16(9100+fam)))
		buf := make([]byte, 65536)
		// Neighbour resolution first (a send to an unresolved neighbour
		// goes as plain datagrams through its queue).
		if _, err := cli.SendTo([]byte("warm"), 0, to); err != nil {
			t.Fatal(err)
		}
		if _, _, err := srv.RecvFrom(buf, 0); err != nil {
			t.Fatal(err)
		}
		if err := srv.SetSockOpt(SOL_UDP, UDP_GRO, 1); err != nil {
			t.Fatal(err)
		}
		// The warm datagram arrives while the resolver may still be
		// flushing the queue it waited in; until it is done, a
		// super-datagram is cut to keep the order (ARP and NDP alike).
		waitNeighborSettled(t, p.sa.NICByName("eth0"), dst)
		payload := make([]byte, 10*1000+333)
		for i := range payload {
			payload[i] = byte(i / 7)
		}
		if _, err := cli.SendMsg(payload, 0, to, UDPSegment(1000)); err != nil {
			t.Fatal(err)
		}
		n, rflags, from, gso, err := srv.RecvMsgUDP(buf, 0)
		if err != nil || n != len(payload) || rflags != 0 || gso != 1000 || !bytes.Equal(buf[:n], payload) {
			t.Fatalf("%v: GRO read %d bytes flags %#x gso %d %v; want %d bytes, gso 1000", dst, n, rflags, gso, err, len(payload))
		}
		if from == nil {
			t.Fatal("no source address")
		}
		if _, err := cli.SendMsg(payload[:900], 0, to, UDPSegment(1000)); err != nil {
			t.Fatal(err)
		}
		if n, _, _, gso, err := srv.RecvMsgUDP(buf, 0); err != nil || n != 900 || gso != 0 {
			t.Fatalf("one segment: %d bytes gso %d %v", n, gso, err)
		}
		if _, err := cli.SendMsg(payload, 0, to, UDPSegment(1000)); err != nil {
			t.Fatal(err)
		}
		if n, rflags, _, _, err := srv.RecvMsgUDP(buf[:1500], 0); err != nil || n != 1500 || rflags&MSG_TRUNC == 0 {
			t.Fatalf("short buffer: %d bytes flags %#x %v", n, rflags, err)
		}
		if k, _, err := srv.RecvFrom(buf, MSG_DONTWAIT); err != syscall.EAGAIN {
			t.Fatalf("the rest of a truncated read came: %d %v", k, err)
		}
	}
	if got := p.sb.Stats().Link.InGSOFrames.Load(); got != 4 {
		t.Fatalf("InGSOFrames %d, want 4 (two whole reads each family)", got)
	}
	r := mustSocket(t, p.a, AF_INET, SOCK_RAW, IPPROTO_UDP)
	if _, _, _, _, err := r.RecvMsgUDP(make([]byte, 10), MSG_DONTWAIT); err != syscall.EOPNOTSUPP {
		t.Fatalf("RecvMsgUDP on a raw socket: %v", err)
	}
}

// waitNeighborSettled waits until n's entry for a is resolved and no
// longer flushing the frames that waited for it.
func waitNeighborSettled(t *testing.T, n *stack.NIC, a netip.Addr) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		list := n.Neighbors()
		if a.Is6() {
			list = n.Neighbors6()
		}
		for _, e := range list {
			if e.Addr == a && e.State == stack.NeighReachable && !e.Flushing {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("neighbour %v not settled: %+v", a, list)
		}
		runtime.Gosched()
	}
}
