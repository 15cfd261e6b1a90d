package tcp

import (
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/waiter"
)

// advanceTo moves the clock to base+at.
func (s *script) advanceTo(base, at time.Duration) {
	s.t.Helper()
	d := base + at - s.p.now()
	if d < 0 {
		s.t.Fatalf("advanceTo %v: already %v past", at, -d)
	}
	s.clk.Advance(d)
}

// endsAt checks that c is still open 5 ms before base+at and closed 5 ms
// after (the handshake's RTT sample of 1 us makes the RTO 200.001 ms,
// which doubled and summed shifts the end by a few ms), with err (nil:
// any error).
func (s *script) endsAt(c *Endpoint, base, at time.Duration, err error) {
	s.t.Helper()
	s.advanceTo(base, at-5*time.Millisecond)
	if st := c.State(); st == StateClosed {
		s.t.Fatalf("closed before %v", at)
	}
	s.clk.Advance(10 * time.Millisecond)
	if st := c.State(); st != StateClosed {
		s.t.Fatalf("still %v at %v", st, at)
	}
	if err != nil {
		if _, got := c.Read(make([]byte, 1), false); !errors.Is(got, err) {
			s.t.Fatalf("read after the timeout: %v, want %v", got, err)
		}
	}
}

func TestRetriesTimeoutModel(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want time.Duration
	}{{15, 924600 * time.Millisecond}, {8, 102200 * time.Millisecond}, {4, 6200 * time.Millisecond}, {0, 200 * time.Millisecond}} {
		if got := retriesTimeout(tc.n); got != tc.want {
			t.Errorf("retriesTimeout(%d) = %v, want %v", tc.n, got, tc.want)
		}
	}
}

// zeroWindow opens a connection whose peer then closes its window, and
// queues data that cannot go out.
func zeroWindow(t *testing.T, s *script) (*Endpoint, uint32, time.Duration) {
	_, c, iss := s.passiveOpen(noOpts)
	s.inject(seg{flags: fA, seq: 1001, ack: iss + 1, win: 0})
	if rto := c.Info().RTO; rto < minRTO || rto > minRTO+time.Millisecond/100 {
		t.Fatalf("RTO %v", rto)
	}
	c.Write([]byte("blocked"))
	s.expectNone("zero window")
	return c, iss, s.p.now()
}

// TestZeroWindowSilentPeer: unanswered zero-window probes end the
// connection under the retries2 rule (15 probes, 924.6 s), with
// ETIMEDOUT; it used to probe forever.
func TestZeroWindowSilentPeer(t *testing.T) {
	s := newScript(t, Config{})
	c, _, t0 := zeroWindow(t, s)
	s.endsAt(c, t0, 924600*time.Millisecond, syscall.ETIMEDOUT)
	if st := s.p.Stats(); st.ZeroWindowProbes != 15 || st.AbortOnTimeout != 1 {
		t.Fatalf("probes %d, timeouts %d", st.ZeroWindowProbes, st.AbortOnTimeout)
	}
}

// answerProbes advances to base+until in steps, answering every probe
// with a zero window.
func answerProbes(s *script, iss uint32, base, until time.Duration) {
	for s.p.now() < base+until {
		s.clk.Advance(min(100*time.Millisecond, base+until-s.p.now()))
		for _, x := range s.out() {
			if x.h.Flags&fR != 0 {
				return
			}
			s.inject(seg{flags: fA, seq: 1001, ack: iss + 1, win: 0})
		}
	}
}

// TestZeroWindowAnsweringPeer: a peer that answers the probes keeps the
// connection open (RFC 1122 4.2.2.17).
func TestZeroWindowAnsweringPeer(t *testing.T) {
	s := newScript(t, Config{})
	c, iss, t0 := zeroWindow(t, s)
	answerProbes(s, iss, t0, 2*time.Hour)
	if c.State() != StateEstablished {
		t.Fatalf("%v after two hours of answered probes", c.State())
	}
}

// TestOrphanZeroWindow: a closed socket whose data the peer never takes
// follows tcp_orphan_retries: 8 unanswered probes (102.2 s); answered
// probes end it too once the probe interval reached its maximum (the
// 11th probe, 324.6 s). It used to stay in FIN_WAIT1 for ever.
func TestOrphanZeroWindow(t *testing.T) {
	s := newScript(t, Config{})
	c, _, t0 := zeroWindow(t, s)
	c.Close()
	if c.State() != StateFinWait1 {
		t.Fatal(c.State())
	}
	s.endsAt(c, t0, 102200*time.Millisecond, nil)
	if st := s.p.Stats(); st.ZeroWindowProbes != 8 || st.AbortOnTimeout != 1 {
		t.Fatalf("probes %d, timeouts %d", st.ZeroWindowProbes, st.AbortOnTimeout)
	}
	if len(s.p.Table()) != 1 {
		t.Fatalf("table %v", s.p.Table())
	}

	s = newScript(t, Config{})
	c, iss, t0 := zeroWindow(t, s)
	c.Close()
	answerProbes(s, iss, t0, 324500*time.Millisecond)
	if c.State() != StateFinWait1 {
		t.Fatalf("%v before the probe interval reached its maximum", c.State())
	}
	s.clk.Advance(200 * time.Millisecond)
	if c.State() != StateClosed {
		t.Fatalf("%v at 324.7 s", c.State())
	}
}

// TestRetransmitTimeoutOrphan: unacknowledged data ends a connection
// after the retries2 rule, or tcp_orphan_retries (102.2 s) once closed.
func TestRetransmitTimeoutOrphan(t *testing.T) {
	for _, orphan := range []bool{false, true} {
		s := newScript(t, Config{})
		_, c, _ := s.passiveOpen(noOpts)
		t0 := s.p.now()
		c.Write([]byte("hello"))
		want, err := 924600*time.Millisecond, error(syscall.ETIMEDOUT)
		if orphan {
			c.Close()
			want, err = 102200*time.Millisecond, nil
		}
		s.endsAt(c, t0, want, err)
		if st := s.p.Stats(); st.AbortOnTimeout != 1 {
			t.Fatalf("orphan %v: timeouts %d", orphan, st.AbortOnTimeout)
		}
	}
}

// TestOrphanFinWait2Timeout: a closed socket waits at most 60 s in
// FIN_WAIT2 for the peer's FIN (tcp_fin_timeout).
func TestOrphanFinWait2Timeout(t *testing.T) {
	s := newScript(t, Config{})
	_, c, iss := s.passiveOpen(noOpts)
	c.Close()
	s.expectOne("FIN")
	s.inject(seg{flags: fA, seq: 1001, ack: iss + 2, win: 65535})
	if c.State() != StateFinWait2 {
		t.Fatal(c.State())
	}
	s.endsAt(c, s.p.now(), 60*time.Second, nil)
}

// TestUserTimeout: TCP_USER_TIMEOUT ends a connection whose data stays
// unacknowledged that long after it was sent (the retransmission timer
// is clamped to it), and one whose zero-window probes stay unanswered
// that long after the first.
func TestUserTimeout(t *testing.T) {
	s := newScript(t, Config{})
	_, c, _ := s.passiveOpen(noOpts)
	if err := c.SetUserTimeout(-1); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("negative: %v", err)
	}
	if err := c.SetUserTimeout(5000); err != nil || c.UserTimeout() != 5000 {
		t.Fatalf("set: %v, get %d", err, c.UserTimeout())
	}
	t0 := s.p.now()
	c.Write([]byte("hello"))
	s.endsAt(c, t0, 5*time.Second, syscall.ETIMEDOUT)
	if st := s.p.Stats(); st.Timeouts != 4 {
		t.Fatalf("%d retransmission timeouts before the user timeout, want 4 (0.2, 0.6, 1.4, 3 s)", st.Timeouts)
	}

	s = newScript(t, Config{})
	c, _, t0 = zeroWindow(t, s)
	c.SetUserTimeout(3000)
	// Probes at 0.2, 0.6, 1.4 and 3 s; the first was 3 s ago at 3.2 s.
	s.endsAt(c, t0, 3200*time.Millisecond, syscall.ETIMEDOUT)
	if st := s.p.Stats(); st.ZeroWindowProbes != 4 {
		t.Fatalf("probes %d", st.ZeroWindowProbes)
	}
}

// TestICMPErrorsSoftWhenSynchronized: no ICMP error aborts an
// established connection, not even port or protocol unreachable (RFC
// 5927 7), and none is returned by Read; SO_ERROR reports it once, an
// ACK from the peer forgets it, and a later timeout gives it as reason.
func TestICMPErrorsSoftWhenSynchronized(t *testing.T) {
	for _, tc := range []struct {
		kind ErrorKind
		err  error
	}{
		{ErrPortUnreach, syscall.ECONNREFUSED}, {ErrProtoUnreach, syscall.ENOPROTOOPT},
		{ErrParamProblem, syscall.EPROTO},
		{ErrHostUnreach, syscall.EHOSTUNREACH}, {ErrNetUnreach, syscall.ENETUNREACH},
		{ErrAdminProhibited, syscall.EHOSTUNREACH}, {ErrTimeExceeded, syscall.EHOSTUNREACH},
	} {
		s := newScript(t, Config{})
		_, c, iss := s.passiveOpen(noOpts)
		c.Write([]byte("x"))
		s.out()
		s.p.HandleError(s.local, s.remote, iss+1, tc.kind, 0)
		if c.State() != StateEstablished {
			t.Fatalf("%v: %v", tc.kind, c.State())
		}
		if r := c.Readiness(waiter.EventErr | waiter.EventIn); r != 0 {
			t.Fatalf("%v: readiness %v", tc.kind, r)
		}
		if _, err := c.Read(make([]byte, 8), false); !errors.Is(err, syscall.EAGAIN) {
			t.Fatalf("%v: read %v", tc.kind, err)
		}
		if err := c.SoError(); !errors.Is(err, tc.err) {
			t.Fatalf("%v: SO_ERROR %v", tc.kind, err)
		}
		if err := c.SoError(); err != nil {
			t.Fatalf("%v: SO_ERROR again %v", tc.kind, err)
		}
		// The connection works on.
		s.inject(seg{flags: fPA, seq: 1001, ack: iss + 2, win: 65535, data: []byte("reply")})
		if got := readAll(c); string(got) != "reply" {
			t.Fatalf("%v: read %q", tc.kind, got)
		}
		// An acceptable ACK forgets the soft error (Linux's tcp_ack).
		s.p.HandleError(s.local, s.remote, iss+2, tc.kind, 0)
		c.Write([]byte("y"))
		s.inject(seg{flags: fA, seq: 1006, ack: iss + 3, win: 65535})
		if err := c.SoError(); err != nil {
			t.Fatalf("%v: SO_ERROR after an ACK %v", tc.kind, err)
		}
		// A connection that times out reports the soft error.
		c.Write([]byte("z"))
		t0 := s.p.now()
		s.p.HandleError(s.local, s.remote, iss+3, tc.kind, 0)
		s.endsAt(c, t0, 924600*time.Millisecond, tc.err)
	}
}

// TestICMPHardErrorsDuringConnect: in SYN_SENT, port and protocol
// unreachable and parameter problem abort with Linux's errnos:
// ECONNREFUSED, ENOPROTOOPT (icmp_err_convert) and EPROTO (tcp_v4_err).
// An errno the stack gives wins over the kind's (ICMPv6 prohibited:
// EACCES, icmpv6_err_convert).
func TestICMPHardErrorsDuringConnect(t *testing.T) {
	for _, c := range []struct {
		ne   NetError
		want syscall.Errno
	}{
		{NetError{Kind: ErrPortUnreach}, syscall.ECONNREFUSED},
		{NetError{Kind: ErrProtoUnreach}, syscall.ENOPROTOOPT},
		{NetError{Kind: ErrParamProblem}, syscall.EPROTO},
		{NetError{Kind: ErrHostUnreach, Errno: syscall.EACCES}, syscall.EACCES},
	} {
		s := newScript(t, Config{})
		e := s.p.NewEndpoint()
		e.Connect(s.remote)
		syn := s.expectOne("SYN")
		s.p.HandleNetError(syn.local, s.remote, syn.h.Seq, &c.ne)
		if e.State() != StateClosed {
			t.Fatalf("%+v: %v", c.ne, e.State())
		}
		if err := e.SoError(); !errors.Is(err, c.want) {
			t.Fatalf("%+v: %v, want %v", c.ne, err, c.want)
		}
	}
}

// TestSoftErrorDuringConnect: every ICMP error that reaches the
// connection in SYN_SENT ends the connect, also those that are soft once
// synchronized and a router's time exceeded (Linux's tcp_v4_err aborts
// on any of them there; an earlier choice here waited for the SYN's
// retransmissions instead). Each is counted as a failed attempt.
func TestSoftErrorDuringConnect(t *testing.T) {
	for _, c := range []struct {
		kind ErrorKind
		want syscall.Errno
	}{
		{ErrTimeExceeded, syscall.EHOSTUNREACH},
		{ErrHostUnreach, syscall.EHOSTUNREACH},
		{ErrNetUnreach, syscall.ENETUNREACH},
		{ErrAdminProhibited, syscall.EHOSTUNREACH},
	} {
		s := newScript(t, Config{})
		e := s.p.NewEndpoint()
		e.Connect(s.remote)
		syn := s.expectOne("SYN")
		fails := s.p.Stats().AttemptFails
		s.p.HandleError(syn.local, s.remote, syn.h.Seq, c.kind, 0)
		if e.State() != StateClosed {
			t.Fatalf("%v in SYN_SENT: %v", c.kind, e.State())
		}
		if err := e.Connect(s.remote); !errors.Is(err, c.want) {
			t.Fatalf("%v: connect reports %v, want %v", c.kind, err, c.want)
		}
		if got := s.p.Stats().AttemptFails - fails; got != 1 {
			t.Fatalf("%v: %d failed attempts counted", c.kind, got)
		}
	}
}

// TestSourceQuenchDuringConnect: a source quench, and an error quoting a
// sequence number the SYN did not use, leave the connect going; the
// handshake then completes with SO_ERROR 0.
func TestSourceQuenchDuringConnect(t *testing.T) {
	s := newScript(t, Config{})
	e := s.p.NewEndpoint()
	e.Connect(s.remote)
	syn := s.expectOne("SYN")
	s.local = syn.local
	s.p.HandleError(syn.local, s.remote, syn.h.Seq, ErrSourceQuench, 0)
	s.p.HandleError(syn.local, s.remote, syn.h.Seq+7, ErrTimeExceeded, 0)
	if e.State() != StateSynSent {
		t.Fatal(e.State())
	}
	s.inject(seg{flags: fSA, seq: 5000, ack: syn.h.Seq + 1, win: 65535, opts: noOpts})
	if e.State() != StateEstablished {
		t.Fatal(e.State())
	}
	if err := e.SoError(); err != nil {
		t.Fatalf("SO_ERROR after the handshake: %v", err)
	}
}

// TestUserTimeoutKeepalive: with TCP_USER_TIMEOUT, keepalive gives up at
// the first probe time at which the peer has been silent that long (and
// at least one probe went unanswered), not after TCP_KEEPCNT probes.
func TestUserTimeoutKeepalive(t *testing.T) {
	s := newScript(t, Config{})
	_, c, _ := s.passiveOpen(noOpts)
	t0 := s.p.now()
	c.SetKeepIdle(10 * time.Second)
	c.SetKeepIntvl(5 * time.Second)
	c.SetKeepCnt(9)
	c.SetUserTimeout(12000)
	c.SetKeepAlive(true)
	// A probe at 10 s (silent 10 s < 12 s); at 15 s the peer has been
	// silent 15 s with a probe unanswered.
	s.endsAt(c, t0, 15*time.Second, syscall.ETIMEDOUT)
	if st := s.p.Stats(); st.KeepaliveProbes != 1 || st.KeepaliveTimeouts != 1 {
		t.Fatalf("probes %d timeouts %d", st.KeepaliveProbes, st.KeepaliveTimeouts)
	}
}

// TestUserTimeoutInherited: an accepted connection takes the listener's
// TCP_USER_TIMEOUT, as in Linux.
func TestUserTimeoutInherited(t *testing.T) {
	s := newScript(t, Config{})
	l := s.p.NewEndpoint()
	l.SetUserTimeout(7000)
	l.Bind(s.local)
	l.Listen(4)
	s.inject(seg{flags: fS, seq: 1000, win: 65535, opts: noOpts})
	sa := s.expectOne("SYN-ACK")
	s.inject(seg{flags: fA, seq: 1001, ack: sa.h.Seq + 1, win: 65535})
	c, _, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if got := c.UserTimeout(); got != 7000 {
		t.Fatalf("accepted connection's user timeout %d", got)
	}
}
