package stack

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/wire"
)

var farAddr = netip.MustParseAddr("192.0.2.10")

// fragNeeded is the router's ICMP fragmentation needed about quoted
// (an IP packet we sent), carrying mtu.
func fragNeeded(quoted []byte, mtu int) []byte {
	q := quoted[:min(len(quoted), wire.IPv4(quoted).HeaderLen()+8)]
	m := make([]byte, 8+len(q))
	m[0], m[1] = wire.ICMPDestUnreach, wire.ICMPFragNeeded
	wire.ICMPv4(m).SetNextHopMTU(mtu)
	copy(m[8:], q)
	wire.ICMPv4(m).FillChecksum()
	return ipFrame(wire.IPv4Header{Protocol: wire.ProtoICMP}, m)
}

// farPort is the UDP port pmtuHarness's socket holds: errors about
// datagrams from it are taken, so their path MTU is learnt.
const farPort = 4000

// udpFrom is a UDP datagram of n bytes (header included) from sport.
func udpFrom(sport uint16, n int) []byte {
	b := make([]byte, n)
	binary.BigEndian.PutUint16(b, sport)
	return b
}

// sendFar sends a datagram of size bytes (IP total) from farPort to
// farAddr and returns the frames it left as.
func sendFar(t *testing.T, h *harness, size int, df bool) ([]wire.IPv4, error) {
	t.Helper()
	err := h.s.WritePacket(&OutPacket{Dst: farAddr, Proto: wire.ProtoUDP, DF: df, NoCsum: true, Parts: [3][]byte{udpFrom(farPort, size-20)}})
	var out []wire.IPv4
	for _, f := range h.ep.take() {
		out = append(out, parseOut(t, f))
	}
	return out, err
}

func pmtuHarness(t *testing.T, opts Options) *harness {
	h := newHarness(t, opts)
	if err := h.s.SetDefaultGateway(peerAddr); err != nil {
		t.Fatal(err)
	}
	u := h.s.NewDgram(KindUDP, wire.ProtoUDP)
	if err := u.Bind(netip.AddrPortFrom(netip.IPv4Unspecified(), farPort)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(u.Close)
	return h
}

// A fragmentation-needed error lowers the MTU used towards its
// destination (DF sends beyond it fail with EMSGSIZE, others are
// fragmented to it, TCP's route sees it) for 10 minutes; it never rises
// on a later error; it expires.
func TestPMTUCacheLearnsAndExpires(t *testing.T) {
	h := pmtuHarness(t, Options{})
	out, err := sendFar(t, h, 1400, true)
	if err != nil || len(out) != 1 {
		t.Fatalf("first send: %d frames, %v", len(out), err)
	}
	h.ep.inject(fragNeeded(out[0], 1000))
	if m := h.s.PathMTU(farAddr); m != 1000 {
		t.Fatalf("path MTU %d, want 1000", m)
	}
	if rt, _ := (tcpHost{h.s}).Route(farAddr); rt.MTU != 1000 {
		t.Fatalf("TCP's route MTU %d, want 1000", rt.MTU)
	}
	if _, err := sendFar(t, h, 1400, true); !errors.Is(err, syscall.EMSGSIZE) {
		t.Fatalf("DF send over the path MTU: %v, want EMSGSIZE", err)
	}
	frags, err := sendFar(t, h, 1400, false)
	if err != nil || len(frags) != 2 || len(frags[0]) > 1000 {
		t.Fatalf("non-DF send: %d fragments (first %d bytes), %v", len(frags), len(frags[0]), err)
	}
	// Other destinations keep the route MTU.
	if m := h.s.PathMTU(netip.MustParseAddr("192.0.2.11")); m != 1500 {
		t.Fatalf("another destination: %d", m)
	}
	// A later error with a larger MTU does not raise it.
	h.ep.inject(fragNeeded(out[0], 1200))
	if m := h.s.PathMTU(farAddr); m != 1000 {
		t.Fatalf("path MTU rose to %d", m)
	}
	// An error about a datagram that is not ours teaches nothing.
	forged := append([]byte(nil), out[0]...)
	wire.IPv4(forged).SetSrc(netip.MustParseAddr("10.0.0.77"))
	wire.IPv4(forged).SetDst(netip.MustParseAddr("192.0.2.99"))
	h.ep.inject(fragNeeded(forged, 600))
	if m := h.s.PathMTU(netip.MustParseAddr("192.0.2.99")); m != 1500 {
		t.Fatalf("forged error set a path MTU of %d", m)
	}
	h.clk.Advance(10*time.Minute - time.Second)
	if m := h.s.PathMTU(farAddr); m != 1000 {
		t.Fatalf("expired early: %d", m)
	}
	h.clk.Advance(time.Second)
	if m := h.s.PathMTU(farAddr); m != 1500 {
		t.Fatalf("after 10 minutes: %d, want the route's 1500", m)
	}
	if out, err := sendFar(t, h, 1400, true); err != nil || len(out) != 1 {
		t.Fatalf("DF send after expiry: %d frames, %v", len(out), err)
	}
}

// MTU 0 (a pre-RFC 1191 router) takes the plateau below the quoted
// datagram's length; a report below 552 sets 552 and locks the path:
// its packets leave without DF, fragmented to 552.
func TestPMTUPlateauAndMinimum(t *testing.T) {
	h := pmtuHarness(t, Options{})
	out, _ := sendFar(t, h, 1400, true)
	h.ep.inject(fragNeeded(out[0], 0))
	if m := h.s.PathMTU(farAddr); m != 1006 {
		t.Fatalf("plateau for a 1400-byte datagram: %d, want 1006", m)
	}
	if h.s.Stats().IP.PMTUPlateaus.Load() != 1 {
		t.Fatal("plateau not counted")
	}
	out, _ = sendFar(t, h, 1000, true)
	h.ep.inject(fragNeeded(out[0], 300))
	if m := h.s.PathMTU(farAddr); m != 552 {
		t.Fatalf("path MTU %d after a report of 300, want 552", m)
	}
	frags, err := sendFar(t, h, 1000, true)
	if err != nil || len(frags) != 2 {
		t.Fatalf("DF send on a locked path: %d frames, %v", len(frags), err)
	}
	for _, f := range frags {
		if len(f) > 552 || f.DF() {
			t.Fatalf("fragment of %d bytes, DF %v", len(f), f.DF())
		}
	}
	if h.s.Stats().IP.PMTUBelowMin.Load() != 1 {
		t.Fatal("below-minimum report not counted")
	}
	if rt, _ := (tcpHost{h.s}).Route(farAddr); rt.MTU != 552 {
		t.Fatalf("TCP's route MTU %d, want 552", rt.MTU)
	}
}

// The cache is bounded: the entry closest to expiry makes room.
func TestPMTUCacheBounded(t *testing.T) {
	h := pmtuHarness(t, Options{PMTUCacheSize: 8})
	for i := 0; i < 20; i++ {
		dst := netip.AddrFrom4([4]byte{192, 0, 2, byte(100 + i)})
		if err := h.s.WritePacket(&OutPacket{Dst: dst, Proto: wire.ProtoUDP, DF: true, NoCsum: true, Parts: [3][]byte{udpFrom(farPort, 1380)}}); err != nil {
			t.Fatal(err)
		}
		out := h.ep.take()
		h.ep.inject(fragNeeded(parseOut(t, out[0]), 1000))
		h.clk.Advance(time.Second)
	}
	if n := len(h.s.pmtu.m); n != 8 {
		t.Fatalf("cache holds %d entries, want 8", n)
	}
	if ev := h.s.Stats().IP.PMTUEvictions.Load(); ev != 12 {
		t.Fatalf("evictions %d, want 12", ev)
	}
	// The newest survive.
	if m := h.s.PathMTU(netip.AddrFrom4([4]byte{192, 0, 2, 119})); m != 1000 {
		t.Fatalf("newest entry: %d", m)
	}
	if m := h.s.PathMTU(netip.AddrFrom4([4]byte{192, 0, 2, 100})); m != 1500 {
		t.Fatalf("oldest entry kept: %d", m)
	}
}

// Like Linux (tcp_v4_err, ipv4_sk_update_pmtu), the cache moves only for
// an error a socket takes: a frag-needed quoting a TCP sequence number
// outside the data in flight, or a datagram from a port no socket holds,
// teaches nothing; the same error quoting the segment in flight does.
func TestPMTUOnlyFromErrorsASocketTakes(t *testing.T) {
	h := pmtuHarness(t, Options{})
	st := &h.s.Stats().IP
	c := h.s.TCP.NewEndpoint()
	defer c.Close()
	if err := c.Connect(netip.AddrPortFrom(farAddr, 80)); err != nil && !errors.Is(err, syscall.EINPROGRESS) {
		t.Fatal(err)
	}
	out := h.ep.take()
	if len(out) != 1 {
		t.Fatalf("connect sent %d frames", len(out))
	}
	syn := parseOut(t, out[0])
	iss := wire.TCP(syn.Payload()).Seq()
	quote := func(seq uint32) []byte {
		q := append([]byte(nil), syn...)
		binary.BigEndian.PutUint32(q[syn.HeaderLen()+4:], seq)
		return q
	}
	for _, seq := range []uint32{iss + 2, iss - 1, iss + 1<<20, iss + 1<<31} {
		h.ep.inject(fragNeeded(quote(seq), 1000))
		if m := h.s.PathMTU(farAddr); m != 1500 {
			t.Fatalf("frag-needed quoting sequence %d (ISS %d, out of flight) set the path MTU to %d", seq, iss, m)
		}
	}
	// A datagram from a UDP port without a socket: nobody's error.
	h.ep.inject(fragNeeded(parseOut(t, ipFrameOut(t, h, farPort+1)), 1000))
	if m := h.s.PathMTU(farAddr); m != 1500 {
		t.Fatalf("frag-needed about a datagram from a port without a socket set the path MTU to %d", m)
	}
	if n := st.PMTUUpdates.Load(); n != 0 {
		t.Fatalf("PMTUUpdates %d after rejected errors", n)
	}
	if n := h.s.Stats().ICMP.InUnmatched.Load(); n != 5 {
		t.Fatalf("InUnmatched %d, want 5", n)
	}
	h.ep.inject(fragNeeded(quote(iss), 1000))
	if m := h.s.PathMTU(farAddr); m != 1000 {
		t.Fatalf("frag-needed quoting the SYN in flight: path MTU %d, want 1000", m)
	}
	if n := st.PMTUUpdates.Load(); n != 1 {
		t.Fatalf("PMTUUpdates %d, want 1", n)
	}
}

// ipFrameOut sends a DF datagram of 1400 bytes from sport to farAddr
// and returns the frame.
func ipFrameOut(t *testing.T, h *harness, sport uint16) []byte {
	t.Helper()
	if err := h.s.WritePacket(&OutPacket{Dst: farAddr, Proto: wire.ProtoUDP, DF: true, NoCsum: true, Parts: [3][]byte{udpFrom(sport, 1380)}}); err != nil {
		t.Fatal(err)
	}
	out := h.ep.take()
	if len(out) != 1 {
		t.Fatalf("%d frames", len(out))
	}
	return out[0]
}

// IP_PMTUDISC_WANT, the default for datagram sockets: what fits the path
// leaves with DF, as Linux's __ip_make_skb sets it; what does not is
// fragmented without DF; after a fragmentation-needed error the path's
// MTU is what must be fitted; on a locked path, and under
// IP_PMTUDISC_DONT, nothing carries DF.
func TestPMTUDiscWantSetsDFWhenItFits(t *testing.T) {
	h := pmtuHarness(t, Options{})
	e := h.s.NewDgram(KindUDP, 0)
	defer e.Close()
	to := netip.AddrPortFrom(farAddr, 9)
	send := func(n int) []wire.IPv4 {
		t.Helper()
		if _, err := e.SendTo(make([]byte, n), to, nil); err != nil {
			t.Fatalf("send of %d bytes: %v", n, err)
		}
		var out []wire.IPv4
		for _, f := range h.ep.take() {
			out = append(out, parseOut(t, f))
		}
		return out
	}
	check := func(what string, out []wire.IPv4, frames int, df bool) {
		t.Helper()
		if len(out) != frames {
			t.Fatalf("%s: %d frames, want %d", what, len(out), frames)
		}
		for _, p := range out {
			if p.DF() != df {
				t.Fatalf("%s: DF %v, want %v", what, p.DF(), df)
			}
		}
	}
	if e.PMTUDisc(false) != PMTUDiscWant {
		t.Fatalf("default IP_MTU_DISCOVER %d, want WANT", e.PMTUDisc(false))
	}
	check("small", send(100), 1, true)
	check("exactly the MTU", send(1500-28), 1, true)
	check("one byte over", send(1500-28+1), 2, false)
	// A router's report lowers the path: what no longer fits is
	// fragmented to it, without DF.
	h.ep.inject(fragNeeded(send(1400)[0], 1000))
	check("over the learnt path MTU", send(1400), 2, false)
	check("within it", send(1000-28), 1, true)
	// A report below the minimum locks the path: no DF at all.
	h.ep.inject(fragNeeded(send(900)[0], 300))
	check("locked path", send(100), 1, false)
	if err := e.SetPMTUDisc(false, PMTUDiscDont); err != nil {
		t.Fatal(err)
	}
	to = netip.AddrPortFrom(peerAddr, 9)
	check("IP_PMTUDISC_DONT", send(100), 1, false)
	if err := e.SetPMTUDisc(false, PMTUDiscWant); err != nil {
		t.Fatal(err)
	}
	check("WANT again", send(100), 1, true)
}
