package tcp

import (
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/wire"
)

func TestPassiveOpenOptions(t *testing.T) {
	s := newScript(t, Config{})
	l := s.p.NewEndpoint()
	if err := l.Bind(s.local); err != nil {
		t.Fatal(err)
	}
	if err := l.Listen(8); err != nil {
		t.Fatal(err)
	}
	if l.State() != StateListen {
		t.Fatal(l.State())
	}
	s.inject(seg{flags: fS, seq: 1000, win: 65535, opts: peerSynOpts(500)})
	sa := s.expectOne("SYN-ACK")
	o := sa.h.Options
	if sa.h.Flags != fSA || sa.h.Ack != 1001 || !o.HasMSS || o.MSS != 1460 || !o.HasWScale || o.WScale != 7 ||
		!o.SACKPermitted || !o.HasTS || o.TSEcr != 500 || sa.h.Window != 65535 {
		t.Fatalf("SYN-ACK %v", sa)
	}
	if _, _, err := l.Accept(); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("accept before handshake: %v", err)
	}
	s.inject(seg{flags: fA, seq: 1001, ack: sa.h.Seq + 1, win: 100, opts: wire.TCPOptions{HasTS: true, TSVal: 501, TSEcr: o.TSVal}})
	s.expectNone("ACK")
	c, _, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	i := c.Info()
	if i.State != StateEstablished || !i.TimestampsOK || !i.SACKOK || i.SndWScale != 7 || i.RcvWScale != 7 || i.SndMSS != 1448 || i.SndWnd != 100<<7 {
		t.Fatalf("info %+v", i)
	}
	if st := s.p.Stats(); st.PassiveOpens != 1 || st.CurrEstab != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestPassiveOpenNoOptions(t *testing.T) {
	s := newScript(t, Config{})
	l := s.p.NewEndpoint()
	l.Bind(s.local)
	l.Listen(8)
	s.inject(seg{flags: fS, seq: 1000, win: 8192})
	sa := s.expectOne("SYN-ACK")
	o := sa.h.Options
	if !o.HasMSS || o.MSS != 1460 || o.HasWScale || o.SACKPermitted || o.HasTS {
		t.Fatalf("SYN-ACK options %+v", o)
	}
	s.inject(seg{flags: fA, seq: 1001, ack: sa.h.Seq + 1, win: 8192})
	c, _, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	// Peer without MSS option: 536 (RFC 9293 3.7.1).
	if i := c.Info(); i.SndMSS != 536 || i.TimestampsOK || i.SACKOK || i.SndWnd != 8192 {
		t.Fatalf("info %+v", i)
	}
	// Data segments carry no options and a window that is not scaled.
	if n, err := c.Write([]byte("hello")); n != 5 || err != nil {
		t.Fatal(n, err)
	}
	d := s.expectOne("data")
	check(t, "data", d, fPA, sa.h.Seq+1, 1001, 5)
	if d.h.Options.HasTS || d.h.Window == 0 {
		t.Fatalf("data %v", d)
	}
}

func TestActiveOpen(t *testing.T) {
	s := newScript(t, Config{})
	e := s.p.NewEndpoint()
	if err := e.Connect(s.remote); !errors.Is(err, syscall.EINPROGRESS) {
		t.Fatalf("connect: %v", err)
	}
	if err := e.Connect(s.remote); !errors.Is(err, syscall.EALREADY) {
		t.Fatalf("second connect: %v", err)
	}
	syn := s.expectOne("SYN")
	o := syn.h.Options
	if syn.h.Flags != fS || !o.HasMSS || o.MSS != 1460 || !o.HasWScale || !o.SACKPermitted || !o.HasTS || o.TSEcr != 0 {
		t.Fatalf("SYN %v", syn)
	}
	if p := syn.local.Port(); p < 49152 {
		t.Fatalf("ephemeral port %d", p)
	}
	if syn.local.Addr() != localIP {
		t.Fatalf("source %v", syn.local)
	}
	s.local = syn.local
	s.clk.Advance(10 * time.Millisecond)
	s.inject(seg{flags: fSA, seq: 5000, ack: syn.h.Seq + 1, win: 65535, opts: wire.TCPOptions{HasMSS: true, MSS: 1000, HasWScale: true, WScale: 2, SACKPermitted: true, HasTS: true, TSVal: 77, TSEcr: o.TSVal}})
	a := s.expectOne("ACK")
	check(t, "ACK", a, fA, syn.h.Seq+1, 5001, 0)
	if a.h.Options.TSEcr != 77 || a.h.Window != uint16(min(128<<10, 65535<<o.WScale)>>o.WScale) {
		t.Fatalf("ACK %v", a)
	}
	i := e.Info()
	if i.State != StateEstablished || i.SndMSS != 988 || i.SndWScale != 2 || i.RTT != 10*time.Millisecond || i.RTO != 210*time.Millisecond {
		t.Fatalf("info %+v", i)
	}
	if err := e.Connect(s.remote); !errors.Is(err, syscall.EISCONN) {
		t.Fatalf("connect when connected: %v", err)
	}
	if st := s.p.Stats(); st.ActiveOpens != 1 || st.CurrEstab != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestConnectRefused(t *testing.T) {
	s := newScript(t, Config{})
	e := s.p.NewEndpoint()
	e.Connect(s.remote)
	syn := s.expectOne("SYN")
	s.local = syn.local
	// A RST with a bad ACK is ignored.
	s.inject(seg{flags: fR | fA, seq: 0, ack: syn.h.Seq + 5})
	if e.State() != StateSynSent {
		t.Fatal("RST with bad ack accepted")
	}
	s.inject(seg{flags: fR | fA, seq: 0, ack: syn.h.Seq + 1})
	if e.State() != StateClosed {
		t.Fatal(e.State())
	}
	if err := e.Connect(s.remote); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("connect after RST: %v", err)
	}
	if err := e.SoError(); err != nil {
		t.Fatalf("SO_ERROR not consumed: %v", err)
	}
}

func TestSynRetriesTimeout(t *testing.T) {
	s := newScript(t, Config{})
	e := s.p.NewEndpoint()
	e.Connect(s.remote)
	first := s.expectOne("SYN")
	// Retransmissions at 1, 3, 7, 15, 31, 63 s; failure at 127 s.
	gaps := []time.Duration{1, 2, 4, 8, 16, 32}
	for i, g := range gaps {
		s.clk.Advance(g*time.Second - time.Millisecond)
		s.expectNone("before retransmission")
		s.clk.Advance(time.Millisecond)
		r := s.expectOne("SYN retransmission")
		if r.h.Flags != fS || r.h.Seq != first.h.Seq {
			t.Fatalf("retransmission %d: %v", i, r)
		}
	}
	s.clk.Advance(64*time.Second - time.Millisecond)
	if e.State() != StateSynSent {
		t.Fatal("gave up early")
	}
	s.clk.Advance(time.Millisecond)
	if e.State() != StateClosed {
		t.Fatal(e.State())
	}
	if err := e.SoError(); !errors.Is(err, syscall.ETIMEDOUT) {
		t.Fatalf("SO_ERROR %v", err)
	}
}

func TestSimultaneousOpen(t *testing.T) {
	s := newScript(t, Config{})
	e := s.p.NewEndpoint()
	if err := e.Bind(s.local); err != nil {
		t.Fatal(err)
	}
	e.Connect(s.remote)
	syn := s.expectOne("SYN")
	iss := syn.h.Seq
	// The peer's SYN crosses ours.
	s.inject(seg{flags: fS, seq: 7000, win: 65535, opts: peerSynOpts(10)})
	sa := s.expectOne("SYN-ACK")
	check(t, "SYN-ACK", sa, fSA, iss, 7001, 0)
	if e.State() != StateSynRcvd {
		t.Fatal(e.State())
	}
	// The peer's SYN-ACK completes it.
	s.inject(seg{flags: fSA, seq: 7000, ack: iss + 1, win: 65535, opts: peerSynOpts(11)})
	if e.State() != StateEstablished {
		t.Fatal(e.State())
	}
	a := s.expectOne("ACK")
	check(t, "ACK", a, fA, iss+1, 7001, 0)
}

func TestNoListenerRST(t *testing.T) {
	s := newScript(t, Config{})
	s.inject(seg{flags: fS, seq: 1000, win: 100})
	r := s.expectOne("RST for SYN")
	check(t, "RST", r, fR|fA, 0, 1001, 0)
	s.inject(seg{flags: fA, seq: 1000, ack: 555, win: 100})
	r = s.expectOne("RST for ACK")
	check(t, "RST", r, fR, 555, 0, 0)
	s.inject(seg{flags: fR, seq: 1000})
	s.expectNone("RST for RST")
	if st := s.p.Stats(); st.OutRsts != 2 {
		t.Fatalf("OutRsts %d", st.OutRsts)
	}
}

func TestMalformed(t *testing.T) {
	s := newScript(t, Config{})
	l := s.p.NewEndpoint()
	l.Bind(s.local)
	l.Listen(1)
	bad := [][]byte{
		{},
		make([]byte, 19),
		// data offset 15 words but only 20 bytes
		{0x9c, 0x40, 0x1f, 0x90, 0, 0, 0, 1, 0, 0, 0, 0, 0xf0, 0x02, 0xff, 0xff, 0, 0, 0, 0},
		// data offset 4 words (< 5)
		{0x9c, 0x40, 0x1f, 0x90, 0, 0, 0, 1, 0, 0, 0, 0, 0x40, 0x02, 0xff, 0xff, 0, 0, 0, 0},
		// option with length 1
		{0x9c, 0x40, 0x1f, 0x90, 0, 0, 0, 1, 0, 0, 0, 0, 0x60, 0x02, 0xff, 0xff, 0, 0, 0, 0, 2, 1, 0, 0},
		// option running past the header
		{0x9c, 0x40, 0x1f, 0x90, 0, 0, 0, 1, 0, 0, 0, 0, 0x60, 0x02, 0xff, 0xff, 0, 0, 0, 0, 1, 8, 10, 0},
	}
	for _, b := range bad {
		s.p.HandleSegment(remoteIP, localIP, 0, b)
	}
	s.expectNone("malformed")
	if st := s.p.Stats(); st.InErrs != uint64(len(bad)) {
		t.Fatalf("InErrs %d", st.InErrs)
	}
	// An unknown option is skipped.
	b := []byte{0x9c, 0x40, 0x1f, 0x90, 0, 0, 0, 1, 0, 0, 0, 0, 0x60, 0x02, 0xff, 0xff, 0, 0, 0, 0, 99, 4, 0, 0}
	s.p.HandleSegment(remoteIP, localIP, 0, b)
	if sa := s.expectOne("SYN-ACK"); sa.h.Flags != fSA {
		t.Fatal(sa)
	}
}
