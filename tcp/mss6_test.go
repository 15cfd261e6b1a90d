package tcp

import (
	"errors"
	"net/netip"
	"syscall"
	"testing"

	"github.com/sockstack/sockstack/wire"
)

// newScript6 is newScript over IPv6: the host's MTU is 1480, as the
// stack gives TCP an IPv6 route (IPv4's header size is TCP's model).
func newScript6(t *testing.T) *script {
	s := newScript(t, Config{})
	l6, r6 := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
	s.h.locals, s.h.mtu = []netip.Addr{l6}, 1480
	s.local, s.remote = netip.AddrPortFrom(l6, 8080), netip.AddrPortFrom(r6, 40000)
	return s
}

// Without the peer's MSS option the send MSS is the default of the
// family: 536 over IPv4, 1220 over IPv6 (RFC 9293 3.7.1, 1280 less the
// headers; Linux's mss_clamp for IPv6), on either side of the handshake.
func TestDefaultMSSWithoutOption(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    *script
		want int
	}{{"IPv4", newScript(t, Config{}), 536}, {"IPv6", newScript6(t), 1220}} {
		s := tc.s
		_, c, _ := s.passiveOpen(wire.TCPOptions{})
		if got := c.Info().SndMSS; got != tc.want {
			t.Errorf("%s, passive: send MSS %d, want %d", tc.name, got, tc.want)
		}

		e := s.p.NewEndpoint()
		if err := e.Connect(netip.AddrPortFrom(s.remote.Addr(), 40001)); err != nil && !errors.Is(err, syscall.EINPROGRESS) {
			t.Fatal(err)
		}
		syn := s.expectOne("SYN")
		s.remote = syn.remote
		s.local = syn.local
		s.inject(seg{flags: fSA, seq: 5000, ack: syn.h.Seq + 1, win: 65535})
		s.out()
		if got := e.Info().SndMSS; got != tc.want {
			t.Errorf("%s, active: send MSS %d, want %d", tc.name, got, tc.want)
		}
	}
}
