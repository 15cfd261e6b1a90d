package tcp

import (
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/waiter"
	"github.com/sockstack/sockstack/wire"
)

// TestQuickAckSendsOwedAck: TCP_QUICKACK 1 sends the ACK the delayed-ACK
// timer holds at once (the data read), 0 enters pingpong mode, and with
// unread data and less than a segment owed it waits, as Linux's
// tcp_cleanup_rbuf. The connection starts in pingpong mode, where
// neither quickack mode nor the read of a short segment sends the ACK.
func TestQuickAckSendsOwedAck(t *testing.T) {
	s := newScript(t, Config{})
	_, c, iss := s.passiveOpen(noOpts)
	if !c.QuickAck() {
		t.Fatal("a new connection is in pingpong mode")
	}
	c.SetQuickAck(0)
	s.inject(seg{flags: fPA, seq: 1001, ack: iss + 1, win: 65535, data: make([]byte, 100)})
	s.expectNone("delayed")
	if got := len(readAll(c)); got != 100 {
		t.Fatalf("read %d", got)
	}
	s.expectNone("read")
	c.SetQuickAck(1)
	check(t, "quickack", s.expectOne("ACK at once"), fA, iss+1, 1101, 0)
	if !c.QuickAck() {
		t.Fatal("TCP_QUICKACK 1 reads 0")
	}
	// Nothing owed: nothing sent, and the delayed-ACK timer finds nothing.
	c.SetQuickAck(1)
	s.expectNone("nothing owed")
	s.clk.Advance(time.Second)
	s.expectNone("timer after the quick ACK")

	c.SetQuickAck(0)
	if c.QuickAck() {
		t.Fatal("TCP_QUICKACK 0 reads 1")
	}
	// Unread data, less than a segment owed: the ACK stays delayed.
	s.inject(seg{flags: fPA, seq: 1101, ack: iss + 1, win: 65535, data: make([]byte, 100)})
	c.SetQuickAck(1)
	s.expectNone("unread data")
	if !c.QuickAck() {
		t.Fatal("pingpong after TCP_QUICKACK 1")
	}
	a, el := s.waitOne(time.Second)
	check(t, "delayed ACK", a, fA, iss+1, 1201, 0)
	if !near(el, 40*time.Millisecond) {
		t.Fatalf("delayed ACK after %v", el)
	}
	// Out of pingpong mode, with quickack's ACKs left from the first
	// data, a segment is acknowledged at once.
	s.inject(seg{flags: fPA, seq: 1201, ack: iss + 1, win: 65535, data: make([]byte, 100)})
	check(t, "quickack mode", s.expectOne("ACK at once"), fA, iss+1, 1301, 0)
	readAll(c)
	// An even value sends the owed ACK and stays in pingpong mode.
	c.SetQuickAck(0)
	s.inject(seg{flags: fPA, seq: 1301, ack: iss + 1, win: 65535, data: make([]byte, 100)})
	s.expectNone("pingpong")
	readAll(c)
	s.expectNone("read in pingpong mode")
	c.SetQuickAck(2)
	check(t, "quickack 2", s.expectOne("ACK at once"), fA, iss+1, 1401, 0)
	if c.QuickAck() {
		t.Fatal("TCP_QUICKACK 2 left pingpong mode")
	}
}

// TestSynCountLimitsSynRetries: TCP_SYNCNT 2 gives up after two SYN
// retransmissions (1 s, 3 s; ETIMEDOUT at 7 s), and bounds a listener's
// SYN-ACK retransmissions.
func TestSynCountLimitsSynRetries(t *testing.T) {
	s := newScript(t, Config{})
	e := s.p.NewEndpoint()
	for _, v := range []int{0, 128, -1} {
		if err := e.SetSynCount(v); !errors.Is(err, syscall.EINVAL) {
			t.Fatalf("TCP_SYNCNT %d: %v", v, err)
		}
	}
	if e.SynCount() != 6 {
		t.Fatalf("default %d", e.SynCount())
	}
	if err := e.SetSynCount(2); err != nil || e.SynCount() != 2 {
		t.Fatalf("set 2: %v, reads %d", err, e.SynCount())
	}
	e.Connect(s.remote)
	s.expectOne("SYN")
	for _, g := range []time.Duration{1, 2} {
		s.clk.Advance(g * time.Second)
		if r := s.expectOne("SYN retransmission"); r.h.Flags != fS {
			t.Fatal(r)
		}
	}
	s.clk.Advance(4*time.Second - time.Millisecond)
	if e.State() != StateSynSent {
		t.Fatal("gave up early")
	}
	s.clk.Advance(time.Millisecond)
	if e.State() != StateClosed {
		t.Fatalf("after 7 s: %v", e.State())
	}
	if err := e.SoError(); !errors.Is(err, syscall.ETIMEDOUT) {
		t.Fatalf("SO_ERROR %v", err)
	}
	s.expectNone("no third retransmission")

	// A listener's requests: one SYN-ACK retransmission, then dropped.
	s = newScript(t, Config{})
	l := s.p.NewEndpoint()
	l.Bind(s.local)
	l.SetSynCount(1)
	l.Listen(16)
	s.inject(seg{flags: fS, seq: 1000, win: 65535, opts: noOpts})
	s.expectOne("SYN-ACK")
	s.clk.Advance(time.Second)
	if r := s.expectOne("SYN-ACK retransmission"); r.h.Flags != fSA {
		t.Fatal(r)
	}
	s.clk.Advance(2 * time.Second)
	s.expectNone("second SYN-ACK retransmission")
	if n := l.synQLen.Load(); n != 0 {
		t.Fatalf("request kept: SYN queue %d", n)
	}
}

// TestLinger2 bounds an orphaned FIN_WAIT2 with TCP_LINGER2, resets it
// at once when negative, and reads back as Linux.
func TestLinger2(t *testing.T) {
	s := newScript(t, Config{})
	_, c, iss := s.passiveOpen(noOpts)
	for _, tc := range []struct{ set, get int }{{0, 60}, {-7, -1}, {500, 120}, {10, 10}} {
		c.SetLinger2(tc.set)
		if got := c.Linger2(); got != tc.get {
			t.Fatalf("TCP_LINGER2 %d reads %d, want %d", tc.set, got, tc.get)
		}
	}
	c.Close()
	s.expectOne("FIN")
	s.inject(seg{flags: fA, seq: 1001, ack: iss + 2, win: 65535})
	if c.State() != StateFinWait2 {
		t.Fatal(c.State())
	}
	s.endsAt(c, s.p.now(), 10*time.Second, nil)

	// Negative: the FIN's ACK ends the orphan with a RST.
	s = newScript(t, Config{})
	_, c, iss = s.passiveOpen(noOpts)
	c.SetLinger2(-1)
	c.Close()
	s.expectOne("FIN")
	s.inject(seg{flags: fA, seq: 1001, ack: iss + 2, win: 65535})
	if r := s.expectOne("RST"); r.h.Flags&fR == 0 {
		t.Fatalf("want a RST, got %v", r)
	}
	if c.State() != StateClosed {
		t.Fatal(c.State())
	}
	// Closed in FIN_WAIT2 (shut down first): reset at close.
	s = newScript(t, Config{})
	_, c, iss = s.passiveOpen(noOpts)
	c.SetLinger2(-1)
	c.Shutdown(ShutWr)
	s.expectOne("FIN")
	s.inject(seg{flags: fA, seq: 1001, ack: iss + 2, win: 65535})
	if c.State() != StateFinWait2 {
		t.Fatal(c.State())
	}
	c.Close()
	if r := s.expectOne("RST at close"); r.h.Flags&fR == 0 {
		t.Fatalf("want a RST, got %v", r)
	}
	if c.State() != StateClosed {
		t.Fatal(c.State())
	}
}

// TestWindowClamp: TCP_WINDOW_CLAMP bounds the window of the SYN and of
// every ACK; Linux's minimum and EINVAL for 0 once not closed.
func TestWindowClamp(t *testing.T) {
	s := newScript(t, Config{})
	e := s.p.NewEndpoint()
	if e.WindowClamp() != 0 {
		t.Fatal(e.WindowClamp())
	}
	if err := e.SetWindowClamp(1); err != nil || e.WindowClamp() != minWindowClamp {
		t.Fatalf("clamp 1: %v, reads %d", err, e.WindowClamp())
	}
	if err := e.SetWindowClamp(0); err != nil || e.WindowClamp() != 0 {
		t.Fatalf("clamp 0 on a closed socket: %v, reads %d", err, e.WindowClamp())
	}
	if err := e.SetWindowClamp(3000); err != nil {
		t.Fatal(err)
	}
	e.Connect(s.remote)
	syn := s.expectOne("SYN")
	if syn.h.Window != 3000 {
		t.Fatalf("SYN window %d, want 3000", syn.h.Window)
	}
	s.local = syn.local
	s.inject(seg{flags: fSA, seq: 5000, ack: syn.h.Seq + 1, win: 65535, opts: noOpts})
	if a := s.expectOne("ACK"); a.h.Window != 3000 {
		t.Fatalf("ACK window %d", a.h.Window)
	}
	if err := e.SetWindowClamp(0); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("clamp 0 connected: %v", err)
	}
	s.inject(seg{flags: fPA, seq: 5001, ack: syn.h.Seq + 1, win: 65535, data: make([]byte, 1000)})
	readAll(e)
	a, _ := s.waitOne(time.Second)
	if int(a.h.Window) > 3000 || a.h.Ack != 6001 {
		t.Fatalf("window %d after data, over the clamp", a.h.Window)
	}
}

// TestNotsentLowat: under TCP_NOTSENT_LOWAT a write queues only up to
// the bound (rounded up to a segment), fails with EAGAIN while the
// unsent bytes reach it, and readiness (and its wake-up) comes back
// once they are sent.
func TestNotsentLowat(t *testing.T) {
	s := newScript(t, Config{})
	_, c, iss := s.passiveOpen(noOpts)
	c.SetNotsentLowat(1000)
	if c.NotsentLowat() != 1000 {
		t.Fatal(c.NotsentLowat())
	}
	b := make([]byte, 20000)
	sent := 0
	for i := 0; ; i++ {
		n, err := c.Write(b)
		if errors.Is(err, syscall.EAGAIN) {
			break
		}
		if err != nil || n != 1460 {
			t.Fatalf("write %d: %d, %v (want one segment: the bound rounded up)", i, n, err)
		}
		sent += n
		if i > 20 {
			t.Fatal("writes never blocked")
		}
	}
	// Ten segments fill the initial window; the eleventh waits unsent.
	if sent != 11*1460 {
		t.Fatalf("queued %d before EAGAIN", sent)
	}
	if c.notSent() != 1460 {
		t.Fatalf("unsent %d", c.notSent())
	}
	if c.Readiness(waiter.EventOut) != 0 {
		t.Fatal("writable with the unsent bytes over the bound")
	}
	if c.sndCap-c.sndLen < c.sndLen/2 {
		t.Fatal("test broken: the send buffer itself is full")
	}
	w := waiter.NewEntry()
	c.Waiter().Register(w, waiter.EventOut)
	defer c.Waiter().Unregister(w)
	s.out()
	// The peer acknowledges everything: the unsent segment goes.
	s.inject(seg{flags: fA, seq: 1001, ack: iss + 1 + 10*1460, win: 65535})
	if c.notSent() != 0 {
		t.Fatalf("unsent %d after the ACK", c.notSent())
	}
	select {
	case <-w.C:
	default:
		t.Fatal("no EventOut wake-up once sent")
	}
	if c.Readiness(waiter.EventOut) == 0 {
		t.Fatal("not writable once sent")
	}
	if n, err := c.Write(b); err != nil || n != 1460 {
		t.Fatalf("write after: %d %v", n, err)
	}
	// 0 removes the bound: the buffer is the limit again.
	c.SetNotsentLowat(0)
	if n, err := c.Write(b); err != nil || n <= 1460 {
		t.Fatalf("write without a bound: %d %v", n, err)
	}
	// A negative value is kept as Linux keeps it (u32) and reads back.
	c.SetNotsentLowat(-1)
	if c.NotsentLowat() != -1 {
		t.Fatal(c.NotsentLowat())
	}
}

// TestDeferAccept: a deferring listener keeps the child whose
// handshake ACK carries no data out of accept until data arrives; the
// values are rounded to whole SYN-ACK periods as Linux.
func TestDeferAccept(t *testing.T) {
	for _, tc := range []struct{ set, get int }{{0, 0}, {-3, 0}, {1, 1}, {2, 3}, {5, 7}, {8, 15}, {200, 247}, {1 << 30, retransToSecs(255)}} {
		if got := retransToSecs(secsToRetrans(tc.set)); got != tc.get {
			t.Errorf("TCP_DEFER_ACCEPT %d reads %d, want %d", tc.set, got, tc.get)
		}
	}
	s := newScript(t, Config{})
	l := s.p.NewEndpoint()
	l.Bind(s.local)
	l.SetDeferAccept(5) // three SYN-ACK periods: 1 + 2 + 4 s
	if l.DeferAccept() != 7 {
		t.Fatal(l.DeferAccept())
	}
	l.Listen(16)
	s.inject(seg{flags: fS, seq: 1000, win: 65535, opts: noOpts})
	iss := s.expectOne("SYN-ACK").h.Seq
	s.inject(seg{flags: fA, seq: 1001, ack: iss + 1, win: 65535})
	if _, _, err := l.Accept(); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("accept after a bare ACK: %v", err)
	}
	if l.Readiness(waiter.EventIn) != 0 {
		t.Fatal("listener readable after a bare ACK")
	}
	if n := s.p.Stats().DeferAcceptDrops; n != 1 {
		t.Fatalf("DeferAcceptDrops %d, want 1", n)
	}
	// The client is known to be there: no SYN-ACK until the last period.
	s.clk.Advance(3 * time.Second)
	s.expectNone("SYN-ACK while deferring")
	s.clk.Advance(2 * time.Second)
	s.inject(seg{flags: fPA, seq: 1001, ack: iss + 1, win: 65535, data: []byte("GET /")})
	c, _, err := l.Accept()
	if err != nil {
		t.Fatalf("accept after data: %v", err)
	}
	if got := string(readAll(c)); got != "GET /" {
		t.Fatalf("read %q", got)
	}
	if c.DeferAccept() != 0 || c.State() != StateEstablished {
		t.Fatalf("accepted: TCP_DEFER_ACCEPT %d, %v", c.DeferAccept(), c.State())
	}
}

// TestDeferAcceptRunsOut: with no data the deferral ends with a last
// SYN-ACK; the client's ACK to it is accepted, as Linux.
func TestDeferAcceptRunsOut(t *testing.T) {
	s := newScript(t, Config{})
	l := s.p.NewEndpoint()
	l.Bind(s.local)
	l.SetDeferAccept(2) // two periods: 1 + 2 s; the SYN-ACK is sent again at the last
	l.Listen(16)
	s.inject(seg{flags: fS, seq: 1000, win: 65535, opts: noOpts})
	iss := s.expectOne("SYN-ACK").h.Seq
	s.inject(seg{flags: fA, seq: 1001, ack: iss + 1, win: 65535})
	s.clk.Advance(time.Second)
	s.expectNone("SYN-ACK in the first period")
	s.clk.Advance(2 * time.Second)
	if r := s.expectOne("last SYN-ACK"); r.h.Flags != fSA {
		t.Fatal(r)
	}
	if _, _, err := l.Accept(); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("accept before the client answers: %v", err)
	}
	s.inject(seg{flags: fA, seq: 1001, ack: iss + 1, win: 65535})
	if _, _, err := l.Accept(); err != nil {
		t.Fatalf("accept once the deferral ran out: %v", err)
	}
}

// TestInqHint: TCP_CM_INQ's value counts the FIN as Linux does.
func TestInqHint(t *testing.T) {
	s := newScript(t, Config{})
	_, c, iss := s.passiveOpen(noOpts)
	for _, v := range []int{2, -1} {
		if err := c.SetInq(v); !errors.Is(err, syscall.EINVAL) {
			t.Fatalf("TCP_INQ %d: %v", v, err)
		}
	}
	if err := c.SetInq(1); err != nil || !c.Inq() {
		t.Fatal(err)
	}
	s.inject(seg{flags: fPA, seq: 1001, ack: iss + 1, win: 65535, data: []byte("hello")})
	if c.InqHint() != 5 {
		t.Fatal(c.InqHint())
	}
	s.inject(seg{flags: fFA, seq: 1006, ack: iss + 1, win: 65535})
	if c.InqHint() != 6 {
		t.Fatalf("with the FIN: %d", c.InqHint())
	}
	readAll(c)
	if c.InqHint() != 1 {
		t.Fatalf("read to the FIN: %d", c.InqHint())
	}
}

// TestFastOpenOptions: stored values and their errnos.
func TestFastOpenOptions(t *testing.T) {
	s := newScript(t, Config{})
	e := s.p.NewEndpoint()
	if err := e.SetFastOpen(-1); !errors.Is(err, syscall.EINVAL) {
		t.Fatal(err)
	}
	if err := e.SetFastOpen(1 << 20); err != nil || e.FastOpen() != 4096 {
		t.Fatalf("%v, reads %d (want SOMAXCONN)", err, e.FastOpen())
	}
	if err := e.SetFastOpenConnect(2); !errors.Is(err, syscall.EINVAL) {
		t.Fatal(err)
	}
	if err := e.SetFastOpenConnect(1); err != nil || !e.FastOpenConnect() {
		t.Fatal(err)
	}
	// Connect still does an ordinary handshake: a SYN without data.
	e.Connect(s.remote)
	if syn := s.expectOne("SYN"); syn.h.Flags != fS || len(syn.payload) != 0 {
		t.Fatal(syn)
	}
	if err := e.SetFastOpenConnect(0); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("after connect: %v", err)
	}
	if err := e.SetFastOpen(5); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("TCP_FASTOPEN connecting: %v", err)
	}
}

// TestHandshakeAckDelayed: a connecting socket in pingpong mode (or
// with TCP_DEFER_ACCEPT) holds its handshake ACK for 200 ms, sends it
// with data written before then, and leaves pingpong mode, as Linux.
func TestHandshakeAckDelayed(t *testing.T) {
	for _, write := range []bool{false, true} {
		s := newScript(t, Config{})
		e := s.p.NewEndpoint()
		e.SetQuickAck(0)
		e.Connect(s.remote)
		syn := s.expectOne("SYN")
		s.local = syn.local
		s.inject(seg{flags: fSA, seq: 5000, ack: syn.h.Seq + 1, win: 65535, opts: noOpts})
		s.expectNone("handshake ACK held")
		if e.State() != StateEstablished || !e.QuickAck() {
			t.Fatalf("%v, TCP_QUICKACK %v", e.State(), e.QuickAck())
		}
		if write {
			e.Write([]byte("hi"))
			check(t, "data with the ACK", s.expectOne("data"), fPA, syn.h.Seq+1, 5001, 2)
			s.clk.Advance(time.Second)
			if o := s.out(); len(o) != 0 && o[0].h.Flags == fA && len(o[0].payload) == 0 {
				t.Fatalf("a bare ACK after the data: %v", o)
			}
			continue
		}
		a, el := s.waitOne(time.Second)
		check(t, "delayed handshake ACK", a, fA, syn.h.Seq+1, 5001, 0)
		if !near(el, handshakeAckDelay) {
			t.Fatalf("handshake ACK after %v", el)
		}
	}
}

// TestWindowClampScale: a listener's TCP_WINDOW_CLAMP bounds the window
// scale its SYN-ACK offers, as Linux's tcp_select_initial_window takes
// the clamp into the space it scales for: a 4096-byte clamp needs no
// scaling. Without the clamp the same SYN draws a scaled window.
func TestWindowClampScale(t *testing.T) {
	for _, c := range []struct {
		clamp, ws int
	}{{4096, 0}, {65535, 0}, {100000, 1}} {
		s := newScript(t, Config{})
		l := s.p.NewEndpoint()
		if err := l.SetWindowClamp(c.clamp); err != nil {
			t.Fatal(err)
		}
		if err := l.Bind(s.local); err != nil {
			t.Fatal(err)
		}
		if err := l.Listen(4); err != nil {
			t.Fatal(err)
		}
		s.inject(seg{flags: fS, seq: 1000, win: 65535, opts: peerSynOpts(1)})
		sa := s.expectOne("SYN-ACK")
		if !sa.h.Options.HasWScale || int(sa.h.Options.WScale) != c.ws {
			t.Errorf("clamp %d: SYN-ACK window scale %v %d, want %d", c.clamp, sa.h.Options.HasWScale, sa.h.Options.WScale, c.ws)
		}
		if int(sa.h.Window) > c.clamp {
			t.Errorf("clamp %d: SYN-ACK window %d", c.clamp, sa.h.Window)
		}
		l.Close()
	}
	s := newScript(t, Config{})
	e := s.p.NewEndpoint()
	e.SetWindowClamp(4096)
	e.Connect(s.remote)
	if syn := s.expectOne("SYN"); !syn.h.Options.HasWScale || syn.h.Options.WScale != 0 {
		t.Errorf("SYN with a 4096-byte clamp offers window scale %d, want 0", syn.h.Options.WScale)
	}
}

// TestWindowClampBelowMSS: with a clamp below the MSS the window stays
// open while data waits unread: the clamp bounds the window offered,
// not the bytes queued, as in Linux (whose receive buffer is far
// larger than the clamp). Receiver SWS avoidance offers a window only
// once it can grow by an MSS, which a window clamped below the MSS
// never does: the window closed for good. Linux bounds that step by the
// largest window it may offer (__tcp_select_window: mss = full_space
// when larger).
func TestWindowClampBelowMSS(t *testing.T) {
	s := newScript(t, Config{})
	l := s.p.NewEndpoint()
	l.SetWindowClamp(1) // raised to minWindowClamp, below the 1460 MSS
	if err := l.Bind(s.local); err != nil {
		t.Fatal(err)
	}
	if err := l.Listen(4); err != nil {
		t.Fatal(err)
	}
	s.inject(seg{flags: fS, seq: 1000, win: 65535, opts: sackOpts})
	sa := s.expectOne("SYN-ACK")
	if int(sa.h.Window) != minWindowClamp {
		t.Fatalf("SYN-ACK window %d, want %d", sa.h.Window, minWindowClamp)
	}
	iss := sa.h.Seq
	s.inject(seg{flags: fA, seq: 1001, ack: iss + 1, win: 65535})
	c, _, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	s.out()
	seq := uint32(1001)
	for i := 0; i < 3; i++ {
		// The peer sends what is offered; nobody reads.
		s.inject(seg{flags: fPA, seq: seq, ack: iss + 1, win: 65535, data: make([]byte, minWindowClamp)})
		seq += minWindowClamp
		a, _ := s.waitOne(time.Second)
		if a.h.Ack != seq || int(a.h.Window) != minWindowClamp {
			t.Fatalf("ACK of window %d: %v, want window %d", i, a, minWindowClamp)
		}
	}
	if n := len(readAll(c)); n != 3*minWindowClamp {
		t.Fatalf("read %d", n)
	}
}

// TestFirstReadKeepsAckForReply: in pingpong mode (TCP_QUICKACK 0) the
// ACK of the first request rides on the reply. The read of the request
// sent it at once as a window update: with window scaling the SYN-ACK
// offers at most 65535 bytes and the buffer is larger, so the window
// looked grown by the read though the read opened only its own bytes.
// Linux sends the reply alone.
func TestFirstReadKeepsAckForReply(t *testing.T) {
	s := newScript(t, Config{})
	_, c, iss := s.passiveOpen(wire.TCPOptions{HasMSS: true, MSS: 1460, HasWScale: true, WScale: 7, SACKPermitted: true})
	c.SetQuickAck(0)
	s.inject(seg{flags: fPA, seq: 1001, ack: iss + 1, win: 65535, data: []byte("request")})
	s.expectNone("the request")
	if got := string(readAll(c)); got != "request" {
		t.Fatalf("read %q", got)
	}
	s.expectNone("the read of the request")
	if _, err := c.Write([]byte("reply")); err != nil {
		t.Fatal(err)
	}
	r := s.expectOne("the reply")
	check(t, "the reply", r, fPA, iss+1, 1008, 5)
	if int(r.h.Window)<<7 <= 65535 {
		t.Errorf("the reply offers %d<<7 bytes: the larger window was not announced", r.h.Window)
	}
}
