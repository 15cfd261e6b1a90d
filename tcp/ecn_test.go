package tcp

import (
	"errors"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/wire"
)

const (
	fE = wire.TCPFlagECE
	fC = wire.TCPFlagCWR
)

// injectTOS is inject with the IP header's TOS byte (its ECN field).
func (s *script) injectTOS(x seg, tos uint8) {
	s.t.Helper()
	h := wire.TCPHeader{SrcPort: s.remote.Port(), DstPort: s.local.Port(), Seq: x.seq, Ack: x.ack, Flags: x.flags, Window: x.win, Options: x.opts}
	b := make([]byte, h.Len()+len(x.data))
	n := h.Put(b)
	copy(b[n:], x.data)
	s.p.HandleSegment(s.remote.Addr(), s.local.Addr(), tos, b)
}

// ecnOpen completes a passive open whose SYN carries flags synFlags
// (with SYN) and returns the SYN-ACK and the accepted endpoint.
func ecnOpen(t *testing.T, cfg Config, synFlags uint8) (*script, *Endpoint, captured, uint32) {
	s := newScript(t, cfg)
	l := s.p.NewEndpoint()
	if err := l.Bind(s.local); err != nil {
		t.Fatal(err)
	}
	l.Listen(8)
	s.inject(seg{flags: fS | synFlags, seq: 1000, win: 65535, opts: wsOpts})
	sa := s.expectOne("SYN-ACK")
	iss := sa.h.Seq
	s.inject(seg{flags: fA, seq: 1001, ack: iss + 1, win: 65535})
	c, _, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	return s, c, sa, iss
}

// TestECNNegotiationPassive: a SYN with ECE+CWR gets a SYN-ACK with ECE
// only, by default (tcp_ecn=2 semantics); then new data leaves ECT(0)
// while pure ACKs, retransmissions and window probes do not. With
// ECNOff, or a SYN without both flags, nothing is ECN-capable.
func TestECNNegotiationPassive(t *testing.T) {
	s, c, sa, iss := ecnOpen(t, Config{}, fE|fC)
	if sa.h.Flags != fSA|fE || sa.tos&3 != 0 {
		t.Fatalf("SYN-ACK %v tos %#x, want SYN,ACK,ECE and not ECN-capable", sa, sa.tos)
	}
	c.Write(make([]byte, 2920))
	o := s.out()
	if len(o) != 2 {
		t.Fatalf("want 2 segments, got %v", o)
	}
	for _, x := range o {
		if x.tos&3 != ecnECT0 || x.h.Flags&(fE|fC) != 0 {
			t.Fatalf("data %v tos %#x, want ECT(0) and no ECE/CWR", x, x.tos)
		}
	}
	// A pure ACK (for peer data) is not ECN-capable.
	s.inject(seg{flags: fPA, seq: 1001, ack: iss + 1, win: 65535, data: []byte("x")})
	s.clk.Advance(50 * time.Millisecond)
	for _, x := range s.out() {
		if len(x.payload) == 0 && x.tos&3 != 0 {
			t.Fatalf("pure ACK %v tos %#x", x, x.tos)
		}
	}
	// The retransmission after an RTO is not ECN-capable.
	r, _ := s.waitOne(5 * time.Second)
	if len(r.payload) == 0 || r.h.Seq != iss+1 || r.tos&3 != 0 {
		t.Fatalf("retransmission %v tos %#x, want not ECN-capable", r, r.tos)
	}

	for _, tc := range []struct {
		cfg   Config
		flags uint8
	}{{Config{ECN: ECNOff}, fE | fC}, {Config{}, fE}, {Config{}, 0}} {
		s, c, sa, _ := ecnOpen(t, tc.cfg, tc.flags)
		if sa.h.Flags != fSA {
			t.Fatalf("ECN %v, SYN flags %#x: SYN-ACK %v, want no ECE", tc.cfg.ECN, tc.flags, sa)
		}
		c.Write(make([]byte, 100))
		if x := s.expectOne("data"); x.tos&3 != 0 {
			t.Fatalf("data tos %#x without ECN", x.tos)
		}
	}
}

// TestECNNegotiationActive: by default a SYN does not ask for ECN; with
// ECNOn it carries ECE+CWR, and a SYN-ACK with ECE (without CWR) makes
// the connection ECN-capable; one with both flags does not.
func TestECNNegotiationActive(t *testing.T) {
	for _, tc := range []struct {
		mode    ECNMode
		synAck  uint8
		wantSyn uint8
		wantECT bool
	}{{ECNPassive, fE, fS, false}, {ECNOn, fE, fS | fE | fC, true}, {ECNOn, fE | fC, fS | fE | fC, false}, {ECNOn, 0, fS | fE | fC, false}} {
		s := newScript(t, Config{ECN: tc.mode})
		c := s.p.NewEndpoint()
		if err := c.Connect(s.remote); !errors.Is(err, syscall.EINPROGRESS) {
			t.Fatal(err)
		}
		syn := s.expectOne("SYN")
		if syn.h.Flags != tc.wantSyn {
			t.Fatalf("mode %d: SYN %v, want flags %s+ECE/CWR %#x", tc.mode, syn, flagStr(tc.wantSyn), tc.wantSyn)
		}
		h := wire.TCPHeader{SrcPort: syn.remote.Port(), DstPort: syn.local.Port(), Seq: 5000, Ack: syn.h.Seq + 1, Flags: fSA | tc.synAck, Window: 65535, Options: wsOpts}
		b := make([]byte, h.Len())
		h.Put(b)
		s.p.HandleSegment(syn.remote.Addr(), syn.local.Addr(), 0, b)
		s.out()
		c.Write(make([]byte, 100))
		x := s.expectOne("data")
		if got := x.tos&3 == ecnECT0; got != tc.wantECT {
			t.Fatalf("mode %d, SYN-ACK ECN flags %#x: data ECN-capable %v, want %v", tc.mode, tc.synAck, got, tc.wantECT)
		}
	}
}

// TestECNReceiverEcho: a CE-marked segment is acknowledged at once with
// ECE, and every ACK carries ECE until a segment with CWR arrives.
func TestECNReceiverEcho(t *testing.T) {
	s, c, _, iss := ecnOpen(t, Config{}, fE|fC)
	spendQuickAcks(c)
	const mss = 1460
	d := make([]byte, mss)
	seq := uint32(1001)
	send := func(flags uint8, tos uint8) {
		s.injectTOS(seg{flags: flags, seq: seq, ack: iss + 1, win: 65535, data: d}, tos)
		seq += mss
	}
	send(fPA, ecnECT0)
	s.expectNone("one unmarked segment: delayed ACK")
	send(fPA, ecnCE)
	a := s.expectOne("ACK of CE")
	check(t, "ACK of CE", a, fA|fE, iss+1, seq, 0)
	if got := s.p.Stats().InCEPkts; got != 1 {
		t.Fatalf("InCEPkts %d", got)
	}
	// The CE mark entered quickack mode for two ACKs (Linux's
	// tcp_ecn_check_ce): the next segment is acknowledged at once too.
	send(fPA, ecnECT0)
	check(t, "quickack after CE", s.expectOne("ACK at once"), fA|fE, iss+1, seq, 0)
	for i := 0; i < 2; i++ {
		send(fPA, ecnECT0)
		send(fPA, ecnECT0)
		if a := s.expectOne("ACK"); a.h.Flags&fE == 0 {
			t.Fatalf("ACK %v without ECE before CWR", a)
		}
	}
	send(fPA|fC, ecnECT0)
	send(fPA, ecnECT0)
	if a := s.expectOne("ACK after CWR"); a.h.Flags&fE != 0 {
		t.Fatalf("ACK %v still has ECE after CWR", a)
	}
}

// TestECNSenderResponse: ECE reduces cwnd as a loss would (CUBIC: to
// 0.7), once per window of data; the next new data segment carries CWR;
// an ECE after that window reduces again. Nothing is retransmitted.
func TestECNSenderResponse(t *testing.T) {
	s, c, _, iss := ecnOpen(t, Config{SendBuf: 1 << 20}, fE|fC)
	c.Write(make([]byte, 200<<10))
	if o := s.out(); len(o) != 10 {
		t.Fatalf("initial window %d", len(o))
	}
	mss := uint32(1460)
	s.injectTOS(seg{flags: fA | fE, seq: 1001, ack: iss + 1 + 4*mss, win: 65535}, 0)
	// The ACK first grows cwnd by slow start to 14, then ECE takes it
	// to 0.7 of that.
	if got := c.Info().SndCwnd; got != 9 {
		t.Fatalf("cwnd after ECE %d, want 9 (0.7 of 14)", got)
	}
	o := s.out()
	if len(o) == 0 || o[0].h.Flags&fC == 0 {
		t.Fatalf("first new data after ECE %v: want CWR", o)
	}
	for _, x := range o[1:] {
		if x.h.Flags&fC != 0 {
			t.Fatalf("CWR on a later segment too: %v", x)
		}
	}
	// More ECE before the receiver saw CWR, even on the ACK of all the
	// data sent before the CWR segment: no further reduction.
	s.injectTOS(seg{flags: fA | fE, seq: 1001, ack: iss + 1 + 6*mss, win: 65535}, 0)
	if got := c.Info().SndCwnd; got < 9 {
		t.Fatalf("cwnd after a second ECE in the window %d, want no reduction below 9", got)
	}
	s.injectTOS(seg{flags: fA | fE, seq: 1001, ack: o[0].h.Seq, win: 65535}, 0)
	if got := s.p.Stats().ECNCwndReductions; got != 1 {
		t.Fatalf("ECE on the ACK up to the CWR segment reduced again (%d reductions)", got)
	}
	o = append(o, s.out()...)
	cw := c.Info().SndCwnd
	o = append(o, s.out()...)
	// The CWR segment is acknowledged; a new ECE reduces again.
	last := o[len(o)-1]
	s.injectTOS(seg{flags: fA | fE, seq: 1001, ack: last.h.Seq + uint32(len(last.payload)), win: 65535}, 0)
	if got := c.Info().SndCwnd; got >= cw {
		t.Fatalf("cwnd after ECE in a new window %d, want below %d", got, cw)
	}
	if st := s.p.Stats(); st.ECNCwndReductions != 2 || st.RetransSegs != 0 {
		t.Fatalf("reductions %d, retransmissions %d; want 2 and 0", st.ECNCwndReductions, st.RetransSegs)
	}
}

// TestECNPathNoLoss: over a 20 Mbit/s bottleneck that marks CE above 20
// queued packets (and drops above 100), a CUBIC flow with ECN keeps the
// queue short without a single drop; without ECN it fills the queue and
// loses packets.
func TestECNPathNoLoss(t *testing.T) {
	run := func(mode ECNMode) (drops, marks, retrans int, frac float64) {
		cfg := Config{ECN: mode, RecvBuf: 4 << 20}
		n := newPath(5, cfg, cfg, 20e6, 100, 20*time.Millisecond)
		n.markCE = 20
		c, s := n.connect(t, "cubic")
		const d = 10 * time.Second
		got := n.bulk(t, c, s, d, nil)
		frac = float64(got) * 8 / d.Seconds() / 20e6
		t.Logf("ECN mode %d: %d dropped, %d CE marks, %d retransmitted, goodput %.1f%% of the bottleneck, %d reductions on ECE",
			mode, n.tailDrop, n.ceMarks, c.Info().TotalRetrans, 100*frac, n.a.Stats().ECNCwndReductions)
		return n.tailDrop, n.ceMarks, int(c.Info().TotalRetrans), frac
	}
	drops, marks, retrans, frac := run(ECNOn)
	if drops != 0 || retrans != 0 || marks == 0 || frac < 0.85 {
		t.Fatalf("with ECN: %d drops, %d retransmissions, %d marks, goodput %.2f", drops, retrans, marks, frac)
	}
	if drops, marks, _, _ := run(ECNPassive); drops == 0 || marks != 0 {
		t.Fatalf("without ECN: %d drops, %d marks; the path does not tell", drops, marks)
	}
}

// TestECNSynCookie: a SYN cookie keeps the ECN choice (in the TSval
// bits, like Linux): the cookie SYN-ACK answers ECE, and the connection
// the cookie ACK creates sends ECT(0) data.
func TestECNSynCookie(t *testing.T) {
	s := newScript(t, Config{})
	l := s.p.NewEndpoint()
	l.Bind(s.local)
	l.Listen(1)
	s.inject(seg{flags: fS, seq: 100, win: 65535, opts: peerSynOpts(7)})
	s.expectOne("SYN-ACK")
	s.remote = netip.AddrPortFrom(remoteIP, 40001)
	s.inject(seg{flags: fS | fE | fC, seq: 5000, win: 65535, opts: peerSynOpts(9)})
	ck := s.expectOne("cookie SYN-ACK")
	if ck.h.Flags != fSA|fE || s.p.Stats().SynCookiesSent != 1 {
		t.Fatalf("cookie SYN-ACK %v (cookies sent %d)", ck, s.p.Stats().SynCookiesSent)
	}
	s.inject(seg{flags: fA, seq: 5001, ack: ck.h.Seq + 1, win: 100, opts: wire.TCPOptions{HasTS: true, TSVal: 10, TSEcr: ck.h.Options.TSVal}})
	c, _, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c.Write(make([]byte, 100))
	if x := s.expectOne("data"); x.tos&3 != ecnECT0 {
		t.Fatalf("data from a cookie connection tos %#x, want ECT(0)", x.tos)
	}
}

// TestECNSynRetransmitFallback: with ECNOn, a retransmitted SYN no
// longer asks for ECN (the first may have been dropped for asking), and
// a SYN-ACK with ECE to it does not turn ECN on.
func TestECNSynRetransmitFallback(t *testing.T) {
	s := newScript(t, Config{ECN: ECNOn})
	c := s.p.NewEndpoint()
	c.Connect(s.remote)
	if syn := s.expectOne("SYN"); syn.h.Flags != fS|fE|fC {
		t.Fatalf("first SYN %v", syn)
	}
	syn, _ := s.waitOne(5 * time.Second)
	if syn.h.Flags != fS {
		t.Fatalf("retransmitted SYN %v, want no ECE/CWR", syn)
	}
	h := wire.TCPHeader{SrcPort: syn.remote.Port(), DstPort: syn.local.Port(), Seq: 5000, Ack: syn.h.Seq + 1, Flags: fSA | fE, Window: 65535, Options: wsOpts}
	b := make([]byte, h.Len())
	h.Put(b)
	s.p.HandleSegment(syn.remote.Addr(), syn.local.Addr(), 0, b)
	s.out()
	c.Write(make([]byte, 100))
	if x := s.expectOne("data"); x.tos&3 != 0 {
		t.Fatalf("ECN on after a fallback SYN: tos %#x", x.tos)
	}
}
