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
		if err := e.Connect(netip.AddrPortFrom(peerAddr, 80)); err != nil && !errors.Is(err, syscall.EINPROGRESS) {
			t.Fatal(err)
		}
		out := h.ep.take()
		if len(out) != 1 {
			t.Fatalf("connect sent %d frames", len(out))
		}
		syn := append([]byte(nil), parseOut(t, out[0])...)
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
		if err := e.Connect(netip.AddrPortFrom(peerLL.WithZone("eth0"), 80)); err != nil && !errors.Is(err, syscall.EINPROGRESS) {
			t.Fatal(err)
		}
		out := h.sent()
		if len(out) != 1 {
			t.Fatalf("connect sent %d packets", len(out))
		}
		m := make([]byte, 8+len(out[0].ip))
		m[0], m[1] = c.typ, c.code
		copy(m[8:], out[0].ip)
		h.ep.inject(frame6(hostMAC, peerMAC, peerLL, hostLL, wire.ProtoICMPv6, 64, m, 0))
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
	if err := e.Connect(to); err != nil && !errors.Is(err, syscall.EINPROGRESS) {
		t.Fatal(err)
	}
	out := h.ep.take()
	if len(out) != 1 {
		t.Fatalf("connect sent %d frames", len(out))
	}
	syn := append([]byte(nil), parseOut(t, out[0])...)
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
		if err := e.Connect(to); err != nil && !errors.Is(err, syscall.EINPROGRESS) {
			t.Fatal(err)
		}
		out := h.sent()
		if len(out) != 1 {
			t.Fatalf("connect sent %d packets", len(out))
		}
		m := make([]byte, 8+len(out[0].ip))
		m[0], m[1] = wire.ICMPv6DestUnreach, wire.ICMPv6AdminProhibited
		copy(m[8:], out[0].ip)
		h.ep.inject(frame6(hostMAC, peerMAC, peerLL, hostLL, wire.ProtoICMPv6, 64, m, 0))
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
		tcpHdr := out[0].ip[wire.IPv6HeaderLen:]
		if err != nil || q != want || string(buf[:n]) != string(tcpHdr) {
			t.Fatalf("queued %x %+v %v, want %x %+v", buf[:n], q, err, tcpHdr, want)
		}
		e.Close()
	}
}
