package stack

import (
	"errors"
	"net/netip"
	"syscall"
	"testing"

	"github.com/sockstack/sockstack/tcp"
	"github.com/sockstack/sockstack/wire"
)

// connectErr reports the errno a TCP connect in SYN_SENT ends with.
func connectErr(e *tcp.Endpoint) error {
	if e.State() != tcp.StateClosed {
		return errors.New("still " + e.State().String())
	}
	return e.SoError()
}

// connectSYN starts e's connect to to and returns the SYN it sent (the
// IP packet).
func connectSYN(t *testing.T, h *harness, e *tcp.Endpoint, to netip.AddrPort) []byte {
	t.Helper()
	if err := e.Connect(to); err != nil && !errors.Is(err, syscall.EINPROGRESS) {
		t.Fatal(err)
	}
	out := h.ep.take()
	if len(out) != 1 {
		t.Fatalf("connect sent %d frames", len(out))
	}
	return append([]byte(nil), parseOut(t, out[0])...)
}

// connectICMP6 starts e's connect to to over IPv6 and answers the SYN
// with an ICMPv6 error of typ and code from peerLL; it returns the SYN.
func connectICMP6(t *testing.T, h *h6, e *tcp.Endpoint, to netip.AddrPort, typ, code uint8) []byte {
	t.Helper()
	if err := e.Connect(to); err != nil && !errors.Is(err, syscall.EINPROGRESS) {
		t.Fatal(err)
	}
	out := h.sent()
	if len(out) != 1 {
		t.Fatalf("connect sent %d packets", len(out))
	}
	m := make([]byte, 8+len(out[0].ip))
	m[0], m[1] = typ, code
	copy(m[8:], out[0].ip)
	h.ep.inject(frame6(hostMAC, peerMAC, peerLL, hostLL, wire.ProtoICMPv6, 64, m, 0))
	return out[0].ip
}

// An ICMP error about a SYN ends the connect with Linux's errno for the
// type and code, the stack's table (icmp_err_convert, tcp_v4_err;
// icmpv6_err_convert, tcp_v6_err): a protocol unreachable ENOPROTOOPT, a
// parameter problem EPROTO, an ICMPv6 administratively prohibited
// EACCES. sockstack gave ECONNREFUSED, EHOSTUNREACH/ECONNREFUSED and
// EHOSTUNREACH.
func TestTCPConnectICMPErrno(t *testing.T) {
	for _, c := range []struct {
		typ, code uint8
		want      syscall.Errno
	}{
		{wire.ICMPDestUnreach, wire.ICMPProtoUnreach, syscall.ENOPROTOOPT},
		{wire.ICMPParamProblem, 0, syscall.EPROTO},
		{wire.ICMPDestUnreach, wire.ICMPPortUnreach, syscall.ECONNREFUSED},
		{wire.ICMPDestUnreach, wire.ICMPHostUnknown, syscall.EHOSTDOWN},
	} {
		h := newHarness(t, Options{})
		e := h.s.TCP.NewEndpoint()
		syn := connectSYN(t, h, e, netip.AddrPortFrom(peerAddr, 80))
		h.ep.inject(icmpAbout(peerAddr, c.typ, c.code, 0, syn))
		if err := connectErr(e); !errors.Is(err, c.want) {
			t.Errorf("ICMP type %d code %d: connect %v, want %v", c.typ, c.code, err, c.want)
		}
		e.Close()
	}
	for _, c := range []struct {
		typ, code uint8
		want      syscall.Errno
	}{
		{wire.ICMPv6ParamProblem, 0, syscall.EPROTO},
		{wire.ICMPv6DestUnreach, wire.ICMPv6AdminProhibited, syscall.EACCES},
		{wire.ICMPv6DestUnreach, wire.ICMPv6PortUnreach, syscall.ECONNREFUSED},
	} {
		h := newH6(t, Options{})
		h.nic.SetStatic6(peerLL, peerMAC)
		e := h.s.TCP.NewEndpoint()
		e.SetInet6()
		connectICMP6(t, h, e, netip.AddrPortFrom(peerLL.WithZone("eth0"), 80), c.typ, c.code)
		if err := connectErr(e); !errors.Is(err, c.want) {
			t.Errorf("ICMPv6 type %d code %d: connect %v, want %v", c.typ, c.code, err, c.want)
		}
		e.Close()
	}
}

// With IP_RECVERR the error that ends the connect is queued as Linux's
// ip_icmp_error queues it: the payload is the quote from the TCP header
// on, ee_info a parameter problem's pointer, the offender the ICMP's
// source, the destination the remote.
func TestTCPConnectErrorQueued(t *testing.T) {
	h := newHarness(t, Options{})
	e := h.s.TCP.NewEndpoint()
	defer e.Close()
	e.SetRecvErr(false, true)
	to := netip.AddrPortFrom(peerAddr, 80)
	syn := connectSYN(t, h, e, to)
	router := netip.MustParseAddr("10.0.0.254")
	h.ep.inject(icmpAbout(router, wire.ICMPParamProblem, 0, 9<<24, syn))
	buf := make([]byte, 100)
	n, full, m, err := e.ReadErr(buf)
	want := tcp.ErrQueueEntry{Errno: syscall.EPROTO, Origin: EEOriginICMP, Type: wire.ICMPParamProblem, Info: 9, Offender: router, Dst: to}
	tcpHdr := syn[wire.IPv4(syn).HeaderLen():]
	if err != nil || m != want || string(buf[:n]) != string(tcpHdr) || full != len(tcpHdr) {
		t.Fatalf("queued %x (%d) %+v %v, want %x %+v", buf[:n], full, m, err, tcpHdr, want)
	}
}

// IPv6: IPV6_RECVERR queues the error ending a connect (ICMPv6 origin,
// the offender with the NIC as its zone); IP_RECVERR alone does not, as
// tcp_v6_err checks the IPv6 option.
func TestTCPConnectErrorQueued6(t *testing.T) {
	for _, v6opt := range []bool{false, true} {
		h := newH6(t, Options{})
		h.nic.SetStatic6(peerLL, peerMAC)
		e := h.s.TCP.NewEndpoint()
		e.SetInet6()
		e.SetRecvErr(v6opt, true)
		to := netip.AddrPortFrom(peerLL.WithZone("eth0"), 80)
		syn := connectICMP6(t, h, e, to, wire.ICMPv6DestUnreach, wire.ICMPv6AdminProhibited)
		if !v6opt {
			if n := e.ErrQueueLen(); n != 0 {
				t.Fatalf("IP_RECVERR alone: %d queued", n)
			}
			e.Close()
			continue
		}
		buf := make([]byte, 100)
		n, _, q, err := e.ReadErr(buf)
		want := tcp.ErrQueueEntry{Errno: syscall.EACCES, Origin: EEOriginICMP6, Type: wire.ICMPv6DestUnreach, Code: wire.ICMPv6AdminProhibited,
			Offender: peerLL.WithZone("eth0"), Dst: to}
		tcpHdr := syn[wire.IPv6HeaderLen:]
		if err != nil || q != want || string(buf[:n]) != string(tcpHdr) {
			t.Fatalf("queued %x %+v %v, want %x %+v", buf[:n], q, err, tcpHdr, want)
		}
		e.Close()
	}
}

// Under IP_RECVERR_RFC4884 the error that ends a connect reports where
// the RFC 4884 extension starts in its payload (the quote from the TCP
// header on: 128 bytes of original datagram less the IP header), and
// the ICMP packet it came in (for IP_PKTINFO and the rest); without the
// option ee_rfc4884 stays zero.
func TestTCPConnectErrorRFC4884(t *testing.T) {
	for _, on := range []bool{false, true} {
		h := newHarness(t, Options{})
		e := h.s.TCP.NewEndpoint()
		e.SetRecvErr(false, true)
		e.SetRecvErrRFC4884(false, on)
		if e.RecvErrRFC4884(false) != on || e.RecvErrRFC4884(true) {
			t.Fatalf("option reads %v", e.RecvErrRFC4884(false))
		}
		syn := connectSYN(t, h, e, netip.AddrPortFrom(peerAddr, 80))
		q := make([]byte, 128)
		copy(q, syn)
		h.ep.inject(icmpAbout(peerAddr, wire.ICMPDestUnreach, wire.ICMPHostUnreach, 32<<16, append(q, mplsExt4884()...)))
		_, full, m, ctl, err := e.ReadErrCtl(make([]byte, 256))
		if err != nil {
			t.Fatal(err)
		}
		want := tcp.ErrCtl{Dst: hostAddr, TTL: 64, NIC: h.nic.ID(), Port: 80, PortOK: true}
		if on {
			want.RFC4884Len = 108
		}
		if ctl != want || full != 108+12 || m.Errno != syscall.EHOSTUNREACH {
			t.Fatalf("option %v: ctl %+v (payload %d, %+v), want %+v", on, ctl, full, m, want)
		}
		e.Close()
	}
}
