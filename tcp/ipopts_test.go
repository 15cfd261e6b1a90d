package tcp

import (
	"net/netip"
	"testing"

	"github.com/sockstack/sockstack/wire"
)

// testIPOpts stands for the host's compiled IP_OPTIONS.
type testIPOpts struct {
	n   int
	hop netip.Addr
}

func (o *testIPOpts) Len() int                     { return o.n }
func (o *testIPOpts) FirstHop() (netip.Addr, bool) { return o.hop, o.hop.IsValid() }
func (o *testIPOpts) String() string               { return "opts" }
func sameOpts(a IPOptions, b *testIPOpts) bool     { x, ok := a.(*testIPOpts); return ok && x == b }
func optsOf(c captured) IPOptions                  { return c.ipOpts }
func wantOpts(t *testing.T, what string, c captured, o *testIPOpts) {
	t.Helper()
	if o == nil && optsOf(c) != nil || o != nil && !sameOpts(optsOf(c), o) {
		t.Fatalf("%s: IP options %v, want %v (%v)", what, optsOf(c), o, c)
	}
}

// IP_OPTIONS on an active open: the SYN and every later segment carry
// them; the SYN advertises the route's MSS (Linux's advmss ignores
// them) and the data segments are the peer's MSS less the options and
// the timestamps (Linux's tcp_mtu_to_mss less icsk_ext_hdr_len).
func TestIPOptionsActiveOpen(t *testing.T) {
	s := newScript(t, Config{})
	o := &testIPOpts{n: 8}
	e := s.p.NewEndpoint()
	e.SetIPOptions(o)
	if got := e.IPOptions(); !sameOpts(got, o) {
		t.Fatalf("IPOptions %v", got)
	}
	if err := e.Connect(s.remote); err == nil || err.Error() != "operation now in progress" {
		t.Fatalf("connect: %v", err)
	}
	syn := s.expectOne("SYN")
	wantOpts(t, "SYN", syn, o)
	if syn.h.Options.MSS != 1460 {
		t.Fatalf("SYN MSS %d, want the route's 1460", syn.h.Options.MSS)
	}
	local := syn.local
	s.local = local
	s.inject(seg{flags: fSA, seq: 5000, ack: syn.h.Seq + 1, win: 65535, opts: wire.TCPOptions{HasMSS: true, MSS: 1460, HasTS: true, TSVal: 7, TSEcr: syn.h.Options.TSVal}})
	wantOpts(t, "ACK", s.expectOne("handshake ACK"), o)
	if got, want := e.sndMSS, 1460-8-12; got != want {
		t.Fatalf("send MSS %d, want %d", got, want)
	}
	data := make([]byte, 5000)
	if n, err := e.Write(data); err != nil || n != len(data) {
		t.Fatalf("write %d %v", n, err)
	}
	out := s.out()
	if len(out) == 0 {
		t.Fatal("no data sent")
	}
	for _, c := range out {
		wantOpts(t, "data", c, o)
		if len(c.payload) > 1440 {
			t.Fatalf("segment of %d bytes, over 1440", len(c.payload))
		}
	}
	if len(out[0].payload) != 1440 {
		t.Fatalf("first segment %d bytes, want 1440", len(out[0].payload))
	}
	// Taken off a connected socket: the MSS grows back at once.
	e.SetIPOptions(nil)
	if got, want := e.sndMSS, 1460-12; got != want {
		t.Fatalf("send MSS without options %d, want %d", got, want)
	}
	s.inject(seg{flags: fA, seq: 5001, ack: syn.h.Seq + 1 + 5000, win: 65535, opts: wire.TCPOptions{HasTS: true, TSVal: 8, TSEcr: out[len(out)-1].h.Options.TSVal}})
	s.out()
	if _, err := e.Write(make([]byte, 3000)); err != nil {
		t.Fatal(err)
	}
	out = s.out()
	if len(out) == 0 || len(out[0].payload) != 1448 {
		t.Fatalf("after options removed: %v", out)
	}
	for _, c := range out {
		wantOpts(t, "data without options", c, nil)
	}
	// Set again: the reset that aborts the connection carries them.
	e.SetIPOptions(o)
	if got, want := e.sndMSS, 1460-8-12; got != want {
		t.Fatalf("send MSS with options again %d, want %d", got, want)
	}
	if err := e.SetLinger(true, 0); err != nil {
		t.Fatal(err)
	}
	e.Close()
	var rst *captured
	for _, c := range s.out() {
		if c.h.Flags&fR != 0 {
			rst = &c
		}
	}
	if rst == nil {
		t.Fatal("no RST")
	}
	wantOpts(t, "RST", *rst, o)
}

// A listener's IP_OPTIONS are not its children's: a child sends what
// the SYN's options echo (HandleSegmentEcho), or none, as Linux's
// child takes the SYN's options (tcp_v4_save_options), not the
// listener's.
func TestIPOptionsListenerChildren(t *testing.T) {
	s := newScript(t, Config{})
	lo := &testIPOpts{n: 12}
	l, c, _ := func() (*Endpoint, *Endpoint, uint32) {
		l := s.p.NewEndpoint()
		l.SetIPOptions(lo)
		if err := l.Bind(s.local); err != nil {
			t.Fatal(err)
		}
		if err := l.Listen(16); err != nil {
			t.Fatal(err)
		}
		s.inject(seg{flags: fS, seq: 1000, win: 65535, opts: peerSynOpts(1)})
		sa := s.expectOne("SYN-ACK")
		wantOpts(t, "SYN-ACK to a SYN without options", sa, nil)
		s.inject(seg{flags: fA, seq: 1001, ack: sa.h.Seq + 1, win: 65535, opts: wire.TCPOptions{HasTS: true, TSVal: 2, TSEcr: sa.h.Options.TSVal}})
		c, _, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		return l, c, sa.h.Seq
	}()
	defer l.Close()
	if c.IPOptions() != nil || c.sndMSS != 1460-12 {
		t.Fatalf("child options %v, MSS %d", c.IPOptions(), c.sndMSS)
	}
	c.Close()
	s.out()

	echo := &testIPOpts{n: 8}
	s.remote = netip.AddrPortFrom(remoteIP, 40001)
	h := wire.TCPHeader{SrcPort: s.remote.Port(), DstPort: s.local.Port(), Seq: 2000, Flags: fS, Window: 65535, Options: peerSynOpts(1)}
	b := make([]byte, h.Len())
	h.Put(b)
	s.p.HandleSegmentEcho(s.remote.Addr(), s.local.Addr(), 0, b, echo)
	sa := s.expectOne("SYN-ACK to a SYN with options")
	wantOpts(t, "SYN-ACK", sa, echo)
	s.inject(seg{flags: fA, seq: 2001, ack: sa.h.Seq + 1, win: 65535, opts: wire.TCPOptions{HasTS: true, TSVal: 2, TSEcr: sa.h.Options.TSVal}})
	c2, _, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if !sameOpts(c2.IPOptions(), echo) || c2.sndMSS != 1460-8-12 {
		t.Fatalf("echoing child: options %v, MSS %d", c2.IPOptions(), c2.sndMSS)
	}
	if _, err := c2.Write(make([]byte, 2000)); err != nil {
		t.Fatal(err)
	}
	out := s.out()
	if len(out) == 0 || len(out[0].payload) != 1440 {
		t.Fatalf("child data: %v", out)
	}
	for _, x := range out {
		wantOpts(t, "child data", x, echo)
	}
}

// An AF_INET6 endpoint keeps IP_OPTIONS and uses them only towards a
// v4-mapped peer; a source route keeps segments out of super-segments.
func TestIPOptionsFamilies(t *testing.T) {
	s := newScript(t, Config{})
	o := &testIPOpts{n: 8}
	e := s.p.NewEndpoint()
	e.SetIPOptions(o)
	e.remote = netip.AddrPortFrom(netip.MustParseAddr("2001:db8::1"), 80)
	if e.ipOptLen() != 0 || e.segIPOpts() != nil {
		t.Fatal("options towards an IPv6 peer")
	}
	e.remote = netip.AddrPortFrom(netip.MustParseAddr("::ffff:192.0.2.2"), 80)
	if e.ipOptLen() != 8 || e.segIPOpts() == nil {
		t.Fatal("no options towards a v4-mapped peer")
	}
	e.SetIPOptions(&testIPOpts{n: 8, hop: netip.MustParseAddr("192.0.2.9")})
	e.lock()
	defer e.unlock()
	e.gsoMax, e.pmtu, e.sndMSS = 65535, 1500, 1440
	if e.gsoSize(5000) != 0 || e.gsoLimit(1440) != 1440 {
		t.Fatal("a source route in a super-segment")
	}
	e.setOpt(func(x epOpts) epOpts { x.ipOpts = o; return x })
	if e.gsoSize(5000) != 1440 || e.gsoLimit(1440) <= 1440 {
		t.Fatal("no super-segment with options")
	}
}
