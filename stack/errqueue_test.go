package stack

import (
	"bytes"
	"errors"
	"net/netip"
	"syscall"
	"testing"

	"github.com/sockstack/sockstack/waiter"
	"github.com/sockstack/sockstack/wire"
)

// icmpAbout is an ICMP error of typ/code from `from` quoting the IPv4
// packet q (whole: Linux quotes up to 576 bytes), with rest as the
// header's last four bytes.
func icmpAbout(from netip.Addr, typ, code uint8, rest uint32, q []byte) []byte {
	m := make([]byte, 8+len(q))
	m[0], m[1] = typ, code
	wire.ICMPv4(m).SetRest(rest)
	copy(m[8:], q)
	wire.ICMPv4(m).FillChecksum()
	return ipFrame(wire.IPv4Header{Protocol: wire.ProtoICMP, Src: from}, m)
}

// sentIP sends b from e to `to` and returns the IP packet it left as.
func sentIP(t *testing.T, h *harness, e *DgramEndpoint, b []byte, to netip.AddrPort) []byte {
	t.Helper()
	if _, err := e.SendTo(b, to, nil); err != nil {
		t.Fatal(err)
	}
	out := h.ep.take()
	if len(out) != 1 {
		t.Fatalf("%d frames sent, want 1", len(out))
	}
	return append([]byte(nil), parseOut(t, out[0])...)
}

func hasErrEvent(e *DgramEndpoint) bool { return e.Readiness(waiter.EventIn)&waiter.EventErr != 0 }

// A port unreachable about a datagram of an unconnected socket: with
// IP_RECVERR it is queued (the UDP payload, ECONNREFUSED, ICMP type 3
// code 3, offender the ICMP's source, the original destination) and
// pending; without, the socket hears nothing.
func TestRecvErrUDPPortUnreachable(t *testing.T) {
	h := newHarness(t, Options{})
	to := netip.AddrPortFrom(peerAddr, 9)
	router := netip.MustParseAddr("10.0.0.254")
	for _, on := range []bool{false, true} {
		e := h.s.NewDgram(KindUDP, 0)
		defer e.Close()
		e.SetRecvErr(false, on)
		q := sentIP(t, h, e, []byte("hello"), to)
		h.ep.inject(icmpAbout(router, wire.ICMPDestUnreach, wire.ICMPPortUnreach, 0, q))
		if !on {
			if e.ErrQueueLen() != 0 || e.SoError() != nil || hasErrEvent(e) {
				t.Fatalf("without IP_RECVERR an unconnected socket heard the error (queue %d)", e.ErrQueueLen())
			}
			continue
		}
		if !hasErrEvent(e) {
			t.Fatal("no EventErr (POLLERR) with an error queued")
		}
		// The pending error fails the next send, connected or not.
		if _, err := e.SendTo([]byte("x"), to, nil); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("send after the error: %v, want ECONNREFUSED", err)
		}
		h.ep.take()
		if !hasErrEvent(e) {
			t.Fatal("EventErr gone with the error still queued")
		}
		buf := make([]byte, 64)
		n, full, m, err := e.ReadErr(buf)
		if err != nil {
			t.Fatal(err)
		}
		if string(buf[:n]) != "hello" || full != 5 {
			t.Fatalf("payload %q (%d), want the UDP data", buf[:n], full)
		}
		want := ErrQueueMsg{ExtendedErr: ExtendedErr{Errno: syscall.ECONNREFUSED, Origin: EEOriginICMP, Type: 3, Code: 3},
			Offender: router, Dst: to, V4: true}
		if m != want {
			t.Fatalf("error %+v, want %+v", m, want)
		}
		if hasErrEvent(e) {
			t.Fatal("EventErr after the queue was read")
		}
		if _, _, _, err := e.ReadErr(buf); !errors.Is(err, syscall.EAGAIN) {
			t.Fatalf("empty queue: %v, want EAGAIN", err)
		}
	}
}

// Soft errors (host unreachable, time exceeded) reach a connected
// socket only with IP_RECVERR; hard ones (port unreachable) reach it
// without, as the pending error and not queued.
func TestRecvErrSoftAndHard(t *testing.T) {
	h := newHarness(t, Options{})
	to := netip.AddrPortFrom(peerAddr, 9)
	for _, c := range []struct {
		typ, code uint8
		errno     syscall.Errno
		hard      bool
	}{
		{wire.ICMPDestUnreach, wire.ICMPHostUnreach, syscall.EHOSTUNREACH, false},
		{wire.ICMPDestUnreach, wire.ICMPNetUnreach, syscall.ENETUNREACH, false},
		{wire.ICMPTimeExceeded, 0, syscall.EHOSTUNREACH, false},
		{wire.ICMPDestUnreach, wire.ICMPPortUnreach, syscall.ECONNREFUSED, true},
		{wire.ICMPParamProblem, 0, syscall.EPROTO, true},
	} {
		for _, on := range []bool{false, true} {
			e := h.s.NewDgram(KindUDP, 0)
			e.SetRecvErr(false, on)
			if err := e.Connect(to); err != nil {
				t.Fatal(err)
			}
			q := sentIP(t, h, e, []byte("data"), netip.AddrPort{})
			h.ep.inject(icmpAbout(peerAddr, c.typ, c.code, 0, q))
			heard := on || c.hard
			err := e.SoError()
			if heard && !errors.Is(err, c.errno) || !heard && err != nil {
				t.Errorf("type %d code %d, IP_RECVERR %v: SO_ERROR %v", c.typ, c.code, on, err)
			}
			if q := e.ErrQueueLen(); q != map[bool]int{false: 0, true: 1}[on] {
				t.Errorf("type %d code %d, IP_RECVERR %v: %d queued", c.typ, c.code, on, q)
			}
			e.Close()
		}
	}
}

// Fragmentation needed: ee_info is the next-hop MTU; IP_PMTUDISC_DONT
// makes the socket deaf to it. A parameter problem's ee_info is its
// pointer.
func TestRecvErrInfo(t *testing.T) {
	h := newHarness(t, Options{})
	if err := h.s.SetDefaultGateway(peerAddr); err != nil {
		t.Fatal(err)
	}
	to := netip.AddrPortFrom(farAddr, 9)
	e := h.s.NewDgram(KindUDP, 0)
	defer e.Close()
	e.SetRecvErr(false, true)
	q := sentIP(t, h, e, make([]byte, 1000), to)
	h.ep.inject(icmpAbout(peerAddr, wire.ICMPDestUnreach, wire.ICMPFragNeeded, 900, q))
	h.ep.inject(icmpAbout(peerAddr, wire.ICMPParamProblem, 0, 7<<24, q))
	_, _, m, err := e.ReadErr(nil)
	if err != nil || m.Errno != syscall.EMSGSIZE || m.Info != 900 {
		t.Fatalf("fragmentation needed: %+v %v, want EMSGSIZE info 900", m, err)
	}
	// The next error's errno is pending now (sock_dequeue_err_skb).
	if err := e.SoError(); !errors.Is(err, syscall.EPROTO) {
		t.Fatalf("SO_ERROR between reads: %v, want EPROTO", err)
	}
	if _, _, m, _ = e.ReadErr(nil); m.Errno != syscall.EPROTO || m.Info != 7 {
		t.Fatalf("parameter problem: %+v, want EPROTO info 7", m)
	}
	if err := e.SetPMTUDisc(false, PMTUDiscDont); err != nil {
		t.Fatal(err)
	}
	h.ep.inject(icmpAbout(peerAddr, wire.ICMPDestUnreach, wire.ICMPFragNeeded, 800, q))
	if e.ErrQueueLen() != 0 || e.SoError() != nil {
		t.Fatal("IP_PMTUDISC_DONT: the socket heard a fragmentation needed")
	}
	if err := e.SetPMTUDisc(false, 6); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("IP_MTU_DISCOVER 6: %v, want EINVAL", err)
	}
}

// The queue is charged to SO_RCVBUF: errors beyond it are dropped and
// counted, per socket and in ICMP.ErrQueueFull; turning IP_RECVERR off
// empties the queue and frees the charge.
func TestRecvErrQueueBounded(t *testing.T) {
	h := newHarness(t, Options{})
	e := h.s.NewDgram(KindUDP, 0)
	defer e.Close()
	e.SetRecvErr(false, true)
	e.SetRecvBuf(0) // the minimum, 2304 bytes
	q := sentIP(t, h, e, []byte("x"), netip.AddrPortFrom(peerAddr, 9))
	for i := 0; i < 10; i++ {
		h.ep.inject(icmpAbout(peerAddr, wire.ICMPDestUnreach, wire.ICMPPortUnreach, 0, q))
	}
	n := e.ErrQueueLen()
	// Each costs 256+576 bytes: two fit under 2304, a third would reach it.
	if n != 2 || e.ErrQueueDrops() != 8 || h.s.Stats().ICMP.ErrQueueFull.Load() != 8 {
		t.Fatalf("%d queued, %d dropped (stack %d), want 2 and 8", n, e.ErrQueueDrops(), h.s.Stats().ICMP.ErrQueueFull.Load())
	}
	if e.QueuedBytes() != 2*(256+DgramOverhead) {
		t.Fatalf("charged %d bytes", e.QueuedBytes())
	}
	e.SetRecvErr(false, false)
	if e.ErrQueueLen() != 0 || e.QueuedBytes() != 0 {
		t.Fatalf("IP_RECVERR off: %d queued, %d bytes charged", e.ErrQueueLen(), e.QueuedBytes())
	}
	// Off: a datagram queue's data is not an error queue's.
	h.ep.inject(icmpAbout(peerAddr, wire.ICMPDestUnreach, wire.ICMPPortUnreach, 0, q))
	if e.ErrQueueLen() != 0 {
		t.Fatal("queued with IP_RECVERR off")
	}
}

// IP_PMTUDISC_DO: a datagram over the MTU fails with EMSGSIZE and, with
// IP_RECVERR, leaves a local error (ee_info the MTU, no payload, no
// offender; the port is the connected peer's, 0 unconnected).
func TestRecvErrLocalEMSGSIZE(t *testing.T) {
	h := newHarness(t, Options{})
	to := netip.AddrPortFrom(peerAddr, 9)
	e := h.s.NewDgram(KindUDP, 0)
	defer e.Close()
	big := make([]byte, 1500-28+1)
	// Default (WANT): fragmented, no error.
	if _, err := e.SendTo(big, to, nil); err != nil {
		t.Fatal(err)
	}
	if n := len(h.ep.take()); n != 2 {
		t.Fatalf("%d frames, want 2 fragments", n)
	}
	if err := e.SetPMTUDisc(false, PMTUDiscDo); err != nil {
		t.Fatal(err)
	}
	if _, err := e.SendTo(big, to, nil); !errors.Is(err, syscall.EMSGSIZE) {
		t.Fatalf("IP_PMTUDISC_DO over the MTU: %v, want EMSGSIZE", err)
	}
	if e.ErrQueueLen() != 0 {
		t.Fatal("local error queued without IP_RECVERR")
	}
	e.SetRecvErr(false, true)
	if _, err := e.SendTo(big, to, nil); !errors.Is(err, syscall.EMSGSIZE) {
		t.Fatal(err)
	}
	if err := e.Connect(to); err != nil {
		t.Fatal(err)
	}
	if _, err := e.SendTo(big, netip.AddrPort{}, nil); !errors.Is(err, syscall.EMSGSIZE) {
		t.Fatal(err)
	}
	if len(h.ep.take()) != 0 {
		t.Fatal("a DF datagram over the MTU left")
	}
	for _, port := range []uint16{0, 9} {
		n, full, m, err := e.ReadErr(make([]byte, 8))
		want := ErrQueueMsg{ExtendedErr: ExtendedErr{Errno: syscall.EMSGSIZE, Origin: EEOriginLocal, Info: 1500}, Dst: netip.AddrPortFrom(peerAddr, port), V4: true}
		if err != nil || n != 0 || full != 0 || m != want {
			t.Fatalf("local error: %d/%d %+v %v, want %+v", n, full, m, err, want)
		}
	}
	// A local error is not the pending error.
	if err := e.SoError(); err != nil {
		t.Fatalf("SO_ERROR %v after a local error", err)
	}
	// Within the MTU the datagram leaves with DF.
	if _, err := e.SendTo(big[:1472], netip.AddrPort{}, nil); err != nil {
		t.Fatal(err)
	}
	out := h.ep.take()
	if len(out) != 1 || !parseOut(t, out[0]).DF() {
		t.Fatal("IP_PMTUDISC_DO datagram left without DF")
	}
}

// A ping socket's error carries the quoted echo from its header on; a
// source quench is EREMOTEIO and soft. A raw ICMP socket hears the same
// error, its payload after the quoted IP header.
func TestRecvErrPingAndRaw(t *testing.T) {
	h := newHarness(t, Options{})
	p := h.s.NewDgram(KindPing, 0)
	defer p.Close()
	r := h.s.NewDgram(KindRaw, wire.ProtoICMP)
	defer r.Close()
	p.SetRecvErr(false, true)
	r.SetRecvErr(false, true)
	echo := echoPayload(0, 7, []byte("ping"))
	q := sentIP(t, h, p, echo, netip.AddrPortFrom(peerAddr, 0))
	h.ep.inject(icmpAbout(peerAddr, wire.ICMPTimeExceeded, 0, 0, q))
	h.ep.inject(icmpAbout(peerAddr, wire.ICMPSourceQuench, 0, 0, q))
	buf := make([]byte, 64)
	n, _, m, err := p.ReadErr(buf)
	ih := wire.IPv4(q)
	if err != nil || !bytes.Equal(buf[:n], ih.Payload()) || m.Type != wire.ICMPTimeExceeded || m.Errno != syscall.EHOSTUNREACH || m.Dst != netip.AddrPortFrom(peerAddr, 0) {
		t.Fatalf("ping: %x %+v %v, want the echo and time exceeded", buf[:n], m, err)
	}
	if _, _, m, _ = p.ReadErr(buf); m.Errno != syscall.EREMOTEIO {
		t.Fatalf("ping source quench: %+v, want EREMOTEIO", m)
	}
	n, _, m, err = r.ReadErr(buf)
	if err != nil || !bytes.Equal(buf[:n], ih.Payload()) || m.Type != wire.ICMPTimeExceeded {
		t.Fatalf("raw: %x %+v %v", buf[:n], m, err)
	}
	if r.ErrQueueLen() != 0 {
		t.Fatal("a raw socket queued a source quench")
	}
	// Without IP_RECVERR an unconnected raw socket hears nothing.
	r2 := h.s.NewDgram(KindRaw, wire.ProtoICMP)
	defer r2.Close()
	h.ep.inject(icmpAbout(peerAddr, wire.ICMPDestUnreach, wire.ICMPProtoUnreach, 0, q))
	if r2.SoError() != nil || r2.ErrQueueLen() != 0 {
		t.Fatal("raw socket without IP_RECVERR heard an error")
	}
}

// IPv6: a packet too big is hard on a UDP socket under path MTU
// discovery (the default): a connected socket without IPV6_RECVERR
// hears EMSGSIZE; with IPV6_MTU_DISCOVER DONT it is soft. With
// IPV6_RECVERR it is queued: ICMPv6 origin, type 2, ee_info the MTU,
// the offender the message's source, with the NIC as its scope.
func TestRecvErrIPv6PacketTooBig(t *testing.T) {
	h := newH6(t, Options{})
	h.nic.SetStatic6(peerLL, peerMAC)
	to := netip.AddrPortFrom(peerLL.WithZone("eth0"), 9)
	for _, c := range []struct {
		recverr bool
		mode    int
		heard   bool
	}{{false, PMTUDiscWant, true}, {false, PMTUDiscDont, false}, {true, PMTUDiscDont, true}} {
		e := h.s.NewDgram(KindUDP, 0)
		e.SetInet6()
		e.SetRecvErr(true, c.recverr)
		e.SetPMTUDisc(true, c.mode)
		if err := e.Connect(to); err != nil {
			t.Fatal(err)
		}
		e.SendTo(make([]byte, 1200), netip.AddrPort{}, nil) // under the 1300 learnt
		out := h.sent()
		if len(out) != 1 {
			t.Fatalf("%d packets", len(out))
		}
		m := make([]byte, 8+len(out[0].ip))
		m[0] = wire.ICMPv6PacketTooBig
		wire.ICMPv6(m).SetRest(1300)
		copy(m[8:], out[0].ip)
		m = m[:1232]
		h.ep.inject(frame6(hostMAC, peerMAC, peerLL, hostLL, wire.ProtoICMPv6, 64, m, 0))
		err := e.SoError()
		if c.heard != errors.Is(err, syscall.EMSGSIZE) {
			t.Errorf("IPV6_RECVERR %v, IPV6_MTU_DISCOVER %d: SO_ERROR %v", c.recverr, c.mode, err)
		}
		if c.recverr {
			n, _, q, err := e.ReadErr(make([]byte, 2000))
			want := ErrQueueMsg{ExtendedErr: ExtendedErr{Errno: syscall.EMSGSIZE, Origin: EEOriginICMP6, Type: wire.ICMPv6PacketTooBig, Info: 1300},
				Offender: peerLL.WithZone("eth0"), Dst: netip.AddrPortFrom(peerLL.WithZone("eth0"), 9)} // scope: the NIC it came in on
			if err != nil || q != want || n != 1232-8-40-8 {
				t.Errorf("queued %+v (%d bytes) %v, want %+v", q, n, err, want)
			}
		}
		e.Close()
	}
}

// A queue read as fast as it fills does not grow: its backing array
// stays the size of the largest backlog.
func TestRecvErrQueueReused(t *testing.T) {
	h := newHarness(t, Options{})
	e := h.s.NewDgram(KindUDP, 0)
	defer e.Close()
	e.SetRecvErr(false, true)
	q := sentIP(t, h, e, []byte("x"), netip.AddrPortFrom(peerAddr, 9))
	inject := func() { h.ep.inject(icmpAbout(peerAddr, wire.ICMPDestUnreach, wire.ICMPPortUnreach, 0, q)) }
	inject()
	for i := 0; i < 1000; i++ {
		inject()
		if _, _, _, err := e.ReadErr(nil); err != nil {
			t.Fatal(err)
		}
	}
	e.mu.Lock()
	c := cap(e.errq)
	e.mu.Unlock()
	if e.ErrQueueLen() != 1 || c > 4 {
		t.Fatalf("%d queued, backing array of %d entries after 1000 errors read one behind", e.ErrQueueLen(), c)
	}
}

// ICMPv6 errors about an echo: the ping socket's entry starts at the
// quoted echo header, a raw ICMPv6 socket's too; without IPV6_RECVERR
// an unconnected ping socket hears a time exceeded not at all, and a
// connected one only hard errors.
func TestRecvErrIPv6PingAndRaw(t *testing.T) {
	h := newH6(t, Options{})
	h.nic.SetStatic6(peerLL, peerMAC)
	to := netip.AddrPortFrom(peerLL.WithZone("eth0"), 0)
	p := h.s.NewDgram(KindPing, 0)
	p.SetInet6()
	defer p.Close()
	r := h.s.NewDgram(KindRaw, wire.ProtoICMPv6)
	r.SetInet6()
	defer r.Close()
	quiet := h.s.NewDgram(KindPing, 0)
	quiet.SetInet6()
	defer quiet.Close()
	p.SetRecvErr(true, true)
	r.SetRecvErr(true, true)
	echo := []byte{wire.ICMPv6EchoRequest, 0, 0, 0, 0, 0, 0, 9, 'p', 'i', 'n', 'g'}
	errorAbout := func(e *DgramEndpoint, typ, code uint8) []byte {
		if _, err := e.SendTo(echo, to, nil); err != nil {
			t.Fatal(err)
		}
		out := h.sent()
		if len(out) != 1 {
			t.Fatalf("%d packets", len(out))
		}
		m := make([]byte, 8+len(out[0].ip))
		m[0], m[1] = typ, code
		copy(m[8:], out[0].ip)
		h.ep.inject(frame6(hostMAC, peerMAC, peerLL, hostLL, wire.ProtoICMPv6, 64, m, 0))
		return out[0].ip[wire.IPv6HeaderLen:]
	}
	sent := errorAbout(p, wire.ICMPv6TimeExceeded, 0)
	buf := make([]byte, 64)
	for name, e := range map[string]*DgramEndpoint{"ping": p, "raw": r} {
		n, _, m, err := e.ReadErr(buf)
		if err != nil || !bytes.Equal(buf[:n], sent) || m.Origin != EEOriginICMP6 || m.Type != wire.ICMPv6TimeExceeded || m.Errno != syscall.EHOSTUNREACH {
			t.Errorf("%s: %x %+v %v, want the echo sent and a time exceeded", name, buf[:n], m, err)
		}
	}
	errorAbout(quiet, wire.ICMPv6TimeExceeded, 0)
	if quiet.SoError() != nil || quiet.ErrQueueLen() != 0 {
		t.Fatal("a ping socket without IPV6_RECVERR heard a time exceeded")
	}
	if err := quiet.Connect(to); err != nil {
		t.Fatal(err)
	}
	errorAbout(quiet, wire.ICMPv6DestUnreach, wire.ICMPv6AdminProhibited)
	if err := quiet.SoError(); !errors.Is(err, syscall.EACCES) || quiet.ErrQueueLen() != 0 {
		t.Fatalf("connected ping socket, administratively prohibited: %v, %d queued", err, quiet.ErrQueueLen())
	}
}
