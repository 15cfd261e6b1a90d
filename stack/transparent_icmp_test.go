package stack

import (
	"errors"
	"net/netip"
	"syscall"
	"testing"

	"github.com/sockstack/sockstack/wire"
)

// echoHarness is tproxyHarness with an echo rule for 198.51.100.0/24
// and, when transparent, a transparent raw ICMP socket.
func echoHarness(t *testing.T, transparent bool) (*harness, *DgramEndpoint) {
	h, _ := tproxyHarness(t)
	if err := h.s.AddTransparentRule(TransparentRule{Proto: TransparentICMPEcho, Dst: foreignPf}); err != nil {
		t.Fatal(err)
	}
	if err := h.s.AddTransparentRule(TransparentRule{Proto: TransparentICMPEcho, Dst: netip.MustParsePrefix("10.0.0.0/24"), Local: true}); err != nil {
		t.Fatal(err)
	}
	raw := h.s.NewDgram(KindRaw, wire.ProtoICMP)
	raw.SetTransparent(transparent)
	t.Cleanup(raw.Close)
	return h, raw
}

// An echo request to a diverted prefix reaches the transparent raw
// socket with its original destination in the header, the stack does
// not answer it, and the reply leaves from that destination, with
// IP_HDRINCL or with a per-call source (IP_PKTINFO).
func TestTransparentEcho4(t *testing.T) {
	h, raw := echoHarness(t, true)
	h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoICMP, Dst: foreign}, echoPayload(77, 1, []byte("ping"))))
	if out := h.ep.take(); len(out) != 0 {
		t.Fatalf("the stack answered a diverted echo: %d frames", len(out))
	}
	b := make([]byte, 256)
	n, _, from, err := raw.RecvFrom(b, false)
	if err != nil {
		t.Fatalf("no diverted echo: %v", err)
	}
	ip := wire.IPv4(b[:n])
	m := wire.ICMPv4(ip.Payload())
	if from.Addr() != peerAddr || ip.Dst() != foreign || m.Type() != wire.ICMPEcho || m.ID() != 77 || string(m.Payload()) != "ping" {
		t.Fatalf("got %v -> %v type %d id %d %q", from, ip.Dst(), m.Type(), m.ID(), m.Payload())
	}
	st := h.s.Stats()
	if st.TProxy.DivertedEcho.Load() != 1 || st.ICMP.OutEchoReps.Load() != 0 {
		t.Fatalf("diverted %d, stack replies %d", st.TProxy.DivertedEcho.Load(), st.ICMP.OutEchoReps.Load())
	}

	reply := append([]byte(nil), m...)
	reply[0], reply[2], reply[3] = wire.ICMPEchoReply, 0, 0
	wire.ICMPv4(reply).FillChecksum()
	check := func(how string) {
		t.Helper()
		out := h.ep.take()
		if len(out) != 1 {
			t.Fatalf("%s: %d frames out", how, len(out))
		}
		o := parseOut(t, out[0])
		r := wire.ICMPv4(o.Payload())
		if o.Src() != foreign || o.Dst() != peerAddr || r.Type() != wire.ICMPEchoReply || r.ID() != 77 || wire.Fold(wire.Sum(r, 0)) != 0xffff {
			t.Fatalf("%s: %v -> %v type %d id %d", how, o.Src(), o.Dst(), r.Type(), r.ID())
		}
	}
	// IP_HDRINCL: the application's header, the original destination as source.
	raw.SetHdrIncl(true)
	pkt := make([]byte, 20+len(reply))
	hd := wire.IPv4Header{TTL: 64, Protocol: wire.ProtoICMP, Src: foreign, Dst: peerAddr, TotalLen: len(pkt)}
	hd.Put(pkt)
	copy(pkt[20:], reply)
	if _, err := raw.SendTo(pkt, netip.AddrPortFrom(peerAddr, 0), nil); err != nil {
		t.Fatal(err)
	}
	check("IP_HDRINCL")
	raw.SetHdrIncl(false)
	if _, err := raw.SendMsg(reply, netip.AddrPortFrom(peerAddr, 0), SendOpts{Src: foreign}, nil); err != nil {
		t.Fatal(err)
	}
	check("source per call")
}

// Without a transparent raw socket a diverted echo is dropped and
// counted, and nobody answers it: not the stack, not a plain raw
// socket, which does not see it.
func TestTransparentEchoNoSocket(t *testing.T) {
	h, raw := echoHarness(t, false)
	h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoICMP, Dst: foreign}, echoPayload(1, 1, nil)))
	if out := h.ep.take(); len(out) != 0 {
		t.Fatalf("answered: %d frames", len(out))
	}
	if _, _, _, err := raw.RecvFrom(make([]byte, 64), false); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("plain raw socket: %v", err)
	}
	st := h.s.Stats()
	if st.TProxy.EchoNoSocket.Load() != 1 || st.TProxy.DivertedEcho.Load() != 0 {
		t.Fatalf("no-socket %d diverted %d", st.TProxy.EchoNoSocket.Load(), st.TProxy.DivertedEcho.Load())
	}
}

// What no echo rule takes is unchanged: the stack answers an echo to
// its own address (the Local rule covers it, the transparent socket
// is bound elsewhere), drops one to a foreign address no rule names,
// ignores a broadcast echo (never diverted), and another ICMP type to
// a diverted prefix is not an echo.
func TestTransparentEchoNotDiverted(t *testing.T) {
	h, raw := echoHarness(t, true)
	// Bound to a foreign address: no transparent socket for our own.
	if err := raw.Bind(netip.AddrPortFrom(foreign, 0)); err != nil {
		t.Fatal(err)
	}
	h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoICMP}, echoPayload(5, 1, []byte("own"))))
	// A Local rule covers hostAddr: diverted, but nobody takes it there.
	if out := h.ep.take(); len(out) != 0 {
		t.Fatalf("diverted echo to our own address answered")
	}
	if h.s.Stats().TProxy.EchoNoSocket.Load() != 1 {
		t.Fatal("not counted")
	}

	h2, _ := tproxyHarness(t)
	if err := h2.s.AddTransparentRule(TransparentRule{Proto: TransparentICMPEcho, Dst: foreignPf}); err != nil {
		t.Fatal(err)
	}
	raw2 := h2.s.NewDgram(KindRaw, wire.ProtoICMP)
	raw2.SetTransparent(true)
	defer raw2.Close()
	h2.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoICMP}, echoPayload(5, 1, []byte("own"))))
	out := h2.ep.take()
	if len(out) != 1 {
		t.Fatalf("own address: %d frames, want the stack's reply", len(out))
	}
	if o := parseOut(t, out[0]); o.Src() != hostAddr || wire.ICMPv4(o.Payload()).Type() != wire.ICMPEchoReply {
		t.Fatalf("own address: %v type %d", o.Src(), o.Payload()[0])
	}
	other := netip.MustParseAddr("203.0.113.9")
	before := h2.s.Stats().IP.InAddrErrors.Load()
	h2.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoICMP, Dst: other}, echoPayload(5, 2, nil)))
	bc := netip.MustParseAddr("10.0.0.255")
	h2.ep.inject(bcastFrame(wire.IPv4Header{Protocol: wire.ProtoICMP, Dst: bc}, echoPayload(5, 3, nil)))
	ts := echoPayload(5, 4, nil)
	ts[0] = wire.ICMPTimestamp
	wire.ICMPv4(ts).FillChecksum()
	h2.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoICMP, Dst: foreign}, ts))
	if out := h2.ep.take(); len(out) != 0 {
		t.Fatalf("%d frames out", len(out))
	}
	st := h2.s.Stats()
	if st.TProxy.DivertedEcho.Load() != 0 || st.IP.InAddrErrors.Load()-before != 2 {
		t.Fatalf("diverted %d, not ours +%d", st.TProxy.DivertedEcho.Load(), st.IP.InAddrErrors.Load()-before)
	}
	// A broadcast echo to a prefix with a Local echo rule is not diverted either.
	h.ep.inject(bcastFrame(wire.IPv4Header{Protocol: wire.ProtoICMP, Dst: bc}, echoPayload(5, 5, nil)))
	if h.s.Stats().TProxy.DivertedEcho.Load() != 0 || h.s.Stats().TProxy.EchoNoSocket.Load() != 1 {
		t.Fatal("broadcast echo diverted")
	}
	// A bad checksum is counted, never delivered (the echo to our own
	// address was, as to any raw socket: drained first).
	for {
		if _, _, _, err := raw2.RecvFrom(make([]byte, 64), false); err != nil {
			break
		}
	}
	bad := echoPayload(5, 6, nil)
	bad[2] ^= 0xff
	h2.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoICMP, Dst: foreign}, bad))
	if _, _, _, err := raw2.RecvFrom(make([]byte, 64), false); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("bad echo delivered: %v", err)
	}
	if h2.s.Stats().ICMP.InCsumErrors.Load() != 1 {
		t.Fatal("bad checksum not counted")
	}
}

// Rules: an echo-only rule needs no port; an unknown protocol bit is EINVAL.
func TestTransparentEchoRuleValid(t *testing.T) {
	h := newHarness(t, Options{})
	if err := h.s.AddTransparentRule(TransparentRule{Proto: TransparentICMPEcho, Dst: foreignPf}); err != nil {
		t.Fatal(err)
	}
	if err := h.s.AddTransparentRule(TransparentRule{Proto: TransparentUDP | TransparentICMPEcho, Dst: foreignPf}); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("UDP without ToPort: %v", err)
	}
	if err := h.s.AddTransparentRule(TransparentRule{Proto: 1 << 5, Dst: foreignPf, ToPort: 1}); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("unknown protocol: %v", err)
	}
}

// ICMPv6: the echo reaches a transparent raw ICMPv6 socket with its
// original destination as IPV6_PKTINFO would give it; the reply leaves
// from there with a source per call.
func TestTransparentEcho6(t *testing.T) {
	h := newTP6(t)
	if err := h.s.AddTransparentRule(TransparentRule{Proto: TransparentICMPEcho, Dst: foreign6Pf}); err != nil {
		t.Fatal(err)
	}
	raw := h.s.NewDgram(KindRaw, wire.ProtoICMPv6)
	raw.SetInet6()
	raw.SetTransparent(true)
	defer raw.Close()
	echo := []byte{wire.ICMPv6EchoRequest, 0, 0, 0, 0, 99, 0, 7, 'p', 'i', 'n', 'g'}
	h.ep.inject(frame6(hostMAC, peerMAC, peer6, foreign6, wire.ProtoICMPv6, 64, echo, 0))
	if out := h.ep.take(); len(out) != 0 {
		t.Fatalf("the stack answered: %d frames", len(out))
	}
	b := make([]byte, 256)
	n, _, from, info, err := raw.RecvFromInfo(b, false)
	if err != nil {
		t.Fatalf("no diverted echo: %v", err)
	}
	m := wire.ICMPv6(b[:n])
	if from.Addr() != peer6 || info.Dst != foreign6 || m.Type() != wire.ICMPv6EchoRequest || m.ID() != 99 || m.Seq() != 7 {
		t.Fatalf("got %v -> %v type %d id %d seq %d", from, info.Dst, m.Type(), m.ID(), m.Seq())
	}
	if st := h.s.Stats(); st.TProxy.DivertedEcho.Load() != 1 || st.ICMP6.OutEchoReplies.Load() != 0 {
		t.Fatal("counters")
	}
	reply := append([]byte(nil), m...)
	reply[0] = wire.ICMPv6EchoReply
	if _, err := raw.SendMsg(reply, netip.AddrPortFrom(peer6, 0), SendOpts{Src: foreign6}, nil); err != nil {
		t.Fatal(err)
	}
	out := h.ep.take()
	if len(out) != 1 {
		t.Fatalf("%d frames out", len(out))
	}
	ip := wire.IPv6(out[0][14:])
	r := wire.ICMPv6(ip[40:])
	if ip.Src() != foreign6 || ip.Dst() != peer6 || r.Type() != wire.ICMPv6EchoReply || r.ID() != 99 {
		t.Fatalf("reply %v -> %v type %d", ip.Src(), ip.Dst(), r.Type())
	}
	if _, err := wire.ParseICMPv6(r, wire.PseudoHeaderSum6(ip.Src16(), ip.Dst16(), wire.ProtoICMPv6, 0)); err != nil {
		t.Fatalf("reply checksum: %v", err)
	}
	// An ICMP6_FILTER that blocks echo requests makes the socket no taker.
	var f [8]uint32
	f[wire.ICMPv6EchoRequest>>5] |= 1 << (wire.ICMPv6EchoRequest & 31)
	raw.SetICMP6Filter(f)
	h.ep.inject(frame6(hostMAC, peerMAC, peer6, foreign6, wire.ProtoICMPv6, 64, echo, 0))
	if h.s.Stats().TProxy.EchoNoSocket.Load() != 1 || len(h.ep.take()) != 0 {
		t.Fatal("a filtered socket took the echo")
	}
	// Not diverted (no rule): to our own address the stack answers.
	h.ep.inject(frame6(hostMAC, peerMAC, peer6, host6, wire.ProtoICMPv6, 64, echo, 0))
	if out := h.ep.take(); len(out) != 1 || h.s.Stats().ICMP6.OutEchoReplies.Load() != 1 {
		t.Fatalf("own address: %d frames", len(out))
	}
}

// SendUDPUnreach: a port unreachable from the original destination
// quoting the client's datagram, a host unreachable from the stack's own
// address; rate-limited per client as the stack's own errors are.
func TestSendUDPUnreach(t *testing.T) {
	h := newHarness(t, Options{})
	client := netip.AddrPortFrom(peerAddr, 40000)
	orig := netip.AddrPortFrom(foreign, 53)
	if err := h.s.SendUDPUnreach(client, orig, []byte("query"), syscall.ECONNREFUSED); err != nil {
		t.Fatal(err)
	}
	if err := h.s.SendUDPUnreach(client, orig, []byte("query"), syscall.EHOSTUNREACH); err != nil {
		t.Fatal(err)
	}
	out := h.ep.take()
	if len(out) != 2 {
		t.Fatalf("%d frames", len(out))
	}
	for i, want := range []struct {
		src  netip.Addr
		code uint8
	}{{foreign, wire.ICMPPortUnreach}, {hostAddr, wire.ICMPHostUnreach}} {
		o := parseOut(t, out[i])
		m, err := wire.ParseICMPv4(o.Payload())
		if err != nil {
			t.Fatal(err)
		}
		q := wire.IPv4(m.Payload())
		u := wire.UDP(q[20:])
		if o.Src() != want.src || o.Dst() != peerAddr || m.Type() != wire.ICMPDestUnreach || m.Code() != want.code ||
			q.Src() != peerAddr || q.Dst() != foreign || u.SrcPort() != 40000 || u.DstPort() != 53 || string(q[28:]) != "query" {
			t.Fatalf("%d: %v -> %v type %d code %d quote %x", i, o.Src(), o.Dst(), m.Type(), m.Code(), q)
		}
	}
	if err := h.s.SendUDPUnreach(client, orig, nil, syscall.EPERM); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("EPERM: %v", err)
	}
	// The per-destination burst (6) is spent after 4 more; the clock stands still.
	var limited int
	for range 6 {
		if err := h.s.SendUDPUnreach(client, orig, nil, syscall.ECONNREFUSED); errors.Is(err, syscall.EAGAIN) {
			limited++
		}
	}
	if limited != 2 || h.s.Stats().ICMP.OutRateLimitedPeer.Load() != 2 || len(h.ep.take()) != 4 {
		t.Fatalf("limited %d (counted %d)", limited, h.s.Stats().ICMP.OutRateLimitedPeer.Load())
	}
}

// SendUDPUnreach over IPv6: port unreachable from the original destination.
func TestSendUDPUnreach6(t *testing.T) {
	h := newTP6(t)
	client := netip.AddrPortFrom(peer6, 40000)
	orig := netip.AddrPortFrom(foreign6, 53)
	if err := h.s.SendUDPUnreach(client, orig, []byte("query"), syscall.ECONNREFUSED); err != nil {
		t.Fatal(err)
	}
	out := h.ep.take()
	if len(out) != 1 {
		t.Fatalf("%d frames", len(out))
	}
	ip := wire.IPv6(out[0][14:])
	m, err := wire.ParseICMPv6(ip[40:], wire.PseudoHeaderSum6(ip.Src16(), ip.Dst16(), wire.ProtoICMPv6, 0))
	if err != nil {
		t.Fatal(err)
	}
	q := wire.IPv6(m.Payload())
	u := wire.UDP(q[40:])
	if ip.Src() != foreign6 || ip.Dst() != peer6 || m.Type() != wire.ICMPv6DestUnreach || m.Code() != wire.ICMPv6PortUnreach ||
		q.Src() != peer6 || q.Dst() != foreign6 || u.SrcPort() != 40000 || u.DstPort() != 53 || string(q[48:]) != "query" {
		t.Fatalf("%v -> %v type %d code %d", ip.Src(), ip.Dst(), m.Type(), m.Code())
	}
	if err := h.s.SendUDPUnreach(client, netip.AddrPortFrom(foreign, 53), nil, syscall.ECONNREFUSED); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("mixed families: %v", err)
	}
}

// A fragmented echo request (a large ping) is reassembled and diverted
// whole, over both families; a fragmented ICMP message that is no echo
// request is dropped as not ours once whole, and counted.
func TestTransparentEchoFragments(t *testing.T) {
	t.Run("ipv4", func(t *testing.T) {
		h, raw := echoHarness(t, true)
		data := make([]byte, 2000)
		for i := range data {
			data[i] = byte(i)
		}
		p := echoPayload(9, 1, data)
		h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoICMP, Dst: foreign, ID: 7, FragOff: 1480}, p[1480:]))
		h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoICMP, Dst: foreign, ID: 7, MF: true}, p[:1480]))
		b := make([]byte, 4096)
		n, _, _, err := raw.RecvFrom(b, false)
		if err != nil {
			t.Fatalf("no diverted echo: %v", err)
		}
		ip := wire.IPv4(b[:n])
		m := wire.ICMPv4(ip.Payload())
		if ip.Dst() != foreign || ip.IsFragment() || m.Type() != wire.ICMPEcho || len(m.Payload()) != 2000 || m.Payload()[1999] != byte(1999%256) {
			t.Fatalf("got %v, %d bytes", ip.Dst(), len(m.Payload()))
		}
		if len(h.ep.take()) != 0 || h.s.Stats().TProxy.DivertedEcho.Load() != 1 {
			t.Fatal("answered, or not counted")
		}
		ts := echoPayload(9, 2, data)
		ts[0] = wire.ICMPTimestamp
		wire.ICMPv4(ts).FillChecksum()
		h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoICMP, Dst: foreign, ID: 8, MF: true}, ts[:1480]))
		h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoICMP, Dst: foreign, ID: 8, FragOff: 1480}, ts[1480:]))
		if st := h.s.Stats(); st.TProxy.FragNoRule.Load() != 1 || st.TProxy.DivertedEcho.Load() != 1 {
			t.Fatalf("whole non-echo: no-rule %d", st.TProxy.FragNoRule.Load())
		}
	})
	t.Run("ipv6", func(t *testing.T) {
		h := newTP6(t)
		if err := h.s.AddTransparentRule(TransparentRule{Proto: TransparentICMPEcho, Dst: foreign6Pf}); err != nil {
			t.Fatal(err)
		}
		raw := h.s.NewDgram(KindRaw, wire.ProtoICMPv6)
		raw.SetInet6()
		raw.SetTransparent(true)
		defer raw.Close()
		m := make([]byte, 8+2000)
		m[0] = wire.ICMPv6EchoRequest
		wire.ICMPv6(m).SetID(9)
		m[1999] = 0x5a
		wire.ICMPv6(m).FillChecksum(wire.PseudoHeaderSum6(peer6.As16(), foreign6.As16(), wire.ProtoICMPv6, len(m)))
		for _, f := range frag6(peer6, foreign6, wire.ProtoICMPv6, 5, m, 1232) {
			h.ep.inject(f)
		}
		b := make([]byte, 4096)
		n, _, _, info, err := raw.RecvFromInfo(b, false)
		if err != nil {
			t.Fatalf("no diverted echo: %v", err)
		}
		if info.Dst != foreign6 || n != len(m) || b[0] != wire.ICMPv6EchoRequest || b[1999] != 0x5a {
			t.Fatalf("got %d bytes to %v", n, info.Dst)
		}
		if len(h.ep.take()) != 0 || h.s.Stats().TProxy.DivertedEcho.Load() != 1 {
			t.Fatal("answered, or not counted")
		}
	})
}

// SendEchoError passes a router's error about a relayed echo to the
// client: from the router (an address the stack does not have), quoting
// the client's own request, which its ping socket matches.
func TestSendEchoError(t *testing.T) {
	h := newHarness(t, Options{})
	router := netip.MustParseAddr("203.0.113.1")
	req := echoPayload(7, 3, []byte("data"))
	if err := h.s.SendEchoError(router, peerAddr, foreign, wire.ICMPTimeExceeded, 0, req); err != nil {
		t.Fatal(err)
	}
	o, m, q := oneICMPError(t, h)
	e := wire.ICMPv4(q[20:])
	if o.Src() != router || o.Dst() != peerAddr || m.Type() != wire.ICMPTimeExceeded || q.Src() != peerAddr || q.Dst() != foreign ||
		q.Protocol() != wire.ProtoICMP || e.Type() != wire.ICMPEcho || e.ID() != 7 || e.Seq() != 3 {
		t.Fatalf("%v -> %v type %d, quote %v -> %v %x", o.Src(), o.Dst(), m.Type(), q.Src(), q.Dst(), q[20:])
	}
	if err := h.s.SendEchoError(router, peerAddr, foreign, wire.ICMPEchoReply, 0, req); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("an echo reply as the error: %v", err)
	}
	if err := h.s.SendEchoError(router, peerAddr, foreign, wire.ICMPDestUnreach, 1, req[:4]); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("a short request: %v", err)
	}
}

// A diverted echo costs no allocation: the rule walk, the taker check
// and the raw socket's pooled queue entry, nor does the reply sent from
// the original destination.
func TestTransparentEchoDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own; runs without -race")
	}
	h, raw := echoHarness(t, true)
	h.ep.discard = true
	echo := [][]byte{ipFrame(wire.IPv4Header{Protocol: wire.ProtoICMP, Dst: foreign}, echoPayload(1, 1, make([]byte, 56)))}
	reply := echoPayload(1, 1, make([]byte, 56))
	reply[0] = wire.ICMPEchoReply
	to := netip.AddrPortFrom(peerAddr, 0)
	buf := make([]byte, 2048)
	if a := testing.AllocsPerRun(200, func() {
		h.nic.DeliverFrames(echo)
		raw.RecvFrom(buf, false)
		raw.SendMsg(reply, to, SendOpts{Src: foreign}, nil)
	}); a != 0 {
		t.Errorf("%.1f allocations per echo", a)
	}
	if h.s.Stats().TProxy.DivertedEcho.Load() < 200 {
		t.Fatal("the echoes were not diverted")
	}
}

// BenchmarkTransparentEcho: one diverted echo request in, read from the
// transparent raw socket, and its reply out from the original destination.
func BenchmarkTransparentEcho(b *testing.B) {
	h, raw := echoHarness(&testing.T{}, true)
	h.ep.discard = true
	echo := [][]byte{ipFrame(wire.IPv4Header{Protocol: wire.ProtoICMP, Dst: foreign}, echoPayload(1, 1, make([]byte, 56)))}
	reply := echoPayload(1, 1, make([]byte, 56))
	reply[0] = wire.ICMPEchoReply
	to := netip.AddrPortFrom(peerAddr, 0)
	buf := make([]byte, 2048)
	b.ReportAllocs()
	for b.Loop() {
		h.nic.DeliverFrames(echo)
		if _, _, _, err := raw.RecvFrom(buf, false); err != nil {
			b.Fatal(err)
		}
		if _, err := raw.SendMsg(reply, to, SendOpts{Src: foreign}, nil); err != nil {
			b.Fatal(err)
		}
	}
}
