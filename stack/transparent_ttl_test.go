package stack

import (
	"net/netip"
	"testing"

	"github.com/sockstack/sockstack/wire"
)

// SendUDPTimeExceeded: a time exceeded in transit (code 0) from the
// stack's own address, as a router's, quoting the client's datagram;
// over both families.
func TestSendUDPTimeExceeded(t *testing.T) {
	h := newHarness(t, Options{})
	client := netip.AddrPortFrom(peerAddr, 40000)
	if err := h.s.SendUDPTimeExceeded(client, netip.AddrPortFrom(foreign, 33434), []byte("probe")); err != nil {
		t.Fatal(err)
	}
	o, m, q := oneICMPError(t, h)
	u := wire.UDP(q[20:])
	if o.Src() != hostAddr || o.Dst() != peerAddr || m.Type() != wire.ICMPTimeExceeded || m.Code() != 0 ||
		q.Src() != peerAddr || q.Dst() != foreign || u.SrcPort() != 40000 || u.DstPort() != 33434 || string(q[28:]) != "probe" {
		t.Fatalf("%v -> %v type %d code %d quote %x", o.Src(), o.Dst(), m.Type(), m.Code(), q)
	}
	if h.s.Stats().ICMP.OutTimeExcds.Load() != 1 {
		t.Fatalf("OutTimeExcds %d", h.s.Stats().ICMP.OutTimeExcds.Load())
	}

	h6 := newTP6(t)
	c6 := netip.AddrPortFrom(peer6, 40000)
	if err := h6.s.SendUDPTimeExceeded(c6, netip.AddrPortFrom(foreign6, 33434), []byte("probe")); err != nil {
		t.Fatal(err)
	}
	out := h6.ep.take()
	if len(out) != 1 {
		t.Fatalf("IPv6: %d frames", len(out))
	}
	ip := wire.IPv6(out[0][14:])
	m6, err := wire.ParseICMPv6(ip[40:], wire.PseudoHeaderSum6(ip.Src16(), ip.Dst16(), wire.ProtoICMPv6, 0))
	if err != nil {
		t.Fatal(err)
	}
	q6 := wire.IPv6(m6.Payload())
	if ip.Src() == foreign6 || ip.Dst() != peer6 || m6.Type() != wire.ICMPv6TimeExceeded || m6.Code() != 0 ||
		q6.Src() != peer6 || q6.Dst() != foreign6 || wire.UDP(q6[40:]).DstPort() != 33434 || string(q6[48:]) != "probe" {
		t.Fatalf("IPv6: %v -> %v type %d code %d", ip.Src(), ip.Dst(), m6.Type(), m6.Code())
	}
	if !h6.s.IsLocal(ip.Src()) {
		t.Fatalf("IPv6: from %v, want one of the stack's addresses", ip.Src())
	}
	if err := h6.s.SendUDPTimeExceeded(c6, netip.AddrPortFrom(foreign, 53), nil); err == nil {
		t.Fatal("mixed families accepted")
	}
}

// oneICMPError takes the one frame h sent, an ICMP error: its IPv4
// header, the ICMP message and the IPv4 packet it quotes.
func oneICMPError(t *testing.T, h *harness) (wire.IPv4, wire.ICMPv4, wire.IPv4) {
	t.Helper()
	out := h.ep.take()
	if len(out) != 1 {
		t.Fatalf("%d frames", len(out))
	}
	o := parseOut(t, out[0])
	m, err := wire.ParseICMPv4(o.Payload())
	if err != nil {
		t.Fatal(err)
	}
	return o, m, wire.IPv4(m.Payload())
}
