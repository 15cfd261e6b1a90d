package stack

import (
	"bytes"
	"errors"
	"net/netip"
	"syscall"
	"testing"

	"github.com/sockstack/sockstack/wire"
)

// The ICMP packet of an error queued on a TCP socket keeps its IPv4
// options and its IPv6 flow label, so the read's IP_RECVOPTS /
// IP_RETOPTS and IPV6_FLOWINFO describe it as a datagram socket's read
// does (Linux's ip_recv_error and ipv6_recv_error run the same cmsg
// code for TCP). Before, tcp.ErrCtl carried neither.
func TestTCPConnectErrorOptsAndFlow(t *testing.T) {
	h := newHarness(t, Options{})
	e := h.s.TCP.NewEndpoint()
	defer e.Close()
	e.SetRecvErr(false, true)
	syn := connectSYN(t, h, e, netip.AddrPortFrom(peerAddr, 80))
	m := make([]byte, 8+len(syn))
	m[0], m[1] = wire.ICMPDestUnreach, wire.ICMPHostUnreach
	copy(m[8:], syn)
	wire.ICMPv4(m).FillChecksum()
	opts := []byte{wire.IPOptNOP, wire.IPOptNOP, wire.IPOptNOP, wire.IPOptEnd}
	h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoICMP, Src: peerAddr, Options: opts}, m))
	_, _, _, ctl, err := e.ReadErrCtl(make([]byte, 64))
	if err != nil {
		t.Fatal(err)
	}
	c := TCPErrCarrier(&ctl)
	if !bytes.Equal(c.Opts.Bytes(), opts) || c.Dst != hostAddr || !c.PortOK || c.Port != 80 {
		t.Fatalf("carrier %+v, options %x, want %x", c, c.Opts.Bytes(), opts)
	}

	h6 := newH6(t, Options{})
	h6.nic.SetStatic6(peerLL, peerMAC)
	e6 := h6.s.TCP.NewEndpoint()
	defer e6.Close()
	e6.SetInet6()
	e6.SetRecvErr(true, true)
	if err := e6.Connect(netip.AddrPortFrom(peerLL.WithZone("eth0"), 80)); err != nil && !errors.Is(err, syscall.EINPROGRESS) {
		t.Fatal(err)
	}
	out := h6.sent()
	if len(out) != 1 {
		t.Fatalf("connect sent %d packets", len(out))
	}
	m6 := make([]byte, 8+len(out[0].ip))
	m6[0], m6[1] = wire.ICMPv6DestUnreach, wire.ICMPv6AdminProhibited
	copy(m6[8:], out[0].ip)
	f := frame6(hostMAC, peerMAC, peerLL, hostLL, wire.ProtoICMPv6, 64, m6, 0)
	// A flow label of 0x12345 (the checksum does not cover it).
	f[15], f[16], f[17] = f[15]&0xf0|0x1, 0x23, 0x45
	h6.ep.inject(f)
	_, _, _, ctl6, err := e6.ReadErrCtl(make([]byte, 64))
	if err != nil {
		t.Fatal(err)
	}
	if c6 := TCPErrCarrier(&ctl6); c6.Flow != 0x12345 || c6.Dst != hostLL {
		t.Fatalf("carrier %+v, want flow 0x12345", c6)
	}
}

// An error queued on a TCP socket under IP_RECVERR_RFC4884 with a
// malformed extension structure (its checksum broken) is counted
// (tcp's RFC4884Invalid), as a datagram socket's is in
// ICMP.RFC4884Invalid; without the option nothing is reported or
// counted. Before, TCP counted nothing.
func TestTCPConnectErrorRFC4884InvalidCounted(t *testing.T) {
	for _, on := range []bool{false, true} {
		h := newHarness(t, Options{})
		e := h.s.TCP.NewEndpoint()
		e.SetRecvErr(false, true)
		e.SetRecvErrRFC4884(false, on)
		syn := connectSYN(t, h, e, netip.AddrPortFrom(peerAddr, 80))
		q := make([]byte, 128)
		copy(q, syn)
		ext := mplsExt4884()
		ext[2] ^= 0xff
		h.ep.inject(icmpAbout(peerAddr, wire.ICMPDestUnreach, wire.ICMPHostUnreach, 32<<16, append(q, ext...)))
		_, _, _, ctl, err := e.ReadErrCtl(make([]byte, 256))
		if err != nil {
			t.Fatal(err)
		}
		want, flags := uint64(0), uint8(0)
		if on {
			want, flags = 1, EERFC4884FlagInvalid
		}
		if got := h.s.TCP.Stats().RFC4884Invalid; got != want || ctl.RFC4884Flags != flags {
			t.Fatalf("option %v: RFC4884Invalid %d, flags %d; want %d, %d", on, got, ctl.RFC4884Flags, want, flags)
		}
		e.Close()
	}
}
