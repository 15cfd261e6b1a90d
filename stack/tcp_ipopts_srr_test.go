package stack

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/sockstack/sockstack/tcp"
	"github.com/sockstack/sockstack/wire"
)

// A TCP socket with a loose source route sends its SYN as Linux's
// ip_queue_xmit does: to the route's first hop, with the final
// destination in the route's last slot and in TCP's pseudo-header
// (Linux's tcp_v4_send_check sums over inet_daddr).
func TestTCPIPOptionsSourceRoute(t *testing.T) {
	h := newHarness(t, Options{})
	final := netip.MustParseAddr("10.0.0.3")
	o, err := h.s.CompileIPOptions([]byte{0x83, 7, 4, 10, 0, 0, 2}) // through peerAddr
	if err != nil {
		t.Fatal(err)
	}
	e := h.s.TCP.NewEndpoint()
	defer e.Close()
	e.SetIPOptions(o)
	syn := connectSYN(t, h, e, netip.AddrPortFrom(final, 80))
	ip := wire.IPv4(syn)
	if ip.Dst() != peerAddr {
		t.Fatalf("SYN to %v, want the first hop %v", ip.Dst(), peerAddr)
	}
	if want := []byte{0x83, 7, 4, 10, 0, 0, 3, 0}; !bytes.Equal(ip.Options(), want) {
		t.Fatalf("options %x, want %x", ip.Options(), want)
	}
	if _, err := wire.ParseTCP(ip.Payload(), wire.PseudoHeaderSum(hostAddr.As4(), final.As4(), wire.ProtoTCP, 0), true); err != nil {
		t.Fatalf("checksum over the final destination: %v", err)
	}
}

// A segment with IP_OPTIONS costs no allocation more than one without:
// the options are built in a pool buffer.
func TestTCPIPOptionsOutputAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under -race")
	}
	h := newHarness(t, Options{})
	h.ep.discard = true
	o, err := h.s.CompileIPOptions([]byte{7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0})
	if err != nil {
		t.Fatal(err)
	}
	payload := make([]byte, 1000)
	seg := &tcp.Segment{Local: netip.AddrPortFrom(hostAddr, 40000), Remote: netip.AddrPortFrom(peerAddr, 80),
		Header: wire.TCPHeader{Seq: 1, Ack: 2, Flags: wire.TCPFlagACK, Window: 100}, Payload: [2][]byte{payload}}
	host := tcpHost{h.s}
	count := func(opts tcp.IPOptions) float64 {
		seg.IPOpts = opts
		return testing.AllocsPerRun(200, func() {
			if err := host.Output(seg); err != nil {
				t.Fatal(err)
			}
		})
	}
	without, with := count(nil), count(o)
	if with > without {
		t.Fatalf("%v allocations per segment with options, %v without", with, without)
	}
	t.Logf("allocations per segment: %v with options, %v without", with, without)
}
