package socket

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/sockstack/sockstack/stack"
)

// A group datagram on a host with no route for the group (the pair has
// only its subnet): IP_PKTINFO names the NIC it came in on and, as
// ipi_spec_dst, the address a reply to its sender goes from, and Record
// Route gets that address, as Linux's fib_compute_spec_dst gives them
// (the route back to the source); the sender's Record Route slot gets
// the source it sends from. Seen against the kernel over a TAP in
// TestInteropCmsgRecv4 and TestInteropCmsgSend.
func TestRecvPktinfoMulticastNoRoute(t *testing.T) {
	p := newPair(t, 1500, stack.Options{})
	group := netip.MustParseAddr("239.7.7.7")
	rcv := mustSocket(t, p.b, AF_INET, SOCK_DGRAM, 0)
	if err := rcv.Bind(ap(netip.IPv4Unspecified(), 5007)); err != nil {
		t.Fatal(err)
	}
	if err := rcv.SetSockOpt(SOL_IP, IP_ADD_MEMBERSHIP, IPMreq{Multiaddr: group}); err != nil {
		t.Fatal(err)
	}
	setOpts(t, rcv, SOL_IP, IP_PKTINFO, IP_RECVOPTS)
	snd := mustSocket(t, p.a, AF_INET, SOCK_DGRAM, 0)
	if err := snd.SetSockOpt(SOL_IP, IP_OPTIONS, []byte{7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0}); err != nil {
		t.Fatal(err)
	}
	if _, err := snd.SendTo([]byte("hi"), 0, ap(group, 5007)); err != nil {
		t.Fatal(err)
	}
	_, ctl, _ := recvCtl(t, rcv, 256, 0)
	pi := binary.NativeEndian.AppendUint32(nil, uint32(p.sb.NICByName("eth0").ID()))
	pi = append(append(pi, addrB.AsSlice()...), group.AsSlice()...)
	want := cmsgBytes(SOL_IP, IP_PKTINFO, pi)
	if len(ctl) < len(want)+16+12 || !bytes.Equal(ctl[:len(want)], want) {
		t.Fatalf("control %x, want IP_PKTINFO %x first", ctl, want)
	}
	// The sender's slot: its source, as Linux's ip_options_build fills
	// it, though no route names the group (TestInteropCmsgSend).
	if rr := ctl[len(want)+16:][:12]; rr[2] != 12 || !bytes.Equal(rr[3:7], addrA.AsSlice()) || !bytes.Equal(rr[7:11], addrB.AsSlice()) {
		t.Fatalf("Record Route %x: want the sender's %v, then this host's %v", rr, addrA, addrB)
	}
}

// The same for IPv6: IPV6_PKTINFO names the NIC a group datagram came
// in on, as Linux (TestInteropCmsgRecv6).
func TestRecvPktinfo6Multicast(t *testing.T) {
	p := newPair6(t)
	g := netip.MustParseAddr("ff15::77")
	r := mustSocket(t, p.b, AF_INET6, SOCK_DGRAM, 0)
	if err := r.Bind(Inet6("::", 5000)); err != nil {
		t.Fatal(err)
	}
	idx := p.sb.NICByName("eth0").ID()
	if err := r.SetSockOpt(IPPROTO_IPV6, IPV6_JOIN_GROUP, IPv6Mreq{Multiaddr: g, Interface: idx}); err != nil {
		t.Fatal(err)
	}
	setOpts(t, r, IPPROTO_IPV6, IPV6_RECVPKTINFO)
	s := mustSocket(t, p.a, AF_INET6, SOCK_DGRAM, 0)
	if err := s.SetSockOpt(IPPROTO_IPV6, IPV6_MULTICAST_IF, p.sa.NICByName("eth0").ID()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SendTo([]byte("hi"), 0, InetAddr(netip.AddrPortFrom(g, 5000))); err != nil {
		t.Fatal(err)
	}
	_, ctl, _ := recvCtl(t, r, 256, 0)
	want := cmsgBytes(IPPROTO_IPV6, IPV6_PKTINFO, binary.NativeEndian.AppendUint32(g.AsSlice(), uint32(idx)))
	if !bytes.Equal(ctl, want) {
		t.Fatalf("control %x, want %x", ctl, want)
	}
}
