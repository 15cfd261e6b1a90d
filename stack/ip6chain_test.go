package stack

import (
	"errors"
	"net/netip"
	"syscall"
	"testing"

	"github.com/sockstack/sockstack/wire"
)

// The places that step over an IPv6 chain by header lengths
// (wire.SkipIPv6Chain): RFC 7112's first-fragment check, the test for an
// ICMPv6 error that must not be answered, and an error's quoted packet.

// AH counts 4-byte units (RFC 4302): a first fragment whose chain holds
// an AH and only 8 bytes of TCP is incomplete, one with the whole TCP
// header is kept.
func TestIPv6FirstFragmentChainWithAH(t *testing.T) {
	h := newH6(t, Options{})
	h.nic.SetStatic6(peerLL, peerMAC)
	st := h.s.Stats()
	before := st.IP6.InIncompleteChain.Load()
	h.ep.inject(ppFrag(wire.ProtoAH, 0, true, 400, cat(ah(wire.ProtoTCP), make([]byte, 8))))
	pp := h.only(wire.ICMPv6ParamProblem)
	if len(pp) != 1 || pp[0].icmp.Code() != wire.ICMPv6IncompleteHeaderChain {
		t.Fatalf("want one Parameter Problem code 3, got %+v", pp)
	}
	eq(t, "incomplete chains", st.IP6.InIncompleteChain.Load(), before+1)
	// AH, destination options, the whole TCP header.
	h.ep.inject(ppFrag(wire.ProtoAH, 0, true, 401, cat(ah(wire.ProtoIPv6Opts), dstOpts(wire.ProtoTCP), make([]byte, 20))))
	if len(h.sent()) != 0 {
		t.Fatal("answered a first fragment holding the whole chain")
	}
	eq(t, "incomplete chains", st.IP6.InIncompleteChain.Load(), before+1)
}

// An ICMPv6 error behind an AH is still an ICMPv6 error: a bad option in
// front of it draws no Parameter Problem (RFC 4443 2.4 e).
func TestIPv6NoErrorAboutICMPv6ErrorBehindAH(t *testing.T) {
	h := newH6(t, Options{})
	h.nic.SetStatic6(peerLL, peerMAC)
	st := h.s.Stats()
	du := make([]byte, 8+48)
	du[0] = wire.ICMPv6DestUnreach
	echo := make([]byte, 16)
	echo[0] = wire.ICMPv6EchoRequest
	withOpt := func(m []byte) []byte {
		// An unknown destination option of action 10, then AH.
		o := cat([]byte{wire.ProtoAH, 0, 0x9e, 2, 0, 0, 1, 0}, ah(wire.ProtoICMPv6), m)
		return frame6(hostMAC, peerMAC, peerLL, hostLL, wire.ProtoIPv6Opts, 64, o, 8+12)
	}
	sup := st.ICMP6.OutSuppressed.Load()
	h.ep.inject(withOpt(du))
	if pp := h.only(wire.ICMPv6ParamProblem); len(pp) != 0 {
		t.Fatalf("Parameter Problem about an ICMPv6 error behind AH: %+v", pp)
	}
	eq(t, "suppressed", st.ICMP6.OutSuppressed.Load(), sup+1)
	h.ep.inject(withOpt(echo))
	if pp := h.only(wire.ICMPv6ParamProblem); len(pp) != 1 {
		t.Fatalf("no Parameter Problem about an echo request behind AH: %+v", pp)
	}
}

// An error quoting a first fragment whose chain goes on after the
// fragment header reaches the socket that sent it.
func TestIPv6ErrorQuoteChainAfterFragmentHeader(t *testing.T) {
	ep := &chanEP{mtu: 1500}
	s, _ := newGSO6(t, ep)
	u := s.NewDgram(KindUDP, wire.ProtoUDP)
	u.SetInet6()
	defer u.Close()
	if err := u.Bind(netip.AddrPortFrom(host6, 5000)); err != nil {
		t.Fatal(err)
	}
	if err := u.Connect(netip.AddrPortFrom(peer6, 53)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		first uint8
		chain []byte
	}{
		{"fragment, dstopts", wire.ProtoIPv6Frag, cat([]byte{wire.ProtoIPv6Opts, 0, 0, 1, 0, 0, 0, 9}, dstOpts(wire.ProtoUDP))},
		{"dstopts, AH", wire.ProtoIPv6Opts, cat(dstOpts(wire.ProtoAH), ah(wire.ProtoUDP))},
	} {
		quoted := make([]byte, 40)
		uh := udp6(host6, peer6, 5000, 53, make([]byte, 32))
		hd := wire.IPv6Header{PayloadLen: len(c.chain) + len(uh), NextHeader: c.first, HopLimit: 64, Src: host6, Dst: peer6}
		hd.Put(quoted)
		quoted = cat(quoted, c.chain, uh)
		m := make([]byte, 8)
		m[0], m[1] = wire.ICMPv6DestUnreach, wire.ICMPv6PortUnreach
		m = cat(m, quoted)
		ep.inject(frame6(hostMAC, peerMAC, peer6, host6, wire.ProtoICMPv6, 64, m, 0))
		if err := u.SoError(); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("%s: socket error %v, want ECONNREFUSED", c.name, err)
		}
	}
}

// An ICMP error addressed to the host that quotes a TCP packet from a
// foreign source is handed to TCP once (its ICMPErrors count it, as for
// a quote from one of the host's addresses), found or not.
func TestTransparentErrorHandedToTCPOnce(t *testing.T) {
	h, _ := tproxyHarness(t)
	quote := func(sport uint16) []byte {
		in := make([]byte, 20)
		ih := wire.IPv4Header{Protocol: wire.ProtoTCP, TotalLen: 28, TTL: 64, Src: foreign, Dst: peerAddr}
		ih.Put(in)
		return cat(in, []byte{byte(sport >> 8), byte(sport), 0x9c, 0x40, 0, 0, 3, 0xe8})
	}
	unreach := func(q []byte) []byte {
		m := cat([]byte{wire.ICMPDestUnreach, 1, 0, 0, 0, 0, 0, 0}, q)
		wire.ICMPv4(m).FillChecksum()
		return m
	}
	before := h.s.TCP.Stats().ICMPErrors
	unmatched := h.s.Stats().ICMP.InUnmatched.Load()
	h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoICMP}, unreach(quote(443))))
	if got := h.s.TCP.Stats().ICMPErrors - before; got != 1 {
		t.Fatalf("TCP ICMPErrors +%d, want 1", got)
	}
	if h.s.Stats().ICMP.InUnmatched.Load() != unmatched+1 {
		t.Fatal("an error about no connection was not counted unmatched")
	}
}
