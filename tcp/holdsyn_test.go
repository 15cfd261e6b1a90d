package tcp

import (
	"errors"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/clock"
	"github.com/sockstack/sockstack/waiter"
	"github.com/sockstack/sockstack/wire"
)

// holdListener listens on s.local holding SYNs (backlog, timeout).
func (s *script) holdListener(backlog int, timeout time.Duration) *Endpoint {
	s.t.Helper()
	l := s.p.NewEndpoint()
	if err := l.SetHoldSYN(true, timeout); err != nil {
		s.t.Fatal(err)
	}
	if err := l.Bind(s.local); err != nil {
		s.t.Fatal(err)
	}
	if err := l.Listen(backlog); err != nil {
		s.t.Fatal(err)
	}
	return l
}

// synFrom injects a SYN from the peer's address on port.
func (s *script) synFrom(port uint16, seq uint32, opts wire.TCPOptions) {
	s.t.Helper()
	h := wire.TCPHeader{SrcPort: port, DstPort: s.local.Port(), Seq: seq, Flags: fS, Window: 65535, Options: opts}
	b := make([]byte, h.Len())
	h.Put(b)
	s.p.HandleSegment(s.remote.Addr(), s.local.Addr(), 0, b)
}

func nextReq(t *testing.T, l *Endpoint) *SynRequest {
	t.Helper()
	r, err := l.NextSynRequest()
	if err != nil {
		t.Fatalf("NextSynRequest: %v", err)
	}
	return r
}

// A held SYN is not answered; its retransmission is absorbed, not a
// second request; Complete sends the SYN-ACK with the options of the SYN
// (and the latest timestamp), and the connection is the caller's, not
// the accept queue's.
func TestHoldSYNComplete(t *testing.T) {
	s := newScript(t, Config{})
	l := s.holdListener(8, 0)
	if l.Readiness(waiter.EventIn) != 0 {
		t.Fatal("readable with nothing held")
	}
	s.inject(seg{flags: fS, seq: 1000, win: 65535, opts: peerSynOpts(500)})
	s.expectNone("held SYN")
	if l.Readiness(waiter.EventIn) == 0 {
		t.Fatal("a held SYN does not make the listener readable")
	}
	s.inject(seg{flags: fS, seq: 1000, win: 65535, opts: peerSynOpts(1500)})
	s.expectNone("retransmitted SYN")
	r := nextReq(t, l)
	if r.Local() != s.local || r.Remote() != s.remote {
		t.Fatalf("request %v <- %v, want %v <- %v", r.Local(), r.Remote(), s.local, s.remote)
	}
	if _, err := l.NextSynRequest(); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("the retransmission made a second request: %v", err)
	}
	s.inject(seg{flags: fS, seq: 1000, win: 65535, opts: peerSynOpts(2500)})
	s.expectNone("SYN retransmitted while the application has the request")
	c, err := r.Complete()
	if err != nil {
		t.Fatal(err)
	}
	sa := s.expectOne("SYN-ACK")
	o := sa.h.Options
	if sa.h.Flags != fSA || sa.h.Ack != 1001 || !o.HasMSS || o.MSS != 1460 || !o.HasWScale || o.WScale != 7 ||
		!o.SACKPermitted || !o.HasTS || o.TSEcr != 2500 {
		t.Fatalf("SYN-ACK %v", sa)
	}
	if c.State() != StateSynRcvd || c.Readiness(waiter.EventOut) != 0 {
		t.Fatalf("before the ACK: %v, writable %v", c.State(), c.Readiness(waiter.EventOut) != 0)
	}
	s.inject(seg{flags: fA, seq: 1001, ack: sa.h.Seq + 1, win: 100, opts: wire.TCPOptions{HasTS: true, TSVal: 2501, TSEcr: o.TSVal}})
	s.expectNone("ACK")
	if c.State() != StateEstablished || c.Readiness(waiter.EventOut) == 0 {
		t.Fatalf("after the ACK: %v", c.State())
	}
	if i := c.Info(); !i.TimestampsOK || !i.SACKOK || i.SndWScale != 7 {
		t.Fatalf("options not negotiated: %+v", i)
	}
	if _, _, err := l.Accept(); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("a completed request also in the accept queue: %v", err)
	}
	s.inject(seg{flags: fPA, seq: 1001, ack: sa.h.Seq + 1, win: 100, data: []byte("hi"), opts: wire.TCPOptions{HasTS: true, TSVal: 2502, TSEcr: o.TSVal}})
	if got := readAll(c); string(got) != "hi" {
		t.Fatalf("read %q", got)
	}
	if _, err := r.Complete(); !errors.Is(err, syscall.EALREADY) {
		t.Fatalf("second Complete: %v, want EALREADY", err)
	}
	if err := r.Reject(RejectReset); !errors.Is(err, syscall.EALREADY) {
		t.Fatalf("Reject after Complete: %v, want EALREADY", err)
	}
	st := s.p.HoldSYNStats()
	if st.Held != 1 || st.Retrans != 2 || st.Completed != 1 || s.p.Stats().PassiveOpens != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// A SYN on a held request's 4-tuple with another sequence number (a
// spoofer who guessed the client's port, or the client's new attempt)
// is dropped and counted: the SYN-ACK acknowledges the first SYN, whose
// sender retransmits it; a spoofed SYN cannot make the answer fail.
// (It replaced the request before, and the SYN-ACK acknowledged 77001.)
func TestHoldSYNOtherSeqIgnored(t *testing.T) {
	s := newScript(t, Config{})
	l := s.holdListener(8, 0)
	s.inject(seg{flags: fS, seq: 1000, win: 65535, opts: noOpts})
	r := nextReq(t, l)
	s.inject(seg{flags: fS, seq: 77000, win: 1024, opts: peerSynOpts(9)})
	s.expectNone("SYN with another sequence number")
	if _, err := l.NextSynRequest(); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("the other SYN made a request: %v", err)
	}
	if st := s.p.HoldSYNStats(); st.SeqMismatch != 1 || st.Retrans != 0 || st.Held != 1 {
		t.Fatalf("stats %+v", st)
	}
	if _, err := r.Complete(); err != nil {
		t.Fatal(err)
	}
	sa := s.expectOne("SYN-ACK")
	if sa.h.Ack != 1001 || sa.h.Options.HasTS {
		t.Fatalf("SYN-ACK %v follows the other SYN, want ack 1001 and no timestamp", sa)
	}
}

// A SYN's data is not kept nor acknowledged (as a Linux listener
// without Fast Open): the SYN-ACK acknowledges the SYN alone, and a
// reset acknowledges the data too, as a closed port's reset does (it
// acknowledged the SYN alone before). Both are counted.
func TestHoldSYNData(t *testing.T) {
	s := newScript(t, Config{})
	l := s.holdListener(8, 0)
	s.inject(seg{flags: fS, seq: 1000, win: 65535, opts: noOpts, data: []byte("early data")})
	if err := nextReq(t, l).Reject(RejectReset); err != nil {
		t.Fatal(err)
	}
	check(t, "reset", s.expectOne("reset"), fR|fA, 0, 1011, 0)
	s.inject(seg{flags: fS, seq: 5000, win: 65535, opts: noOpts, data: []byte("again")})
	if _, err := nextReq(t, l).Complete(); err != nil {
		t.Fatal(err)
	}
	if sa := s.expectOne("SYN-ACK"); sa.h.Ack != 5001 {
		t.Fatalf("SYN-ACK %v acknowledges the SYN's data", sa)
	}
	if st := s.p.HoldSYNStats(); st.SynData != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// Shortening the hold timeout applies to the requests already held
// (they waited for the old timeout before).
func TestHoldSYNTimeoutChange(t *testing.T) {
	s := newScript(t, Config{})
	l := s.holdListener(8, 30*time.Second)
	s.synFrom(40001, 1000, noOpts)
	s.clk.Advance(time.Second)
	if err := l.SetHoldSYN(true, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	s.clk.Advance(time.Second)
	if st := s.p.HoldSYNStats(); st.Expired != 1 {
		t.Fatalf("2s after the SYN with a 2s timeout: %+v", st)
	}
	// Lengthened: a new request waits for the new timeout.
	if err := l.SetHoldSYN(true, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	s.synFrom(40002, 1000, noOpts)
	s.clk.Advance(9 * time.Second)
	if st := s.p.HoldSYNStats(); st.Expired != 1 {
		t.Fatalf("expired before 10s: %+v", st)
	}
	s.clk.Advance(time.Second)
	if st := s.p.HoldSYNStats(); st.Expired != 2 {
		t.Fatalf("not expired after 10s: %+v", st)
	}
}

// Reject with a reset answers the SYN as a closed port does: RST|ACK
// acknowledging it, from the address the client connected to.
func TestHoldSYNRejectReset(t *testing.T) {
	s := newScript(t, Config{})
	l := s.holdListener(8, 0)
	s.inject(seg{flags: fS, seq: 1000, win: 65535, opts: peerSynOpts(1)})
	r := nextReq(t, l)
	if err := r.Reject(RejectReset); err != nil {
		t.Fatal(err)
	}
	rst := s.expectOne("reset")
	check(t, "reset", rst, fR|fA, 0, 1001, 0)
	if rst.local != s.local || rst.remote != s.remote {
		t.Fatalf("reset %v", rst)
	}
	if _, err := r.Complete(); !errors.Is(err, syscall.EALREADY) {
		t.Fatalf("Complete after Reject: %v", err)
	}
	// The client's next SYN is a new request.
	s.inject(seg{flags: fS, seq: 5000, win: 65535, opts: noOpts})
	s.expectNone("new SYN")
	if r2 := nextReq(t, l); r2 == r {
		t.Fatal("same request")
	}
	if st := s.p.HoldSYNStats(); st.Held != 2 || st.Reset != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// A silent rejection sends nothing; an ICMP one on a host that cannot
// send ICMP is EOPNOTSUPP and leaves the request to answer otherwise.
func TestHoldSYNRejectSilentAndNoICMP(t *testing.T) {
	s := newScript(t, Config{})
	l := s.holdListener(8, 0)
	s.inject(seg{flags: fS, seq: 1000, win: 65535, opts: noOpts})
	r := nextReq(t, l)
	if err := r.Reject(RejectHostUnreach); !errors.Is(err, syscall.EOPNOTSUPP) {
		t.Fatalf("ICMP reject on the fake host: %v, want EOPNOTSUPP", err)
	}
	if err := r.Reject(Reject(99)); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("unknown reject: %v, want EINVAL", err)
	}
	if err := r.Reject(RejectSilent); err != nil {
		t.Fatal(err)
	}
	s.expectNone("silent reject")
	if st := s.p.HoldSYNStats(); st.Silent != 1 || st.ICMP != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// A request nobody answers within the timeout expires, queued or
// taken: it is counted, the client hears nothing, and a late answer is
// ETIMEDOUT.
func TestHoldSYNExpiry(t *testing.T) {
	s := newScript(t, Config{})
	l := s.holdListener(8, 5*time.Second)
	s.synFrom(40001, 1000, noOpts)
	taken := nextReq(t, l)
	s.clk.Advance(2 * time.Second)
	s.synFrom(40002, 2000, noOpts) // stays queued
	s.clk.Advance(2 * time.Second)
	if st := s.p.HoldSYNStats(); st.Expired != 0 {
		t.Fatalf("expired early: %+v", st)
	}
	s.clk.Advance(time.Second) // the first is 5s old
	if st := s.p.HoldSYNStats(); st.Expired != 1 {
		t.Fatalf("after 5s: %+v", st)
	}
	if _, err := taken.Complete(); !errors.Is(err, syscall.ETIMEDOUT) {
		t.Fatalf("Complete of an expired request: %v, want ETIMEDOUT", err)
	}
	s.clk.Advance(2 * time.Second) // the second is 5s old
	if st := s.p.HoldSYNStats(); st.Expired != 2 {
		t.Fatalf("after 7s: %+v", st)
	}
	if _, err := l.NextSynRequest(); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("an expired request still queued: %v", err)
	}
	if l.Readiness(waiter.EventIn) != 0 {
		t.Fatal("readable after expiry")
	}
	s.expectNone("expiry")
	// The client's retransmission is a new request.
	s.synFrom(40001, 1000, noOpts)
	if r := nextReq(t, l); r.Remote().Port() != 40001 {
		t.Fatalf("request from %v", r.Remote())
	}
}

// The requests a listener holds, queued or taken, are at most its
// backlog: a SYN beyond is dropped and counted, and an answered request
// makes room. This bounds the memory a SYN flood can take.
func TestHoldSYNQueueBound(t *testing.T) {
	s := newScript(t, Config{NoSynCookies: true}) // with cookies: TestHoldSYNCookieFallback
	l := s.holdListener(4, 0)
	for i := range 6 {
		s.synFrom(uint16(41000+i), uint32(1000*i), noOpts)
	}
	s.expectNone("flood")
	st := s.p.HoldSYNStats()
	if st.Held != 4 || st.QueueFull != 2 || s.p.Stats().ListenDrops != 2 {
		t.Fatalf("after 6 SYNs with backlog 4: %+v, ListenDrops %d", st, s.p.Stats().ListenDrops)
	}
	a, b := nextReq(t, l), nextReq(t, l)
	s.synFrom(41010, 1, noOpts) // taken but unanswered still count
	if st := s.p.HoldSYNStats(); st.QueueFull != 3 {
		t.Fatalf("taken requests did not count: %+v", st)
	}
	a.Reject(RejectSilent)
	b.Reject(RejectSilent)
	s.synFrom(41011, 1, noOpts)
	s.synFrom(41012, 1, noOpts)
	s.synFrom(41013, 1, noOpts)
	if st := s.p.HoldSYNStats(); st.Held != 6 || st.QueueFull != 4 {
		t.Fatalf("after answering two: %+v", st)
	}
	// The retransmission of a held SYN is absorbed even when full.
	s.synFrom(41011, 1, noOpts)
	if st := s.p.HoldSYNStats(); st.Retrans != 1 || st.QueueFull != 4 {
		t.Fatalf("retransmission when full: %+v", st)
	}
}

// Closing the listener drops its requests, silently: taken ones can no
// longer be answered.
func TestHoldSYNListenerClose(t *testing.T) {
	s := newScript(t, Config{})
	l := s.holdListener(8, 0)
	s.synFrom(40001, 1000, noOpts)
	s.synFrom(40002, 2000, noOpts)
	r := nextReq(t, l)
	l.Close()
	s.expectNone("close")
	if _, err := r.Complete(); !errors.Is(err, syscall.ECONNABORTED) {
		t.Fatalf("Complete after close: %v, want ECONNABORTED", err)
	}
	if err := r.Reject(RejectReset); !errors.Is(err, syscall.ECONNABORTED) {
		t.Fatalf("Reject after close: %v, want ECONNABORTED", err)
	}
	if st := s.p.HoldSYNStats(); st.Aborted != 2 {
		t.Fatalf("stats %+v", st)
	}
	s.clk.Advance(time.Minute) // the expiry timer finds nothing
	if st := s.p.HoldSYNStats(); st.Expired != 0 {
		t.Fatalf("expired after close: %+v", st)
	}
}

// Leaving the mode drops what was held; SYNs are then answered as
// usual. The mode is refused on a connected endpoint.
func TestHoldSYNOff(t *testing.T) {
	s := newScript(t, Config{})
	l := s.holdListener(8, 0)
	s.synFrom(40001, 1000, noOpts)
	if err := l.SetHoldSYN(false, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := l.NextSynRequest(); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("NextSynRequest off: %v", err)
	}
	s.synFrom(40001, 1000, noOpts)
	if sa := s.expectOne("SYN-ACK"); sa.h.Flags != fSA {
		t.Fatalf("%v", sa)
	}
	if st := s.p.HoldSYNStats(); st.Aborted != 1 {
		t.Fatalf("stats %+v", st)
	}
	if err := l.SetHoldSYN(true, -time.Second); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("negative timeout: %v", err)
	}
	_, c, _ := newScript(t, Config{}).passiveOpen(noOpts)
	if err := c.SetHoldSYN(true, 0); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("on a connection: %v, want EINVAL", err)
	}
}

// A completed request whose client resets, or never sends its ACK,
// fails as a connect does: the error is in SoError.
func TestHoldSYNHandshakeFails(t *testing.T) {
	s := newScript(t, Config{SynAckRetries: 1})
	l := s.holdListener(8, 0)
	s.inject(seg{flags: fS, seq: 1000, win: 65535, opts: noOpts})
	c, err := nextReq(t, l).Complete()
	if err != nil {
		t.Fatal(err)
	}
	sa := s.expectOne("SYN-ACK")
	s.inject(seg{flags: fR, seq: 1001, ack: sa.h.Seq + 1})
	if c.State() != StateClosed || c.Readiness(waiter.EventOut) == 0 {
		t.Fatalf("after the client's reset: %v", c.State())
	}
	if err := c.SoError(); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("SoError %v, want ECONNREFUSED", err)
	}
	s.remote = netip.AddrPortFrom(remoteIP, 40009)
	s.inject(seg{flags: fS, seq: 1000, win: 65535, opts: noOpts})
	c, err = nextReq(t, l).Complete()
	if err != nil {
		t.Fatal(err)
	}
	s.expectOne("SYN-ACK")
	s.clk.Advance(10 * time.Second)
	if err := c.SoError(); !errors.Is(err, syscall.ETIMEDOUT) || c.State() != StateClosed {
		t.Fatalf("no ACK: %v %v, want ETIMEDOUT", c.State(), err)
	}
}

// The diverted SYN path of a held-SYN listener allocates only the
// request.
func TestHoldSYNAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under -race")
	}
	s := newScript(t, Config{})
	l := s.p.NewEndpoint()
	l.SetTransparent(true)
	if err := l.SetHoldSYN(true, 0); err != nil {
		t.Fatal(err)
	}
	if err := l.Bind(netip.AddrPortFrom(netip.IPv4Unspecified(), 9000)); err != nil {
		t.Fatal(err)
	}
	if err := l.Listen(8); err != nil {
		t.Fatal(err)
	}
	h := wire.TCPHeader{SrcPort: 40000, DstPort: 443, Seq: 1000, Flags: fS, Window: 65535, Options: peerSynOpts(1)}
	b := make([]byte, h.Len())
	h.Put(b)
	src, dst := s.remote.Addr(), netip.MustParseAddr("198.51.100.7")
	run := func() {
		s.p.HandleDiverted(src, dst, 0, b, 9000)
		s.p.HandleDiverted(src, dst, 0, b, 9000) // a retransmission
		r, err := l.NextSynRequest()
		if err != nil {
			t.Fatal(err)
		}
		if r.Local() != netip.AddrPortFrom(dst, 443) {
			t.Fatalf("request for %v", r.Local())
		}
		r.Reject(RejectSilent)
	}
	run() // the map, ring and timer
	if n := testing.AllocsPerRun(200, run); n > 1 {
		t.Fatalf("%v allocations per held SYN, want at most 1 (the request)", n)
	}
	if st := s.p.HoldSYNStats(); st.Held != 202 || st.Retrans != 202 { // AllocsPerRun runs once more to warm up
		t.Fatalf("stats %+v", st)
	}
}

// BenchmarkHoldSYN is one held connection attempt on the diverted path:
// the SYN held, its retransmission absorbed, the request taken and
// rejected with a reset.
func BenchmarkHoldSYN(b *testing.B) {
	host := newFakeHost(clock.NewManual(epoch), localIP)
	host.hook = func(*Segment) {} // the resets go nowhere
	p := NewProtocol(host, Config{Seed: []byte("bench")})
	l := p.NewEndpoint()
	l.SetTransparent(true)
	l.SetHoldSYN(true, 0)
	l.Bind(netip.AddrPortFrom(netip.IPv4Unspecified(), 9000))
	l.Listen(64)
	h := wire.TCPHeader{SrcPort: 40000, DstPort: 443, Seq: 1000, Flags: fS, Window: 65535, Options: peerSynOpts(1)}
	seg := make([]byte, h.Len())
	h.Put(seg)
	src, dst := remoteIP, netip.MustParseAddr("198.51.100.7")
	b.ReportAllocs()
	for b.Loop() {
		p.HandleDiverted(src, dst, 0, seg, 9000)
		p.HandleDiverted(src, dst, 0, seg, 9000)
		r, err := l.NextSynRequest()
		if err != nil {
			b.Fatal(err)
		}
		r.Reject(RejectReset)
	}
}

// Accept on a listener holding SYNs is EINVAL, not EAGAIN: a held SYN
// makes the listener readable, so a blocking accept (or a level-
// triggered poll loop) woken by it and told EAGAIN would spin. (It was
// EAGAIN.)
func TestHoldSYNAcceptEINVAL(t *testing.T) {
	s := newScript(t, Config{})
	l := s.holdListener(8, 0)
	s.inject(seg{flags: fS, seq: 1000, win: 65535, opts: noOpts})
	if l.Readiness(waiter.EventIn) == 0 {
		t.Fatal("not readable with a held SYN")
	}
	if _, _, err := l.Accept(); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("Accept on a held-SYN listener: %v, want EINVAL", err)
	}
	// Out of the mode, Accept is as before.
	if err := l.SetHoldSYN(false, 0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.Accept(); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("Accept after the mode: %v, want EAGAIN", err)
	}
}

// A reset acknowledges the data of the SYN's latest retransmission.
func TestHoldSYNDataOnRetransmission(t *testing.T) {
	s := newScript(t, Config{})
	l := s.holdListener(8, 0)
	s.inject(seg{flags: fS, seq: 1000, win: 65535, opts: noOpts})
	s.inject(seg{flags: fS, seq: 1000, win: 65535, opts: noOpts, data: []byte("abc")})
	if err := nextReq(t, l).Reject(RejectReset); err != nil {
		t.Fatal(err)
	}
	check(t, "reset", s.expectOne("reset"), fR|fA, 0, 1004, 0)
}

// Complete racing with the listener's close: each request is either
// completed (a connection, the caller's) or aborted (ECONNABORTED),
// never both, and the counters add up.
func TestHoldSYNCompleteRacesClose(t *testing.T) {
	for range 20 {
		s := newScript(t, Config{})
		l := s.holdListener(8, 0)
		for i := range 8 {
			s.synFrom(uint16(42000+i), uint32(i)*1000, noOpts)
		}
		var rs []*SynRequest
		for range 8 {
			rs = append(rs, nextReq(t, l))
		}
		errs := make(chan error, 8)
		for _, r := range rs {
			go func() {
				c, err := r.Complete()
				if err == nil {
					c.Close()
				}
				errs <- err
			}()
		}
		l.Close()
		ok := 0
		for range 8 {
			switch err := <-errs; {
			case err == nil:
				ok++
			case !errors.Is(err, syscall.ECONNABORTED):
				t.Fatalf("Complete: %v", err)
			}
		}
		st := s.p.HoldSYNStats()
		if st.Completed != uint64(ok) || st.Completed+st.Aborted != 8 {
			t.Fatalf("%d completed; stats %+v", ok, st)
		}
	}
}

// A SYN with no route back to its sender (a source such as ::, which
// the IP layer lets through) is dropped and counted, not held: the
// application would act on a request Complete cannot answer (a relay
// dials). (It was held.)
func TestHoldSYNNoRoute(t *testing.T) {
	s := newScript(t, Config{})
	l := s.holdListener(8, 0)
	h := wire.TCPHeader{SrcPort: 40000, DstPort: s.local.Port(), Seq: 1000, Flags: fS, Window: 65535}
	b := make([]byte, h.Len())
	h.Put(b)
	s.p.HandleSegment(netip.MustParseAddr("10.99.0.1"), s.local.Addr(), 0, b) // fakeHost: no route
	s.expectNone("SYN with no route back")
	if _, err := l.NextSynRequest(); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("held: %v", err)
	}
	if st := s.p.HoldSYNStats(); st.NoRoute != 1 || st.Held != 0 || s.p.Stats().ListenDrops != 1 {
		t.Fatalf("stats %+v, ListenDrops %d", st, s.p.Stats().ListenDrops)
	}
}

// A connection accepted into the queue before held SYNs were turned on
// (SetHoldSYN after Listen) does not make the listener readable: a
// blocking AcceptSYN woken by it would find no request and spin. Accept
// still takes it. (It was readable.)
func TestHoldSYNTurnedOnWithAcceptQueue(t *testing.T) {
	s := newScript(t, Config{})
	l := s.p.NewEndpoint()
	if err := l.Bind(s.local); err != nil {
		t.Fatal(err)
	}
	if err := l.Listen(16); err != nil {
		t.Fatal(err)
	}
	s.inject(seg{flags: fS, seq: 1000, win: 65535, opts: noOpts})
	sa := s.expectOne("SYN-ACK")
	s.inject(seg{flags: fA, seq: 1001, ack: sa.h.Seq + 1, win: 65535})
	s.expectNone("handshake ACK")
	if err := l.SetHoldSYN(true, 0); err != nil {
		t.Fatal(err)
	}
	if l.Readiness(waiter.EventIn) == 0 {
		t.Fatal("not readable with a connection in the accept queue")
	}
	r := nextReq(t, l)
	if !r.Established() || r.Remote() != s.remote {
		t.Fatalf("the queued connection: established %v, from %v", r.Established(), r.Remote())
	}
	if c, err := r.Complete(); err != nil || c.State() != StateEstablished {
		t.Fatalf("Complete of the queued connection: %v", err)
	}
	if l.Readiness(waiter.EventIn) != 0 {
		t.Fatal("readable with nothing left")
	}
	s.synFrom(41000, 9000, noOpts)
	if l.Readiness(waiter.EventIn) == 0 {
		t.Fatal("not readable with a request")
	}
}

// A SYN beyond the backlog of held requests is answered with a SYN
// cookie, as Linux's full SYN queue falls back to cookies: a flood of
// spoofed SYNs fills the backlog but cannot lock a genuine client out.
// Its connection completes at once and comes from NextSynRequest
// established: Complete hands it over, Reject resets it.
func TestHoldSYNCookieFallback(t *testing.T) {
	s := newScript(t, Config{})
	l := s.holdListener(2, 0)
	s.synFrom(41000, 1000, noOpts)
	s.synFrom(41001, 2000, noOpts)
	s.expectNone("held SYNs")
	// The backlog is full: the genuine client's SYN gets a cookie.
	s.inject(seg{flags: fS, seq: 5000, win: 65535, opts: peerSynOpts(100)})
	sa := s.expectOne("cookie SYN-ACK")
	if sa.h.Flags != fSA || sa.h.Ack != 5001 {
		t.Fatalf("answer %v", sa)
	}
	st := s.p.HoldSYNStats()
	if st.Held != 2 || st.Cookies != 1 || st.QueueFull != 0 || s.p.Stats().SynCookiesSent != 1 {
		t.Fatalf("stats %+v, cookies sent %d", st, s.p.Stats().SynCookiesSent)
	}
	s.inject(seg{flags: fA, seq: 5001, ack: sa.h.Seq + 1, win: 100, opts: wire.TCPOptions{HasTS: true, TSVal: 101, TSEcr: sa.h.Options.TSVal}})
	s.expectNone("handshake ACK")
	// The held requests come first, then the established one.
	a, b, c := nextReq(t, l), nextReq(t, l), nextReq(t, l)
	if a.Established() || b.Established() || !c.Established() || c.Remote() != s.remote || c.Local() != s.local {
		t.Fatalf("requests: %v %v %v (established %v %v %v)", a.Remote(), b.Remote(), c.Remote(), a.Established(), b.Established(), c.Established())
	}
	if _, err := l.NextSynRequest(); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("a fourth request: %v", err)
	}
	conn, err := c.Complete()
	if err != nil || conn.State() != StateEstablished || conn.Readiness(waiter.EventOut) == 0 {
		t.Fatalf("Complete of the cookie's connection: %v", err)
	}
	if i := conn.Info(); !i.TimestampsOK || !i.SACKOK {
		t.Fatalf("the cookie lost the options: %+v", i)
	}
	if _, err := c.Complete(); !errors.Is(err, syscall.EALREADY) {
		t.Fatalf("second Complete: %v", err)
	}
	s.expectNone("Complete of an established connection")

	// A second cookie connection, rejected: whatever the reason, the
	// client hears a reset on its open connection.
	a.Reject(RejectSilent)
	b.Reject(RejectSilent)
	s.synFrom(42000, 1, noOpts)
	s.synFrom(42001, 1, noOpts)
	s.synFrom(42002, 7000, noOpts)
	sa = s.expectOne("second cookie SYN-ACK")
	h := wire.TCPHeader{SrcPort: 42002, DstPort: s.local.Port(), Seq: 7001, Ack: sa.h.Seq + 1, Flags: fA, Window: 100}
	buf := make([]byte, h.Len())
	h.Put(buf)
	s.p.HandleSegment(s.remote.Addr(), s.local.Addr(), 0, buf)
	nextReq(t, l)
	nextReq(t, l)
	r := nextReq(t, l)
	if !r.Established() {
		t.Fatal("the third request is not the cookie's connection")
	}
	if err := r.Reject(RejectHostUnreach); err != nil {
		t.Fatal(err)
	}
	if rst := s.expectOne("reset"); rst.h.Flags&fR == 0 || rst.h.DstPort != 42002 {
		t.Fatalf("rejection %v, want a reset to port 42002", rst)
	}
	if st := s.p.HoldSYNStats(); st.Cookies != 2 || st.Established != 2 || st.Reset != 1 || st.Completed != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// The SYN-ACK follows the latest retransmission's ECN request: a Linux
// client that retransmits its SYN drops ECE|CWR (tcp_ecn_fallback), and
// the answer must then not set ECE.
func TestHoldSYNECNFallback(t *testing.T) {
	s := newScript(t, Config{})
	l := s.holdListener(8, 0)
	s.inject(seg{flags: fS | wire.TCPFlagECE | wire.TCPFlagCWR, seq: 1000, win: 65535, opts: noOpts})
	s.inject(seg{flags: fS, seq: 1000, win: 65535, opts: noOpts})
	if _, err := nextReq(t, l).Complete(); err != nil {
		t.Fatal(err)
	}
	if sa := s.expectOne("SYN-ACK"); sa.h.Flags != fSA {
		t.Fatalf("SYN-ACK %v, want no ECE after a SYN without ECN", sa)
	}
	s.synFrom(41000, 2000, noOpts)
	h := wire.TCPHeader{SrcPort: 41001, DstPort: s.local.Port(), Seq: 3000, Flags: fS | wire.TCPFlagECE | wire.TCPFlagCWR, Window: 65535}
	b := make([]byte, h.Len())
	h.Put(b)
	s.p.HandleSegment(s.remote.Addr(), s.local.Addr(), 0, b)
	nextReq(t, l).Reject(RejectSilent)
	if _, err := nextReq(t, l).Complete(); err != nil {
		t.Fatal(err)
	}
	if sa := s.expectOne("SYN-ACK"); sa.h.Flags != fSA|wire.TCPFlagECE {
		t.Fatalf("SYN-ACK %v, want ECE for an ECN-setup SYN", sa)
	}
}
