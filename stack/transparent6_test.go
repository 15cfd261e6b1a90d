package stack

import (
	"errors"
	"net/netip"
	"syscall"
	"testing"

	"github.com/sockstack/sockstack/wire"
)

// IPv6 transparent proxying with extension headers anywhere in the
// chain, raw sockets beside diverted traffic, and ICMP errors about a
// diverted connection's packets.

var (
	foreign6   = netip.MustParseAddr("2001:db8:77::7")
	foreign6Pf = netip.MustParsePrefix("2001:db8:77::/48")
)

// tp6 is an IPv6 host (host6/64, DAD off, peer6 a permanent neighbour)
// with rules diverting TCP and UDP to 2001:db8:77::/48 ports 1-1000,
// and UDP to its own host6 port 7000 (Local), to port 9000, where a
// transparent UDP socket and a transparent listener wait.
type tp6 struct {
	s   *Stack
	ep  *chanEP
	nic *NIC
	u   *DgramEndpoint
}

func newTP6(t *testing.T) *tp6 {
	t.Helper()
	ep := &chanEP{mtu: 1500}
	s, nic := newGSO6(t, ep)
	ep.take()
	for _, r := range []TransparentRule{
		{Proto: TransparentTCP | TransparentUDP, Dst: foreign6Pf, Ports: [2]uint16{1, 1000}, ToPort: 9000},
		{Proto: TransparentUDP, Dst: netip.PrefixFrom(host6, 128), Ports: [2]uint16{7000, 7000}, ToPort: 9000, Local: true},
	} {
		if err := s.AddTransparentRule(r); err != nil {
			t.Fatal(err)
		}
	}
	u := s.NewDgram(KindUDP, wire.ProtoUDP)
	u.SetInet6()
	u.SetTransparent(true)
	if err := u.Bind(netip.AddrPortFrom(netip.IPv6Unspecified(), 9000)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(u.Close)
	l := s.TCP.NewEndpoint()
	l.SetTransparent(true)
	if err := l.Bind(netip.AddrPortFrom(netip.IPv6Unspecified(), 9000)); err != nil {
		t.Fatal(err)
	}
	if err := l.Listen(8); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return &tp6{s: s, ep: ep, nic: nic, u: u}
}

// dstOpts is a destination options header of 8 bytes (a PadN) naming next.
func dstOpts(next uint8) []byte { return []byte{next, 0, wire.IPv6OptPadN, 4, 0, 0, 0, 0} }

// ah is an Authentication Header of 12 bytes (length field 1: (1+2)*4,
// RFC 4302) naming next, with no ICV.
func ah(next uint8) []byte { return []byte{next, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1} }

// frags6 splits the fragmentable part fp (its first header next) of a
// datagram from peer6 to dst into fragments whose data sizes are sizes
// (the last takes the rest); ID id.
func frags6(dst netip.Addr, next uint8, id uint32, fp []byte, sizes ...int) [][]byte {
	return frag6(peer6, dst, next, id, fp, sizes...)
}

// recvDiverted reads one datagram from the transparent socket.
func (h *tp6) recvDiverted(t *testing.T) ([]byte, PacketInfo) {
	t.Helper()
	b := make([]byte, 4096)
	n, _, from, info, err := h.u.RecvFromInfo(b, false)
	if err != nil {
		t.Fatalf("nothing diverted: %v", err)
	}
	if from.Addr() != peer6 {
		t.Fatalf("from %v", from)
	}
	return b[:n], info
}

// Linux defragments before TPROXY looks, so whatever the chain holds
// after the fragment header, the whole datagram is diverted by its
// upper-layer header: fragments whose fragment header names another
// extension header, an atomic one, and a Local rule alike.
func TestTransparent6ChainAfterFragmentHeader(t *testing.T) {
	data := make([]byte, 200)
	for i := range data {
		data[i] = byte(i)
	}
	for _, c := range []struct {
		name  string
		dst   netip.Addr
		port  uint16
		chain func(u []byte) []byte // the fragmentable part's headers around u
		next  uint8
		sizes []int
	}{
		{"dstopts, out of order", foreign6, 53, func(u []byte) []byte { return cat(dstOpts(wire.ProtoUDP), u) }, wire.ProtoIPv6Opts, []int{64}},
		{"two dstopts", foreign6, 53, func(u []byte) []byte { return cat(dstOpts(wire.ProtoIPv6Opts), dstOpts(wire.ProtoUDP), u) }, wire.ProtoIPv6Opts, []int{64}},
		{"atomic fragment, dstopts", foreign6, 53, func(u []byte) []byte { return cat(dstOpts(wire.ProtoUDP), u) }, wire.ProtoIPv6Opts, nil},
		{"local rule, dstopts", host6, 7000, func(u []byte) []byte { return cat(dstOpts(wire.ProtoUDP), u) }, wire.ProtoIPv6Opts, []int{64}},
		{"udp right after (as before)", foreign6, 53, func(u []byte) []byte { return u }, wire.ProtoUDP, []int{64}},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newTP6(t)
			fp := c.chain(udp6(peer6, c.dst, 5353, c.port, data))
			fs := frags6(c.dst, c.next, 7, fp, c.sizes...)
			if c.sizes == nil {
				fs = frags6(c.dst, c.next, 7, fp, len(fp))
			}
			for i := len(fs) - 1; i >= 0; i-- {
				h.ep.inject(fs[i]) // last first: it carries no port
			}
			got, info := h.recvDiverted(t)
			if len(got) != len(data) || got[199] != 199 || info.Dst != c.dst || info.DstPort != c.port {
				t.Fatalf("%d bytes, info %+v; want %d bytes to %v port %d", len(got), info, len(data), c.dst, c.port)
			}
			if n := h.s.Stats().TProxy.DivertedUDP.Load(); n != 1 {
				t.Fatalf("DivertedUDP %d", n)
			}
			if out := h.ep.take(); len(out) != 0 {
				t.Fatalf("%d frames answered a diverted datagram", len(out))
			}
		})
	}
}

// A SYN whose chain continues after the fragment header is diverted and
// answered from the original destination.
func TestTransparent6SynChainAfterFragmentHeader(t *testing.T) {
	h := newTP6(t)
	th := wire.TCPHeader{SrcPort: 40000, DstPort: 443, Seq: 1000, Flags: wire.TCPFlagSYN, Window: 65535, Options: wire.TCPOptions{MSS: 1440}}
	syn := make([]byte, th.Len())
	th.Put(syn)
	wire.TCP(syn).FillChecksum(wire.PseudoHeaderSum6(peer6.As16(), foreign6.As16(), wire.ProtoTCP, len(syn)))
	for _, f := range frags6(foreign6, wire.ProtoIPv6Opts, 8, cat(dstOpts(wire.ProtoTCP), syn), 8+wire.TCPMinHeaderLen) {
		h.ep.inject(f)
	}
	var ans []wire.IPv6
	for _, f := range h.ep.take() {
		if ip, err := wire.ParseIPv6(f[14:]); err == nil && ip.NextHeader() == wire.ProtoTCP {
			ans = append(ans, ip)
		}
	}
	if len(ans) != 1 {
		t.Fatalf("%d TCP answers, want a SYN-ACK", len(ans))
	}
	seg := wire.TCP(ans[0].Payload())
	if ans[0].Src() != foreign6 || seg.SrcPort() != 443 || seg.Flags() != wire.TCPFlagSYN|wire.TCPFlagACK {
		t.Fatalf("answer from %v:%d flags %#x", ans[0].Src(), seg.SrcPort(), seg.Flags())
	}
	if h.s.Stats().TProxy.DivertedTCP.Load() != 1 {
		t.Fatal("DivertedTCP not counted")
	}
}

// What the rules do not take stays refused and counted as before: a
// reassembled datagram whose chain holds an option to discard, an
// ICMPv6 message and an AH-protected one (no IPsec state here; Linux
// without a security association delivers none either) to a diverted
// prefix.
func TestTransparent6ChainRefused(t *testing.T) {
	h := newTP6(t)
	st := h.s.Stats()
	u := udp6(peer6, foreign6, 5353, 53, make([]byte, 100))
	// Option type 0x40: action 01, discard silently.
	bad := []byte{wire.ProtoUDP, 0, 0x40, 4, 0, 0, 0, 0}
	drops := st.IP6.InOptionDrops.Load()
	for _, f := range frags6(foreign6, wire.ProtoIPv6Opts, 9, cat(bad, u), 64) {
		h.ep.inject(f)
	}
	if got := st.IP6.InOptionDrops.Load() - drops; got != 1 {
		t.Fatalf("bad option after the fragment header: InOptionDrops +%d, want 1", got)
	}
	echo := make([]byte, 64)
	echo[0] = wire.ICMPv6EchoRequest
	wire.ICMPv6(echo).FillChecksum(wire.PseudoHeaderSum6(peer6.As16(), foreign6.As16(), wire.ProtoICMPv6, len(echo)))
	noRule := st.TProxy.FragNoRule.Load()
	for _, f := range frags6(foreign6, wire.ProtoIPv6Opts, 10, cat(dstOpts(wire.ProtoICMPv6), echo), 24) {
		h.ep.inject(f)
	}
	for _, f := range frags6(foreign6, wire.ProtoAH, 11, cat(ah(wire.ProtoUDP), u), 32) {
		h.ep.inject(f)
	}
	if got := st.TProxy.FragNoRule.Load() - noRule; got != 2 {
		t.Fatalf("FragNoRule +%d, want 2 (ICMPv6 and AH datagrams)", got)
	}
	// Not fragmented: AH is the protocol, not diverted, not ours.
	addrErr := st.IP6.InAddrErrors.Load()
	h.ep.inject(frame6(hostMAC, peerMAC, peer6, foreign6, wire.ProtoAH, 64, cat(ah(wire.ProtoUDP), u), -1))
	if st.IP6.InAddrErrors.Load() != addrErr+1 {
		t.Fatal("AH to a foreign address not counted as not ours")
	}
	if _, _, _, err := h.u.RecvFrom(make([]byte, 200), false); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("something was diverted: %v", err)
	}
	if out := h.ep.take(); len(out) != 0 {
		t.Fatalf("%d frames answered", len(out))
	}
	if h.s.ReasmMemInUse() != 0 {
		t.Fatal("fragments left held")
	}
}

// Raw sockets get a copy of what is delivered locally, as on Linux
// (raw_local_deliver runs before the transport for every locally
// delivered packet, TPROXY-diverted ones included): IPv4 with its header,
// IPv6 from the upper-layer header (RFC 3542).
func TestTransparentRawSeesDiverted(t *testing.T) {
	t.Run("ipv4", func(t *testing.T) {
		h, u := tproxyHarness(t)
		rawU := h.s.NewDgram(KindRaw, wire.ProtoUDP)
		defer rawU.Close()
		rawT := h.s.NewDgram(KindRaw, wire.ProtoTCP)
		defer rawT.Close()
		h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoUDP, Dst: foreign}, udpPayload(peerAddr, foreign, 5353, 53, []byte("query"))))
		h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoTCP, Dst: foreign}, synPayload(peerAddr, foreign, 40000, 443)))
		if n, _, _, err := u.RecvFrom(make([]byte, 64), false); err != nil || n != 5 {
			t.Fatalf("transparent socket: %d %v", n, err)
		}
		for name, r := range map[string]*DgramEndpoint{"udp": rawU, "tcp": rawT} {
			b := make([]byte, 256)
			n, _, from, err := r.RecvFrom(b, false)
			if err != nil {
				t.Fatalf("raw %s socket saw no diverted packet: %v", name, err)
			}
			ip := wire.IPv4(b[:n])
			if from.Addr() != peerAddr || ip.Dst() != foreign || ip.Src() != peerAddr {
				t.Fatalf("raw %s: %v -> %v from %v", name, ip.Src(), ip.Dst(), from)
			}
		}
		if n := h.s.Stats().Raw.InDelivers.Load(); n != 2 {
			t.Fatalf("Raw.InDelivers %d, want 2", n)
		}
	})
	t.Run("ipv6", func(t *testing.T) {
		h := newTP6(t)
		raw := h.s.NewDgram(KindRaw, wire.ProtoUDP)
		raw.SetInet6()
		defer raw.Close()
		u := udp6(peer6, foreign6, 5353, 53, []byte("query"))
		h.ep.inject(frame6(hostMAC, peerMAC, peer6, foreign6, wire.ProtoUDP, 64, u, -1))
		h.recvDiverted(t)
		b := make([]byte, 256)
		n, _, from, info, err := raw.RecvFromInfo(b, false)
		if err != nil {
			t.Fatalf("raw socket saw no diverted datagram: %v", err)
		}
		if from.Addr() != peer6 || info.Dst != foreign6 || string(b[:n]) != string(u) {
			t.Fatalf("raw: %x from %v to %v", b[:n], from, info.Dst)
		}
	})
}
