package socket

import (
	"bytes"
	"encoding/binary"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/wire"
)

// rthdrDatagram sends, from a raw IPPROTO_ROUTING socket of n with the
// given sticky headers, a UDP datagram to [::1]:port behind a routing
// header (type 0, segments left 0) and a Destination Options header
// after it; it returns the routing header and that header as a receiver
// sees them (next header bytes filled in).
func rthdrDatagram(t *testing.T, n *Net, port int, hop, dst0 []byte) (rt, dst1 []byte) {
	t.Helper()
	rs := mustSocket(t, n, AF_INET6, SOCK_RAW, int(wire.ProtoIPv6Route))
	if hop != nil {
		if err := rs.SetSockOpt(IPPROTO_IPV6, IPV6_HOPOPTS, hop); err != nil {
			t.Fatal(err)
		}
	}
	if dst0 != nil {
		if err := rs.SetSockOpt(IPPROTO_IPV6, IPV6_DSTOPTS, dst0); err != nil {
			t.Fatal(err)
		}
	}
	rt = []byte{wire.ProtoIPv6Opts, 0, 0, 0, 0, 0, 0, 0}
	dst1 = ext6Opt(2, 0xd1)
	dst1[0] = wire.ProtoUDP
	u := make([]byte, 8+5)
	wire.PutUDP(u, 4000, uint16(port), 5)
	copy(u[8:], "rthdr")
	one := [16]byte{15: 1}
	wire.UDP(u).FillChecksum(wire.PseudoHeaderSum6(one, one, wire.ProtoUDP, len(u)))
	p := append(append(append([]byte{}, rt...), dst1...), u...)
	if _, err := rs.SendTo(p, 0, Inet6("::1", 0)); err != nil {
		t.Fatal(err)
	}
	return rt, dst1
}

func cmsgCat(ms ...[]byte) []byte { return bytes.Join(ms, nil) }

// IPV6_RECVRTHDR: a datagram's routing header (segments left 0) comes as
// an IPV6_RTHDR message whole, in chain order between the Destination
// Options headers before and after it (ip6_datagram_recv_specific_ctl);
// nothing without the option.
func TestExt6RecvRthdr(t *testing.T) {
	n, r, ra := loopReceiver(t, AF_INET6)
	r.SetTimeout(5 * time.Second)
	port := int(ra.(*SockaddrInet).AddrPort.Port())
	setOpts(t, r, IPPROTO_IPV6, IPV6_RECVRTHDR, IPV6_RECVDSTOPTS, IPV6_RECVHOPOPTS)
	if v, err := r.GetSockOpt(IPPROTO_IPV6, IPV6_RECVRTHDR); err != nil || v != 1 {
		t.Fatalf("getsockopt(IPV6_RECVRTHDR): %v %v", v, err)
	}
	hop, d0 := ext6Opt(1, 0xaa), ext6Opt(1, 0xd0)
	rt, d1 := rthdrDatagram(t, n, port, hop, d0)
	d, ctl, _ := recvCtl(t, r, 512, 0)
	if string(d) != "rthdr" {
		t.Fatalf("data %q", d)
	}
	wHop := append([]byte{wire.ProtoIPv6Opts}, hop[1:]...)
	wD0 := append([]byte{wire.ProtoIPv6Route}, d0[1:]...)
	want := cmsgCat(cmsgBytes(IPPROTO_IPV6, IPV6_HOPOPTS, wHop), cmsgBytes(IPPROTO_IPV6, IPV6_DSTOPTS, wD0),
		cmsgBytes(IPPROTO_IPV6, IPV6_RTHDR, rt), cmsgBytes(IPPROTO_IPV6, IPV6_DSTOPTS, d1))
	if !bytes.Equal(ctl, want) {
		t.Fatalf("control\n%x\nwant\n%x", ctl, want)
	}
	// The routing header alone.
	setOpts(t, r, IPPROTO_IPV6)
	if err := r.SetSockOpt(IPPROTO_IPV6, IPV6_RECVDSTOPTS, 0); err != nil {
		t.Fatal(err)
	}
	if err := r.SetSockOpt(IPPROTO_IPV6, IPV6_RECVHOPOPTS, 0); err != nil {
		t.Fatal(err)
	}
	rthdrDatagram(t, n, port, hop, d0)
	if _, ctl, _ = recvCtl(t, r, 512, 0); !bytes.Equal(ctl, cmsgBytes(IPPROTO_IPV6, IPV6_RTHDR, rt)) {
		t.Fatalf("IPV6_RECVRTHDR only: %x", ctl)
	}
	if err := r.SetSockOpt(IPPROTO_IPV6, IPV6_RECVRTHDR, 0); err != nil {
		t.Fatal(err)
	}
	rthdrDatagram(t, n, port, hop, d0)
	if _, ctl, _ = recvCtl(t, r, 512, 0); len(ctl) != 0 {
		t.Fatalf("options off: %x", ctl)
	}
	// AF_INET sockets refuse it.
	u4 := mustSocket(t, n, AF_INET, SOCK_DGRAM, 0)
	if err := u4.SetSockOpt(IPPROTO_IPV6, IPV6_RECVRTHDR, 1); !errors.Is(err, syscall.ENOPROTOOPT) {
		t.Fatalf("AF_INET: %v", err)
	}
}

// The RFC 2292 receive options: IPV6_2292PKTINFO (in6_pktinfo),
// IPV6_2292HOPLIMIT (int), IPV6_2292HOPOPTS, IPV6_2292DSTOPTS before the
// routing header, IPV6_2292RTHDR, IPV6_2292DSTOPTS after it, in that
// order after the RFC 3542 messages, with the old numbers as types.
func TestExt6Recv2292(t *testing.T) {
	n, r, ra := loopReceiver(t, AF_INET6)
	r.SetTimeout(5 * time.Second)
	port := int(ra.(*SockaddrInet).AddrPort.Port())
	setOpts(t, r, IPPROTO_IPV6, IPV6_2292PKTINFO, IPV6_2292HOPLIMIT, IPV6_2292HOPOPTS, IPV6_2292DSTOPTS, IPV6_2292RTHDR, IPV6_RECVHOPLIMIT)
	for _, o := range []int{IPV6_2292PKTINFO, IPV6_2292HOPLIMIT, IPV6_2292HOPOPTS, IPV6_2292DSTOPTS, IPV6_2292RTHDR} {
		if v, err := r.GetSockOpt(IPPROTO_IPV6, o); err != nil || v != 1 {
			t.Fatalf("getsockopt(%d): %v %v", o, v, err)
		}
	}
	hop, d0 := ext6Opt(1, 0xaa), ext6Opt(1, 0xd0)
	rt, d1 := rthdrDatagram(t, n, port, hop, d0)
	_, ctl, _ := recvCtl(t, r, 512, 0)
	var pi [20]byte
	pi[15] = 1
	binary.NativeEndian.PutUint32(pi[16:], 1) // loopback
	want := cmsgCat(cmsgBytes(IPPROTO_IPV6, IPV6_HOPLIMIT, int32Bytes(64)),
		cmsgBytes(IPPROTO_IPV6, IPV6_2292PKTINFO, pi[:]),
		cmsgBytes(IPPROTO_IPV6, IPV6_2292HOPLIMIT, int32Bytes(64)),
		cmsgBytes(IPPROTO_IPV6, IPV6_2292HOPOPTS, append([]byte{wire.ProtoIPv6Opts}, hop[1:]...)),
		cmsgBytes(IPPROTO_IPV6, IPV6_2292DSTOPTS, append([]byte{wire.ProtoIPv6Route}, d0[1:]...)),
		cmsgBytes(IPPROTO_IPV6, IPV6_2292RTHDR, rt),
		cmsgBytes(IPPROTO_IPV6, IPV6_2292DSTOPTS, d1))
	if !bytes.Equal(ctl, want) {
		t.Fatalf("control\n%x\nwant\n%x", ctl, want)
	}
	// A plain datagram: the pktinfo and hop limit only.
	s := mustSocket(t, n, AF_INET6, SOCK_DGRAM, 0)
	if _, err := s.SendTo([]byte("plain"), 0, ra); err != nil {
		t.Fatal(err)
	}
	_, ctl, _ = recvCtl(t, r, 512, 0)
	want = cmsgCat(cmsgBytes(IPPROTO_IPV6, IPV6_HOPLIMIT, int32Bytes(64)),
		cmsgBytes(IPPROTO_IPV6, IPV6_2292PKTINFO, pi[:]),
		cmsgBytes(IPPROTO_IPV6, IPV6_2292HOPLIMIT, int32Bytes(64)))
	if !bytes.Equal(ctl, want) {
		t.Fatalf("plain: control\n%x\nwant\n%x", ctl, want)
	}
}
