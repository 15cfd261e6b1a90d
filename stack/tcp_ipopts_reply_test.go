package stack

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/sockstack/sockstack/tcp"
	"github.com/sockstack/sockstack/wire"
)

// Replies TCP sends without a connection echo the incoming segment's
// IPv4 options (tcp/ipopts_reply.go, tcp_ipopts_reply.go).

var (
	// Record Route with three slots, the peer's address in the first
	// (as its send filled it). Received, the host fills the second; the
	// echo keeps the third for the reply, filled with the reply's
	// source: what Linux's ip_options_echo and ip_options_build do.
	rrIn   = []byte{7, 15, 8, 10, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0}
	rrEcho = []byte{7, 15, 16, 10, 0, 0, 2, 10, 0, 0, 1, 10, 0, 0, 1, 0}
	// Record Route of 9 bytes with one whole slot: filled on receipt,
	// its pointer (8) still in the option with no room for another
	// slot, so the echo fails and Linux sends no reply at all.
	rrOdd = []byte{7, 9, 4, 0, 0, 0, 0, 0, 0}
	// Timestamp (timestamps only) with two slots.
	tsIn = []byte{68, 12, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0}
)

// tsEcho is what a reply to tsIn carries at the harness's time: the
// receipt's timestamp and the reply's, the same on the manual clock.
func tsEcho(h *harness) []byte {
	b := []byte{68, 12, 13, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	putMsTime(b[4:], h.clk.Now())
	putMsTime(b[8:], h.clk.Now())
	return b
}

// tcpOpt builds a frame from the peer to hostAddr with IP options ipo.
func tcpOpt(th wire.TCPHeader, payload, ipo []byte) []byte {
	seg := make([]byte, th.Len()+len(payload))
	th.Put(seg)
	copy(seg[th.Len():], payload)
	wire.TCP(seg).FillChecksum(wire.PseudoHeaderSum(peerAddr.As4(), hostAddr.As4(), wire.ProtoTCP, len(seg)))
	return ipFrame(wire.IPv4Header{Protocol: wire.ProtoTCP, DF: true, Options: ipo}, seg)
}

// outSeg is a captured TCP segment with its IP options.
type outSeg struct {
	ipo []byte
	tcp wire.TCP
}

func (h *harness) tcpOut(t *testing.T) []outSeg {
	t.Helper()
	var out []outSeg
	for _, f := range h.ep.take() {
		ip := parseOut(t, f)
		if ip.Protocol() != wire.ProtoTCP {
			continue
		}
		out = append(out, outSeg{ipo: append([]byte(nil), ip.Options()...), tcp: wire.TCP(ip.Payload())})
	}
	return out
}

func (h *harness) oneTCP(t *testing.T, what string, flags uint8) outSeg {
	t.Helper()
	out := h.tcpOut(t)
	if len(out) != 1 || out[0].tcp.Flags() != flags {
		t.Fatalf("%s: %d segments out (%v), want one with flags %#x", what, len(out), out, flags)
	}
	return out[0]
}

func wantIPOpts(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: IP options %x, want %x", what, got, want)
	}
}

// The RST for a port nobody listens on echoes the segment's options,
// for a SYN and for an ACK-bearing segment, as Linux's
// tcp_v4_send_reset; without options it has none; an echo that does not
// fit sends no RST, as Linux's ip_send_unicast_reply.
func TestTCPResetEchoesIPOptions(t *testing.T) {
	h := newHarness(t, Options{})
	syn := wire.TCPHeader{SrcPort: 40000, DstPort: 81, Seq: 1000, Flags: wire.TCPFlagSYN, Window: 65535}
	h.ep.inject(tcpOpt(syn, nil, rrIn))
	wantIPOpts(t, "RST to a SYN", h.oneTCP(t, "RST to a SYN", wire.TCPFlagRST|wire.TCPFlagACK).ipo, rrEcho)

	ack := wire.TCPHeader{SrcPort: 40001, DstPort: 81, Seq: 1000, Ack: 5000, Flags: wire.TCPFlagACK, Window: 65535}
	h.ep.inject(tcpOpt(ack, []byte("data"), tsIn))
	rst := h.oneTCP(t, "RST to data", wire.TCPFlagRST)
	wantIPOpts(t, "RST to data", rst.ipo, tsEcho(h))
	if rst.tcp.Seq() != 5000 {
		t.Fatalf("RST seq %d", rst.tcp.Seq())
	}

	h.ep.inject(tcpOpt(syn, nil, nil))
	wantIPOpts(t, "RST without options", h.oneTCP(t, "RST", wire.TCPFlagRST|wire.TCPFlagACK).ipo, nil)

	h.ep.inject(tcpOpt(syn, nil, rrOdd))
	if out := h.tcpOut(t); len(out) != 0 {
		t.Fatalf("answered a segment whose echo does not fit: %v", out)
	}
}

// listen makes a listener on hostAddr:80 with backlog n.
func (h *harness) listen(t *testing.T, n int) *tcp.Endpoint {
	t.Helper()
	l := h.s.TCP.NewEndpoint()
	if err := l.Bind(netip.AddrPortFrom(hostAddr, 80)); err != nil {
		t.Fatal(err)
	}
	if err := l.Listen(n); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l
}

// TIME_WAIT's ACKs echo the segment they answer (Linux's
// tcp_v4_timewait_ack), not the connection's options: a retransmitted
// FIN with a Timestamp option, a SYN with Record Route, a FIN without
// options.
func TestTCPTimeWaitAckEchoesIPOptions(t *testing.T) {
	h := newHarness(t, Options{})
	l := h.listen(t, 8)
	// The connection's own options: the SYN's Record Route echoed.
	h.ep.inject(tcpOpt(wire.TCPHeader{SrcPort: 40000, DstPort: 80, Seq: 1000, Flags: wire.TCPFlagSYN, Window: 65535}, nil, rrIn))
	sa := h.oneTCP(t, "SYN-ACK", wire.TCPFlagSYN|wire.TCPFlagACK)
	wantIPOpts(t, "SYN-ACK", sa.ipo, rrEcho)
	iss := sa.tcp.Seq()
	h.ep.inject(tcpOpt(wire.TCPHeader{SrcPort: 40000, DstPort: 80, Seq: 1001, Ack: iss + 1, Flags: wire.TCPFlagACK, Window: 65535}, nil, nil))
	c, _, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	h.oneTCP(t, "FIN", wire.TCPFlagFIN|wire.TCPFlagACK)
	fin := wire.TCPHeader{SrcPort: 40000, DstPort: 80, Seq: 1001, Ack: iss + 2, Flags: wire.TCPFlagFIN | wire.TCPFlagACK, Window: 65535}
	h.ep.inject(tcpOpt(fin, nil, nil))
	h.oneTCP(t, "ACK of the FIN", wire.TCPFlagACK)
	if h.s.TCP.Stats().TimeWaitRecords == 0 {
		t.Fatal("no TIME_WAIT record")
	}

	h.ep.inject(tcpOpt(fin, nil, tsIn))
	a := h.oneTCP(t, "ACK of a retransmitted FIN", wire.TCPFlagACK)
	wantIPOpts(t, "TIME_WAIT ACK", a.ipo, tsEcho(h))
	if a.tcp.Seq() != iss+2 || a.tcp.Ack() != 1002 {
		t.Fatalf("TIME_WAIT ACK %d/%d", a.tcp.Seq(), a.tcp.Ack())
	}
	h.ep.inject(tcpOpt(fin, nil, nil))
	wantIPOpts(t, "TIME_WAIT ACK without options", h.oneTCP(t, "ACK", wire.TCPFlagACK).ipo, nil)
	h.clk.Advance(time.Second) // past the rate limit of the out-of-window ACK
	old := wire.TCPHeader{SrcPort: 40000, DstPort: 80, Seq: 900, Flags: wire.TCPFlagSYN, Window: 65535}
	h.ep.inject(tcpOpt(old, nil, rrIn))
	wantIPOpts(t, "TIME_WAIT ACK to an old SYN", h.oneTCP(t, "ACK", wire.TCPFlagACK).ipo, rrEcho)
}

// A SYN_RCVD child answers an out-of-window segment with an ACK carrying
// that segment's options echoed, not the SYN's (Linux's request socket:
// tcp_v4_reqsk_send_ack), while its SYN-ACK retransmissions keep the
// SYN's (inet_rtx_syn_ack with ireq_opt).
func TestTCPSynRcvdAckEchoesIPOptions(t *testing.T) {
	h := newHarness(t, Options{})
	h.listen(t, 8)
	h.ep.inject(tcpOpt(wire.TCPHeader{SrcPort: 40000, DstPort: 80, Seq: 1000, Flags: wire.TCPFlagSYN, Window: 65535}, nil, rrIn))
	sa := h.oneTCP(t, "SYN-ACK", wire.TCPFlagSYN|wire.TCPFlagACK)
	wantIPOpts(t, "SYN-ACK", sa.ipo, rrEcho)
	iss := sa.tcp.Seq()
	oow := wire.TCPHeader{SrcPort: 40000, DstPort: 80, Seq: 1000 + 1<<20, Ack: iss + 1, Flags: wire.TCPFlagACK, Window: 65535}
	h.ep.inject(tcpOpt(oow, []byte("x"), nil))
	a := h.oneTCP(t, "ACK to an out-of-window segment", wire.TCPFlagACK)
	wantIPOpts(t, "ACK to a segment without options", a.ipo, nil)
	if a.tcp.Seq() != iss+1 || a.tcp.Ack() != 1001 {
		t.Fatalf("ACK %d/%d", a.tcp.Seq(), a.tcp.Ack())
	}
	h.clk.Advance(600 * time.Millisecond) // past the rate limit, before the SYN-ACK's RTO
	h.ep.inject(tcpOpt(oow, []byte("x"), tsIn))
	wantIPOpts(t, "ACK to a segment with a Timestamp", h.oneTCP(t, "ACK", wire.TCPFlagACK).ipo, tsEcho(h))
	// The SYN again: the SYN-ACK keeps the first SYN's options.
	h.ep.inject(tcpOpt(wire.TCPHeader{SrcPort: 40000, DstPort: 80, Seq: 1000, Flags: wire.TCPFlagSYN, Window: 65535}, nil, nil))
	wantIPOpts(t, "SYN-ACK again", h.oneTCP(t, "SYN-ACK", wire.TCPFlagSYN|wire.TCPFlagACK).ipo, rrEcho)
}

// A SYN cookie's child takes the completing ACK's options echoed (Linux's
// cookie_v4_check), not the SYN's: getsockopt reads them and its
// segments carry them.
func TestTCPCookieChildEchoesAckIPOptions(t *testing.T) {
	h := newHarness(t, Options{})
	l := h.listen(t, 1)
	// One request fills the SYN queue of backlog 1: the next SYN gets a
	// cookie.
	h.ep.inject(tcpOpt(wire.TCPHeader{SrcPort: 39999, DstPort: 80, Seq: 500, Flags: wire.TCPFlagSYN, Window: 65535}, nil, nil))
	h.oneTCP(t, "SYN-ACK", wire.TCPFlagSYN|wire.TCPFlagACK)
	h.ep.inject(tcpOpt(wire.TCPHeader{SrcPort: 40000, DstPort: 80, Seq: 1000, Flags: wire.TCPFlagSYN, Window: 65535,
		Options: wire.TCPOptions{HasMSS: true, MSS: 1460}}, nil, tsIn))
	sa := h.oneTCP(t, "cookie SYN-ACK", wire.TCPFlagSYN|wire.TCPFlagACK)
	wantIPOpts(t, "cookie SYN-ACK", sa.ipo, tsEcho(h))
	if h.s.TCP.Stats().SynCookiesSent != 1 {
		t.Fatal("no cookie sent")
	}
	h.ep.inject(tcpOpt(wire.TCPHeader{SrcPort: 40000, DstPort: 80, Seq: 1001, Ack: sa.tcp.Seq() + 1, Flags: wire.TCPFlagACK, Window: 65535}, nil, rrIn))
	if h.s.TCP.Stats().SynCookiesRecv != 1 {
		t.Fatal("the cookie did not complete")
	}
	if out := h.tcpOut(t); len(out) != 0 {
		t.Fatalf("the completing ACK was answered: %v", out)
	}
	c, _, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	o, ok := c.IPOptions().(*SendIPOpts)
	// getsockopt's value: the echo with its reply slot empty.
	want := []byte{7, 15, 12, 10, 0, 0, 2, 10, 0, 0, 1, 0, 0, 0, 0, 0}
	if !ok || !bytes.Equal(o.Value(), want) {
		t.Fatalf("child's IP_OPTIONS %v, want %x", c.IPOptions(), want)
	}
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	d := h.oneTCP(t, "child data", wire.TCPFlagACK|wire.TCPFlagPSH)
	wantIPOpts(t, "child data", d.ipo, rrEcho)
}

// A transparent listener's child echoes the SYN's options as any child
// does (Record Route naming the original destination), and the RST for a diverted segment no connection takes echoes
// its options.
func TestTCPTransparentChildEchoesIPOptions(t *testing.T) {
	h, _, l := tproxyHarnessL(t)
	syn := wire.TCPHeader{SrcPort: 40000, DstPort: 443, Seq: 1000, Flags: wire.TCPFlagSYN, Window: 65535}
	b := make([]byte, syn.Len())
	syn.Put(b)
	wire.TCP(b).FillChecksum(wire.PseudoHeaderSum(peerAddr.As4(), foreign.As4(), wire.ProtoTCP, len(b)))
	h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoTCP, Dst: foreign, Options: rrIn}, b))
	sa := h.oneTCP(t, "SYN-ACK", wire.TCPFlagSYN|wire.TCPFlagACK)
	// The original destination in both of this host's slots: the one
	// filled on receipt (Linux's fib_compute_spec_dst on the TPROXY
	// route, a local one) and the reply's source.
	f := foreign.As4()
	want := append([]byte{7, 15, 16, 10, 0, 0, 2}, f[0], f[1], f[2], f[3], f[0], f[1], f[2], f[3], 0)
	wantIPOpts(t, "transparent SYN-ACK", sa.ipo, want)
	ack := wire.TCPHeader{SrcPort: 40000, DstPort: 443, Seq: 1001, Ack: sa.tcp.Seq() + 1, Flags: wire.TCPFlagACK, Window: 65535}
	b = make([]byte, ack.Len())
	ack.Put(b)
	wire.TCP(b).FillChecksum(wire.PseudoHeaderSum(peerAddr.As4(), foreign.As4(), wire.ProtoTCP, len(b)))
	h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoTCP, Dst: foreign}, b))
	c, _, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.IPOptions() == nil {
		t.Fatal("transparent child without the SYN's options")
	}
	// A stray ACK to another diverted port: reset, its options echoed.
	stray := wire.TCPHeader{SrcPort: 40001, DstPort: 444, Seq: 7, Ack: 9, Flags: wire.TCPFlagACK, Window: 65535}
	b = make([]byte, stray.Len())
	stray.Put(b)
	wire.TCP(b).FillChecksum(wire.PseudoHeaderSum(peerAddr.As4(), foreign.As4(), wire.ProtoTCP, len(b)))
	h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoTCP, Dst: foreign, Options: tsIn}, b))
	rst := h.oneTCP(t, "RST", wire.TCPFlagRST)
	wantIPOpts(t, "transparent RST", rst.ipo, tsEcho(h))
	if binary.BigEndian.Uint32(rst.tcp[4:]) != 9 {
		t.Fatalf("RST seq %d", rst.tcp.Seq())
	}
}

// A held SYN (SetHoldSYN) rejected with a reset: the RST echoes the
// SYN's options, as the reset for a SYN nobody takes; completed, its
// SYN-ACK carries them as any child's.
func TestTCPHeldSynEchoesIPOptions(t *testing.T) {
	h := newHarness(t, Options{})
	l := h.listen(t, 8)
	if err := l.SetHoldSYN(true, 0); err != nil {
		t.Fatal(err)
	}
	for i, complete := range []bool{false, true} {
		syn := wire.TCPHeader{SrcPort: uint16(40000 + i), DstPort: 80, Seq: 1000, Flags: wire.TCPFlagSYN, Window: 65535}
		h.ep.inject(tcpOpt(syn, nil, rrIn))
		if out := h.tcpOut(t); len(out) != 0 {
			t.Fatalf("a held SYN was answered: %v", out)
		}
		r, err := l.NextSynRequest()
		if err != nil {
			t.Fatal(err)
		}
		if complete {
			c, err := r.Complete()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			wantIPOpts(t, "held SYN's SYN-ACK", h.oneTCP(t, "SYN-ACK", wire.TCPFlagSYN|wire.TCPFlagACK).ipo, rrEcho)
			continue
		}
		if err := r.Reject(tcp.RejectReset); err != nil {
			t.Fatal(err)
		}
		wantIPOpts(t, "held SYN's RST", h.oneTCP(t, "RST", wire.TCPFlagRST|wire.TCPFlagACK).ipo, rrEcho)
	}
}

// Answering a segment without IP options makes nothing: the echo is
// only built for segments that have some.
func TestTCPResetNoOptionsNoAlloc(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under -race")
	}
	h := newHarness(t, Options{})
	h.ep.discard = true
	f := tcpOpt(wire.TCPHeader{SrcPort: 40000, DstPort: 81, Seq: 1000, Ack: 5, Flags: wire.TCPFlagACK, Window: 65535}, []byte("x"), nil)
	fs := [][]byte{f} // the harness's inject makes this slice each time
	h.ep.recv.DeliverFrames(fs)
	if n := testing.AllocsPerRun(200, func() { h.ep.recv.DeliverFrames(fs) }); n != 0 {
		t.Fatalf("%v allocations per RST to a segment without options", n)
	}
	if h.s.TCP.Stats().OutRsts < 200 {
		t.Fatalf("%d RSTs sent", h.s.TCP.Stats().OutRsts)
	}
}
