package stack

import (
	"net/netip"
	"testing"

	"github.com/sockstack/sockstack/wire"
)

// BenchmarkTransparentICMPError: a Port Unreachable quoting a datagram a
// transparent socket (bound to foreign:53, connected to the peer) sent,
// addressed to the host, and addressed to the original destination (the
// diverted path, which first checks that the quote is a connection's).
func BenchmarkTransparentICMPError(b *testing.B) {
	for _, to := range []struct {
		name string
		dst  netip.Addr
	}{{"to_host", hostAddr}, {"to_original_destination", foreign}} {
		b.Run(to.name, func(b *testing.B) {
			h, _ := tproxyHarness(&testing.T{})
			defer h.s.Close()
			h.ep.discard = true
			u := h.s.NewDgram(KindUDP, wire.ProtoUDP)
			u.SetTransparent(true)
			if err := u.Bind(netip.AddrPortFrom(foreign, 53)); err != nil {
				b.Fatal(err)
			}
			if err := u.Connect(netip.AddrPortFrom(peerAddr, 5353)); err != nil {
				b.Fatal(err)
			}
			defer u.Close()
			in := make([]byte, 20)
			(&wire.IPv4Header{Protocol: wire.ProtoUDP, TotalLen: 28, TTL: 64, Src: foreign, Dst: peerAddr}).Put(in)
			m := append([]byte{wire.ICMPDestUnreach, 3, 0, 0, 0, 0, 0, 0}, append(in, 0, 53, 0x14, 0xe9, 0, 8, 0, 0)...)
			wire.ICMPv4(m).FillChecksum()
			frames := [][]byte{ipFrame(wire.IPv4Header{Protocol: wire.ProtoICMP, Dst: to.dst}, m)}
			unmatched := h.s.Stats().ICMP.InUnmatched.Load()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				h.nic.DeliverFrames(frames)
			}
			b.StopTimer()
			if h.s.Stats().ICMP.InUnmatched.Load() != unmatched || u.SoError() == nil {
				b.Fatal("the error did not reach the socket")
			}
		})
	}
}

// BenchmarkTransparent6FragmentChain diverts a datagram in two
// fragments, UDP right after the fragment header or behind destination
// options, and reads it.
func BenchmarkTransparent6FragmentChain(b *testing.B) {
	u := udp6(peer6, foreign6, 5353, 53, make([]byte, 200))
	for _, c := range []struct {
		name string
		next uint8
		fp   []byte
	}{
		{"udp_after_fragment_header", wire.ProtoUDP, u},
		{"dstopts_after_fragment_header", wire.ProtoIPv6Opts, cat(dstOpts(wire.ProtoUDP), u)},
	} {
		b.Run(c.name, func(b *testing.B) {
			h := newTP6(&testing.T{})
			defer h.s.Close()
			h.ep.discard = true
			fs := frags6(foreign6, c.next, 1, c.fp, 64)
			buf := make([]byte, 2048)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				h.nic.DeliverFrames(fs)
				if _, _, _, err := h.u.RecvFrom(buf, false); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
