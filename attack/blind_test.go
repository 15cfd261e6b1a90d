package attack

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/tcp"
	"github.com/sockstack/sockstack/wire"
)

// conn is an established connection between the client and the victim,
// with what an on-path observer would know of it (the test's oracle).
type conn struct {
	c, v         *socket.Socket // client and victim sides
	cAddr, vAddr netip.AddrPort
}

// establish connects the client to a victim listener on port and
// exchanges a few bytes each way.
func establish(t *testing.T, l *lab, port int) *conn {
	t.Helper()
	ln := listenTCP(t, l.VNet, port, 16)
	acc := make(chan *socket.Socket, 1)
	go func() {
		s, _, err := ln.Accept()
		if err != nil {
			t.Error(err)
		}
		acc <- s
	}()
	c, err := dialTCP(l.CNet, victimIP.String(), port, time.Minute)
	must(t, err)
	v := <-acc
	if v == nil {
		t.FailNow()
	}
	t.Cleanup(func() { c.Close(); v.Close() })
	c.SetTimeout(time.Minute)
	v.SetTimeout(time.Minute)
	if _, err := c.Send([]byte("hello victim"), 0); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 64)
	if _, err := v.Recv(b, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Send([]byte("hello client"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Recv(b, 0); err != nil {
		t.Fatal(err)
	}
	la, _ := c.GetSockName()
	synctest.Wait()
	return &conn{c: c, v: v, cAddr: la.(*socket.SockaddrInet).AddrPort, vAddr: netip.AddrPortFrom(victimIP, uint16(port))}
}

func tcpInfo(t *testing.T, s *socket.Socket) tcp.Info {
	t.Helper()
	v, err := s.GetSockOpt(socket.SOL_TCP, socket.TCP_INFO)
	must(t, err)
	return v.(tcp.Info)
}

// wireView is what the victim sent on one connection: the last
// acknowledgment and window it advertised, and how many segments.
type wireView struct {
	mu      sync.Mutex
	to      netip.AddrPort
	ack     uint32
	wnd     uint16
	seq     uint32
	segs    int
	rsts    int
	payload int
}

func (w *wireView) see(f []byte) {
	ip, t, ok := parseTCP(f)
	if !ok || ip.Dst() != w.to.Addr() || t.DstPort() != w.to.Port() {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.segs++
	w.payload += len(t.Payload())
	if t.Flags()&wire.TCPFlagRST != 0 {
		w.rsts++
		return
	}
	w.ack, w.wnd, w.seq = t.Ack(), t.Window(), t.Seq()+uint32(len(t.Payload()))
}

func (w *wireView) read() (ack uint32, wnd uint16, seq uint32, segs, rsts int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ack, w.wnd, w.seq, w.segs, w.rsts
}

// The sweep covers the whole 2^32 sequence space in steps of 64 KiB
// (256 KiB under the race detector): 65,536 (16,384) probes per attack.
func sweepStep() uint32 {
	if raceEnabled {
		return 1 << 18
	}
	return 1 << 16
}

// TestBlindInjection plays RFC 5961's off-path attacker against an
// established connection: RSTs, SYNs and data segments with the
// connection's 4-tuple, spread over the whole sequence space. Per RFC
// 5961 only an RST at exactly RCV.NXT resets; an in-window RST or any SYN
// draws a challenge ACK; out-of-window segments are dropped; data with
// an unacceptable ACK never reaches the application; and the ACKs the
// victim sends back are rate-limited per connection (tcp_invalid_ratelimit,
// 500 ms), so the attacker cannot turn the victim into a reflector nor
// read a global counter (CVE-2016-5696).
func TestBlindInjection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, stack.Options{})
		cn := establish(t, l, 80)
		view := &wireView{to: cn.cAddr}
		l.vtx.watch(view.see)
		// A byte from the client makes the victim acknowledge: the view
		// then holds its current RCV.NXT, window and SND.NXT.
		if _, err := cn.c.Send([]byte("x"), 0); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 16)
		if _, err := cn.v.Recv(b, 0); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second) // past the delayed ACK
		synctest.Wait()
		info := tcpInfo(t, cn.v)
		rcvNxt, wnd16, sndNxt, _, _ := view.read()
		wnd := uint32(wnd16) << info.RcvWScale
		step := sweepStep()
		probes := int((1 << 32) / uint64(step))
		// Probe i is at RCV.NXT+1+i*step: in the window for the first
		// ceil((wnd-1)/step) probes, never exactly at RCV.NXT.
		t.Logf("connection %v -> %v: RCV.NXT %d, advertised window %d; %d probes per sweep",
			cn.cAddr, cn.vAddr, rcvNxt, wnd, probes)

		// sweep sends the probes and returns the figures, the segments the
		// victim sent to the client meanwhile, and the bounds on how many
		// probes can have been in the window: at least those in the last
		// advertised window, at most those in the receive buffer.
		sweep := func(name string, flags uint8, data []byte, ack uint32) (m *measure, sent, lo, hi int) {
			_, w16, _, segs0, _ := view.read()
			lo = int((uint32(w16)<<info.RcvWScale - 1 + step - 1) / step)
			m = begin(t, name, l.V)
			fs := make([][]byte, 0, 256)
			for i := 0; i < probes; i++ {
				seq := rcvNxt + 1 + uint32(i)*step
				fs = append(fs, tcpFrame(cn.cAddr, cn.vAddr, wire.TCPHeader{Seq: seq, Ack: ack, Flags: flags}, data))
				if len(fs) == cap(fs) {
					l.A.send(fs...)
					fs = fs[:0]
				}
			}
			l.A.send(fs...)
			synctest.Wait()
			m.end()
			_, _, _, segs1, _ := view.read()
			sent = segs1 - segs0
			ii := tcpInfo(t, cn.v)
			hi = int((uint32(max(ii.RcvSpace, int(wnd))) + uint32(len(data)) + step - 1) / step)
			t.Logf("%s: %d probes drew %d segments from the victim to the client; %d..%d probes in the window", name, probes, sent, lo, hi)
			if g := m.grew(); g > 2<<20 {
				t.Errorf("%s: heap grew by %d bytes", name, g)
			}
			return m, sent, lo, hi
		}
		inRange := func(what string, got uint64, lo, hi int) {
			if got < uint64(lo) || got > uint64(hi) {
				t.Errorf("%s = %d, want %d..%d (the probes in the window)", what, got, lo, hi)
			}
		}
		// Bound on the victim's answers to a sweep: one per 500 ms per
		// connection (plus the first), whatever the number of probes.
		answers := func(m *measure) int { return 2 + 2*int(m.elapse/(500*time.Millisecond)) }

		// 1. RSTs across the whole space.
		m, sent, lo, hi := sweep("blind RST sweep", wire.TCPFlagRST, nil, 0)
		if r := m.moved.get("TCP.EstabResets"); r != 0 {
			t.Errorf("blind RSTs reset %d connections", r)
		}
		chal := m.moved.sum("TCP.ChallengeACKs", "TCP.ChallengeACKsLimited")
		inRange("in-window RSTs (challenge ACK path)", chal, lo, hi)
		if got := m.moved.get("TCP.OutOfWindowDrops"); got != uint64(probes)-chal {
			t.Errorf("OutOfWindowDrops = %d, want %d (every probe outside the window)", got, uint64(probes)-chal)
		}
		if sent > answers(m) {
			t.Errorf("RST sweep drew %d segments from the victim, bound %d", sent, answers(m))
		}

		// 2. SYNs across the whole space: each is a challenge ACK at most
		// (RFC 5961 4.2), never a reset.
		time.Sleep(time.Second)
		m, sent, _, _ = sweep("blind SYN sweep", wire.TCPFlagSYN, nil, 0)
		if r := m.moved.sum("TCP.EstabResets", "TCP.OutRsts"); r != 0 {
			t.Errorf("blind SYNs: %d resets", r)
		}
		if sent > answers(m) {
			t.Errorf("SYN sweep drew %d segments from the victim, bound %d (ACKs for invalid segments must be rate-limited per connection)", sent, answers(m))
		}

		// 3. Data across the whole space, with an ACK the victim never
		// sent (RFC 5961 5: dropped, answered by a rate-limited ACK).
		time.Sleep(time.Second)
		m, sent, lo, hi = sweep("blind data sweep", wire.TCPFlagACK|wire.TCPFlagPSH, []byte("INJECTED"), sndNxt+1<<30)
		if r := m.moved.get("TCP.EstabResets"); r != 0 {
			t.Errorf("blind data: %d resets", r)
		}
		oow := m.moved.get("TCP.OutOfWindowDrops")
		inRange("data probes not dropped as out of window", uint64(probes)-oow, lo, hi)
		if sent > answers(m) {
			t.Errorf("data sweep drew %d segments from the victim, bound %d", sent, answers(m))
		}
		if i := tcpInfo(t, cn.v); i.State != tcp.StateEstablished || i.BytesReceived != info.BytesReceived {
			t.Errorf("after the sweeps: state %v, bytes received %d (was %d): injected data accepted", i.State, i.BytesReceived, info.BytesReceived)
		}

		// The connection still works both ways.
		if _, err := cn.c.Send([]byte("still here"), 0); err != nil {
			t.Fatal(err)
		}
		n, err := cn.v.Recv(b, 0)
		if err != nil || string(b[:n]) != "still here" {
			t.Fatalf("after the sweeps the victim reads %q, %v", b[:n], err)
		}

		// 4. Control: the one RST an off-path attacker needs 2^32/wnd
		// tries for, at exactly RCV.NXT, does reset.
		time.Sleep(time.Second) // the victim acknowledges "still here"
		synctest.Wait()
		rcvNxt, _, _, _, _ = view.read()
		m = begin(t, "exact RST", l.V)
		l.A.send(tcpFrame(cn.cAddr, cn.vAddr, wire.TCPHeader{Seq: rcvNxt, Flags: wire.TCPFlagRST}, nil))
		synctest.Wait()
		m.end()
		if m.moved.get("TCP.EstabResets") != 1 {
			t.Errorf("an RST at RCV.NXT did not reset the connection")
		}
		if _, err := cn.v.Recv(b, 0); !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("victim read after the exact RST: %v, want ECONNRESET", err)
		}
		t.Logf("blind injection: success needs the exact RCV.NXT (1 in 2^32 per RST; the window of %d only buys challenge ACKs); SYNs 0; data with an unknown ACK 0", wnd)
	})
}

// TestChallengeACKSideChannel is CVE-2016-5696: with one global challenge
// ACK budget, an off-path attacker exhausts it with in-window RSTs on a
// connection of its own and then counts the challenge ACKs the victim
// sends on a connection it probes. The budget must be per connection: a
// storm on one connection leaves another's challenge ACK untouched.
func TestChallengeACKSideChannel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, stack.Options{})
		a := establish(t, l, 80)
		b := establish(t, l, 81)
		va, vb := &wireView{to: a.cAddr}, &wireView{to: b.cAddr}
		l.vtx.watch(func(f []byte) { va.see(f); vb.see(f) })
		// Fresh views of both connections' RCV.NXT.
		for _, c := range []*conn{a, b} {
			if _, err := c.c.Send([]byte("x"), 0); err != nil {
				t.Fatal(err)
			}
			if _, err := c.v.Recv(make([]byte, 8), 0); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(time.Second)
		synctest.Wait()
		nxtA, _, _, _, _ := va.read()
		nxtB, _, _, segsB0, _ := vb.read()
		m := begin(t, "challenge ACK side channel", l.V)
		n := scaled(5000, 1)
		fs := make([][]byte, 0, 256)
		for i := 0; i < n; i++ {
			fs = append(fs, tcpFrame(a.cAddr, a.vAddr, wire.TCPHeader{Seq: nxtA + 1 + uint32(i%1000), Flags: wire.TCPFlagRST}, nil))
			if len(fs) == cap(fs) || i == n-1 {
				l.A.send(fs...)
				fs = fs[:0]
			}
		}
		synctest.Wait()
		_, _, _, segsA, _ := va.read()
		l.A.send(tcpFrame(b.cAddr, b.vAddr, wire.TCPHeader{Seq: nxtB + 1, Flags: wire.TCPFlagRST}, nil))
		synctest.Wait()
		m.end()
		_, _, _, segsB1, _ := vb.read()
		t.Logf("challenge ACK side channel: %d in-window RSTs on one connection drew %d segments there; the probe on another drew %d",
			n, segsA, segsB1-segsB0)
		if segsB1-segsB0 != 1 {
			t.Errorf("an in-window RST on a second connection drew %d challenge ACKs after a storm on the first, want 1 (a shared budget is observable)", segsB1-segsB0)
		}
		if m.moved.get("TCP.EstabResets") != 0 {
			t.Errorf("in-window RSTs reset a connection")
		}
	})
}

// icmpAbout builds an ICMP error from a (spoofed) router about a segment
// the victim sent on cn with sequence number seq (RFC 792: the IP header
// and the first 8 bytes of the segment are quoted).
func icmpAbout(cn *conn, typ, code uint8, mtu uint16, seq uint32) []byte {
	var tcpHead [8]byte
	binary.BigEndian.PutUint16(tcpHead[0:], cn.vAddr.Port())
	binary.BigEndian.PutUint16(tcpHead[2:], cn.cAddr.Port())
	binary.BigEndian.PutUint32(tcpHead[4:], seq)
	quoted := make([]byte, 20+8)
	(&wire.IPv4Header{TotalLen: 1500, TTL: 63, Protocol: wire.ProtoTCP, Src: cn.vAddr.Addr(), Dst: cn.cAddr.Addr(), DF: true}).Put(quoted)
	copy(quoted[20:], tcpHead[:])
	m := make([]byte, 8+len(quoted))
	m[0], m[1] = typ, code
	binary.BigEndian.PutUint16(m[6:], mtu)
	copy(m[8:], quoted)
	wire.ICMPv4(m).FillChecksum()
	return ipFrame(victimMAC, attackerMAC, wire.IPv4Header{Protocol: wire.ProtoICMP,
		Src: netip.MustParseAddr("198.18.99.1"), Dst: victimIP}, m)
}

// TestForgedICMP: RFC 5927's blind ICMP attacks on an established
// connection. An error quoting a sequence number outside the data in
// flight is ignored; a "fragmentation needed" with a tiny MTU cannot push
// the path MTU below the floor (min_pmtu); port and host unreachables
// are soft errors for a synchronized connection (RFC 5927 7, as Linux):
// the connection survives all of them.
func TestForgedICMP(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, stack.Options{})
		cn := establish(t, l, 80)
		view := &wireView{to: cn.cAddr}
		l.vtx.watch(view.see)
		if _, err := cn.v.Send([]byte("in flight"), 0); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		_, _, sndNxt, _, _ := view.read()
		pmtu0 := tcpInfo(t, cn.v).PMTU
		route0 := l.V.PathMTU(cn.cAddr.Addr())
		m := begin(t, "forged ICMP", l.V)
		// 1. Out of window: nothing changes.
		for i := uint32(1); i <= 100; i++ {
			l.A.send(icmpAbout(cn, wire.ICMPDestUnreach, wire.ICMPFragNeeded, 68, sndNxt+i<<20))
		}
		synctest.Wait()
		if p := tcpInfo(t, cn.v).PMTU; p != pmtu0 {
			t.Errorf("frag-needed quoting sequence numbers outside the flight moved the path MTU %d -> %d", pmtu0, p)
		}
		// ... nor the host's per-destination cache, which new connections
		// would start from (Linux checks the sequence in tcp_v4_err first).
		if p := l.V.PathMTU(cn.cAddr.Addr()); p != route0 || l.V.Stats().IP.PMTUUpdates.Load() != 0 {
			t.Errorf("frag-needed quoting sequence numbers outside the flight moved the host's path MTU cache %d -> %d (%d updates)",
				route0, p, l.V.Stats().IP.PMTUUpdates.Load())
		}
		// 2. In window, MTU 68: the floor holds.
		l.A.send(icmpAbout(cn, wire.ICMPDestUnreach, wire.ICMPFragNeeded, 68, sndNxt))
		synctest.Wait()
		info := tcpInfo(t, cn.v)
		if info.PMTU < 552 || info.SndMSS < 500 {
			t.Errorf("a frag-needed with MTU 68 set the path MTU to %d, MSS %d (floor 552)", info.PMTU, info.SndMSS)
		}
		if p := l.V.PathMTU(cn.cAddr.Addr()); p != 552 {
			t.Errorf("an in-window frag-needed with MTU 68 left the host's path MTU at %d, want the floor 552", p)
		}
		// 3. Port and host unreachable in window: soft errors.
		l.A.send(icmpAbout(cn, wire.ICMPDestUnreach, wire.ICMPPortUnreach, 0, sndNxt),
			icmpAbout(cn, wire.ICMPDestUnreach, wire.ICMPHostUnreach, 0, sndNxt),
			icmpAbout(cn, wire.ICMPDestUnreach, wire.ICMPProtoUnreach, 0, sndNxt))
		synctest.Wait()
		m.end()
		t.Logf("forged ICMP: the connection's path MTU %d -> %d, MSS %d; state %v", pmtu0, info.PMTU, info.SndMSS, tcpInfo(t, cn.v).State)
		// The host's per-destination cache took only the in-window error.
		t.Logf("forged ICMP: per-destination path MTU cache updates %d (TCP took %d)",
			m.moved.get("IP.PMTUUpdates"), m.moved.get("TCP.PMTUUpdates"))
		if n := m.moved.get("IP.PMTUUpdates"); n != 1 {
			t.Errorf("the host's path MTU cache was updated %d times by 101 forged frag-needed errors, 1 in window; want 1", n)
		}
		if s := tcpInfo(t, cn.v).State; s != tcp.StateEstablished {
			t.Fatalf("forged unreachables ended the connection: %v", s)
		}
		if _, err := cn.c.Send([]byte("still here"), 0); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 64)
		if n, err := cn.v.Recv(b, 0); err != nil || string(b[:n]) != "still here" {
			t.Fatalf("after forged ICMP errors the victim reads %q, %v", b[:n], err)
		}
	})
}
