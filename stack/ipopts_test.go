package stack

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/sockstack/sockstack/wire"
)

func echoWithOptions(opts []byte) []byte {
	return ipFrame(wire.IPv4Header{Protocol: wire.ProtoICMP, Options: opts}, echoPayload(9, 1, []byte("opt")))
}

// expectEchoReply takes the one frame out and returns its IP options.
func expectEchoReply(t *testing.T, h *harness) []byte {
	t.Helper()
	out := h.ep.take()
	if len(out) != 1 {
		t.Fatalf("%d frames out, want one echo reply", len(out))
	}
	ip := parseOut(t, out[0])
	m, err := wire.ParseICMPv4(ip.Payload())
	if err != nil || m.Type() != wire.ICMPEchoReply || string(m.Payload()) != "opt" {
		t.Fatalf("not the echo reply: %x (%v)", ip, err)
	}
	return ip.Options()
}

func a4(a netip.Addr) []byte { b := a.As4(); return b[:] }

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// LSRR and SSRR packets are dropped and counted, never answered.
func TestSourceRouteDropped(t *testing.T) {
	h := newHarness(t, Options{})
	for _, typ := range []byte{ipOptLSRR, ipOptSSRR} {
		h.ep.inject(echoWithOptions([]byte{typ, 7, 4, 10, 0, 0, 9, 0}))
		if out := h.ep.take(); len(out) != 0 {
			t.Fatalf("option %d: source-routed echo answered", typ)
		}
	}
	if got := h.s.Stats().IP.InSourceRouted.Load(); got != 2 {
		t.Fatalf("InSourceRouted = %d, want 2", got)
	}
}

// A malformed option draws a parameter problem pointing at the byte
// Linux points at, quoting the packet; the answers are rate-limited; a
// corrupted header is not answered.
func TestBadOptionParameterProblem(t *testing.T) {
	h := newHarness(t, Options{})
	cases := []struct {
		name string
		opts []byte
		ptr  int
	}{
		{"length beyond header", []byte{ipOptRR, 39, 4, 0}, 20},
		{"length 1", []byte{1, 1, 0x44, 1}, 22},
		{"RR pointer below 4", []byte{ipOptRR, 7, 2, 0, 0, 0, 0, 0}, 22},
		{"RR with no room for its slot", []byte{ipOptRR, 6, 4, 0, 0, 0, 0, 0}, 22},
		{"TS too short", []byte{ipOptTS, 3, 5, 0}, 21},
		{"TS overflow wraps", []byte{ipOptTS, 8, 9, 0xf0, 0, 0, 0, 0}, 23},
		{"two RR", []byte{ipOptRR, 3, 4, ipOptRR, 3, 4, 0, 0}, 23},
	}
	for _, c := range cases {
		f := echoWithOptions(c.opts)
		h.ep.inject(f)
		out := h.ep.take()
		if len(out) != 1 {
			t.Fatalf("%s: %d frames, want a parameter problem", c.name, len(out))
		}
		ip := parseOut(t, out[0])
		m, err := wire.ParseICMPv4(ip.Payload())
		if err != nil || m.Type() != wire.ICMPParamProblem || m.Code() != 0 {
			t.Fatalf("%s: got %x", c.name, ip)
		}
		if p := int(m[4]); p != c.ptr {
			t.Errorf("%s: pointer %d, want %d", c.name, p, c.ptr)
		}
		if !bytes.Equal(m.Payload(), f[14:]) {
			t.Errorf("%s: quoted packet differs", c.name)
		}
		h.clk.Advance(time.Second) // one token back for the next case
	}
	st := h.s.Stats()
	if st.IP.InBadOptions.Load() != uint64(len(cases)) || st.ICMP.OutParmProbs.Load() != uint64(len(cases)) {
		t.Fatalf("bad options %d, parameter problems %d", st.IP.InBadOptions.Load(), st.ICMP.OutParmProbs.Load())
	}
	// Rate-limited like every error.
	h.clk.Advance(time.Minute)
	for i := 0; i < 50; i++ {
		h.ep.inject(echoWithOptions([]byte{ipOptRR, 39, 4, 0}))
	}
	if n := len(h.ep.take()); n != 6 {
		t.Fatalf("50 bad-option packets drew %d parameter problems, want 6", n)
	}
	// A header whose checksum fails is not answered.
	h.clk.Advance(time.Minute)
	f := echoWithOptions([]byte{ipOptRR, 39, 4, 0})
	f[14+10] ^= 0x55
	h.ep.inject(f)
	if n := len(h.ep.take()); n != 0 {
		t.Fatalf("corrupted header answered")
	}
}

// Record Route in an echo request comes back with this host recorded on
// arrival and on departure (Linux's ip_options_echo), after the sender's
// entries; a full option comes back unchanged.
func TestEchoReflectsRecordRoute(t *testing.T) {
	h := newHarness(t, Options{})
	rr := cat([]byte{ipOptRR, 39, 8}, a4(peerAddr), make([]byte, 32), []byte{0})
	h.ep.inject(echoWithOptions(rr))
	got := expectEchoReply(t, h)
	want := cat([]byte{ipOptRR, 39, 16}, a4(peerAddr), a4(hostAddr), a4(hostAddr), make([]byte, 24), []byte{0})
	if !bytes.Equal(got, want) {
		t.Fatalf("RR in reply\n got %x\nwant %x", got, want)
	}
	// Full: ptr beyond the length.
	full := cat([]byte{ipOptRR, 11, 12}, a4(peerAddr), a4(peerAddr), []byte{1})
	h.ep.inject(echoWithOptions(full))
	got = expectEchoReply(t, h)
	want = cat([]byte{ipOptRR, 11, 12}, a4(peerAddr), a4(peerAddr), []byte{0})
	if !bytes.Equal(got, want) {
		t.Fatalf("full RR\n got %x\nwant %x", got, want)
	}
	// One slot left: arrival only.
	one := cat([]byte{ipOptRR, 7, 4}, make([]byte, 4), []byte{0})
	h.ep.inject(echoWithOptions(one))
	got = expectEchoReply(t, h)
	want = cat([]byte{ipOptRR, 7, 8}, a4(hostAddr), []byte{0})
	if !bytes.Equal(got, want) {
		t.Fatalf("one-slot RR\n got %x\nwant %x", got, want)
	}
}

// Timestamp options: timestamps only, address+timestamp pairs, the
// overflow count of a full option, prespecified addresses.
func TestEchoReflectsTimestamp(t *testing.T) {
	h := newHarness(t, Options{})
	h.clk.Advance(1234 * time.Millisecond)
	now := h.clk.Now().UTC()
	ms := uint32((now.Hour()*3600+now.Minute()*60+now.Second())*1000 + now.Nanosecond()/1e6)
	ts := binary.BigEndian.AppendUint32(nil, ms)

	h.ep.inject(echoWithOptions(cat([]byte{ipOptTS, 16, 5, tsOnly}, make([]byte, 12))))
	got := expectEchoReply(t, h)
	want := cat([]byte{ipOptTS, 16, 13, tsOnly}, ts, ts, make([]byte, 4))
	if !bytes.Equal(got, want) {
		t.Fatalf("TS only\n got %x\nwant %x", got, want)
	}

	h.ep.inject(echoWithOptions(cat([]byte{ipOptTS, 20, 5, tsAndAddr}, make([]byte, 16))))
	got = expectEchoReply(t, h)
	want = cat([]byte{ipOptTS, 20, 21, tsAndAddr}, a4(hostAddr), ts, a4(hostAddr), ts)
	if !bytes.Equal(got, want) {
		t.Fatalf("TS and address\n got %x\nwant %x", got, want)
	}

	h.ep.inject(echoWithOptions(cat([]byte{ipOptTS, 8, 9, 0x20 | tsOnly}, []byte{1, 2, 3, 4})))
	got = expectEchoReply(t, h)
	want = cat([]byte{ipOptTS, 8, 9, 0x30 | tsOnly}, []byte{1, 2, 3, 4})
	if !bytes.Equal(got, want) {
		t.Fatalf("full TS overflow\n got %x\nwant %x", got, want)
	}

	pre := cat([]byte{ipOptTS, 20, 5, tsPrespec}, a4(hostAddr), make([]byte, 4), a4(peerAddr), make([]byte, 4))
	h.ep.inject(echoWithOptions(pre))
	got = expectEchoReply(t, h)
	want = cat([]byte{ipOptTS, 20, 13, tsPrespec}, a4(hostAddr), ts, a4(peerAddr), make([]byte, 4))
	if !bytes.Equal(got, want) {
		t.Fatalf("prespecified\n got %x\nwant %x", got, want)
	}

	// Both options, in Linux's order (RR, then TS); others are not echoed.
	both := cat([]byte{ipOptRA, 4, 0, 0}, []byte{ipOptTS, 8, 5, tsOnly}, make([]byte, 4), []byte{ipOptRR, 7, 4}, make([]byte, 4))
	h.ep.inject(echoWithOptions(both))
	got = expectEchoReply(t, h)
	want = cat([]byte{ipOptRR, 7, 8}, a4(hostAddr), []byte{ipOptTS, 8, 9, tsOnly}, ts, []byte{0})
	if !bytes.Equal(got, want) {
		t.Fatalf("RR and TS\n got %x\nwant %x", got, want)
	}
}

// Arbitrary option bytes in an echo request never panic the host, and
// whatever it answers is a well-formed IPv4 packet (option lists
// included). The reflected options keep Linux's semantics, which may
// leave a pointer that the next hop refuses (odd lengths, an overflow
// count of 15), so their contents are not checked here.
func FuzzEchoOptions(f *testing.F) {
	f.Add([]byte{ipOptRR, 39, 4})
	f.Add([]byte{ipOptTS, 40, 5, tsAndAddr})
	f.Add([]byte{ipOptTS, 12, 5, tsPrespec, 10, 0, 0, 1})
	f.Add([]byte{ipOptLSRR, 7, 4, 1, 2, 3, 4})
	f.Add([]byte{1, 1, ipOptRR, 7, 8, 1, 2, 3, 4, ipOptTS, 8, 9, 0xe0})
	h := newHarness(&testing.T{}, Options{ICMPRateMask: 1 << 31})
	f.Cleanup(h.s.Close)
	f.Fuzz(func(t *testing.T, opts []byte) {
		if len(opts) > wire.IPv4MaxOptionsLen {
			opts = opts[:wire.IPv4MaxOptionsLen]
		}
		h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoICMP, Options: opts}, echoPayload(1, 1, nil)))
		for _, fr := range h.ep.take() {
			if _, err := wire.ParseIPv4(fr[14:]); err != nil {
				t.Fatalf("answer does not parse: %v", err)
			}
		}
	})
}
