package stack

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/sockstack/sockstack/wire"
)

// optsCase injects a UDP datagram to hostAddr:5000 with opts and
// returns what a UDP endpoint and a raw UDP endpoint read.
func optsCase(t *testing.T, h *harness, opts []byte) (udp PacketInfo, raw []byte) {
	t.Helper()
	u := h.s.NewDgram(KindUDP, 17)
	defer u.Close()
	if err := u.Bind(netip.AddrPortFrom(hostAddr, 5000)); err != nil {
		t.Fatal(err)
	}
	r := h.s.NewDgram(KindRaw, wire.ProtoUDP)
	defer r.Close()
	h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoUDP, TTL: 9, Options: opts},
		udpPayload(peerAddr, hostAddr, 7, 5000, []byte("x"))))
	buf := make([]byte, 128)
	if _, _, _, info, err := u.RecvFromInfo(buf, false); err != nil {
		t.Fatalf("udp read: %v", err)
	} else {
		udp = info
	}
	n, _, _, err := r.RecvFrom(buf, false)
	if err != nil {
		t.Fatalf("raw read: %v", err)
	}
	return udp, buf[:n]
}

// msMidnight is the RFC 791 timestamp of the harness clock's now.
func msMidnight(h *harness) []byte {
	now := h.clk.Now().UTC()
	ms := uint32(now.Unix()%86400)*1000 + uint32(now.Nanosecond()/1e6)
	return binary.BigEndian.AppendUint32(nil, ms)
}

func TestRecvOptionsRecordRoute(t *testing.T) {
	h := newHarness(t, Options{})
	// NOP, Record Route with two slots, pointer at the first.
	opts := []byte{1, 7, 11, 4, 0, 0, 0, 0, 9, 9, 9, 9}
	info, raw := optsCase(t, h, opts)
	want := []byte{1, 7, 11, 8, 10, 0, 0, 1, 9, 9, 9, 9}
	if got := info.Opts.Bytes(); !bytes.Equal(got, want) {
		t.Fatalf("IP_RECVOPTS %x, want %x (this host recorded, pointer moved)", got, want)
	}
	if got := raw[20:32]; !bytes.Equal(got, want) {
		t.Fatalf("raw header options %x, want %x", got, want)
	}
	var out [wire.IPv4MaxOptionsLen]byte
	n, ok := h.s.RetOpts(&info.Opts, &out)
	wantRet := []byte{7, 11, 8, 10, 0, 0, 1, 0, 0, 0, 0, 0}
	if !ok || !bytes.Equal(out[:n], wantRet) {
		t.Fatalf("IP_RETOPTS %x ok %v, want %x (reply's slot empty, END padding)", out[:n], ok, wantRet)
	}
}

func TestRetOptsNoRoomForReply(t *testing.T) {
	h := newHarness(t, Options{})
	// Record Route with one slot and two spare bytes: the receive path
	// fills the slot; the reply would need a slot that does not fit.
	info, _ := optsCase(t, h, []byte{7, 9, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	var out [wire.IPv4MaxOptionsLen]byte
	if _, ok := h.s.RetOpts(&info.Opts, &out); ok {
		t.Fatal("RetOpts ok, want false (Linux: MSG_CTRUNC)")
	}
	// Full already: copied unchanged.
	info, _ = optsCase(t, h, []byte{7, 7, 8, 1, 2, 3, 4, 0})
	n, ok := h.s.RetOpts(&info.Opts, &out)
	if want := []byte{7, 7, 8, 1, 2, 3, 4, 0}; !ok || !bytes.Equal(out[:n], want) {
		t.Fatalf("full RR: %x %v, want %x", out[:n], ok, want)
	}
}

func TestRecvOptionsTimestamps(t *testing.T) {
	h := newHarness(t, Options{})
	ms := msMidnight(h)
	// Timestamps only, room for two.
	info, _ := optsCase(t, h, []byte{68, 12, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	want := append([]byte{68, 12, 9, 0}, ms...)
	want = append(want, 0, 0, 0, 0)
	if got := info.Opts.Bytes(); !bytes.Equal(got, want) {
		t.Fatalf("TS only: %x, want %x", got, want)
	}
	var out [wire.IPv4MaxOptionsLen]byte
	n, ok := h.s.RetOpts(&info.Opts, &out)
	if want := want; !ok || !bytes.Equal(out[:n], want) {
		// The reply's slot (the second) is left empty: unchanged here.
		t.Fatalf("TS only reply: %x %v, want %x", out[:n], ok, want)
	}
	// Address and timestamp pairs.
	info, _ = optsCase(t, h, []byte{68, 20, 5, 1, 0, 0, 0, 0, 0, 0, 0, 0, 7, 7, 7, 7, 7, 7, 7, 7})
	want = append([]byte{68, 20, 13, 1, 10, 0, 0, 1}, ms...)
	want = append(want, 7, 7, 7, 7, 7, 7, 7, 7)
	if got := info.Opts.Bytes(); !bytes.Equal(got, want) {
		t.Fatalf("TS and addr: %x, want %x", got, want)
	}
	n, ok = h.s.RetOpts(&info.Opts, &out)
	wantRet := append([]byte{68, 20, 13, 1, 10, 0, 0, 1}, ms...)
	wantRet = append(wantRet, 0, 0, 0, 0, 0, 0, 0, 0)
	if !ok || !bytes.Equal(out[:n], wantRet) {
		t.Fatalf("TS and addr reply: %x %v, want %x", out[:n], ok, wantRet)
	}
	// Prespecified: this host's address gets a time, another's not.
	info, _ = optsCase(t, h, []byte{68, 20, 5, 3, 10, 0, 0, 1, 0, 0, 0, 0, 10, 0, 0, 2, 0, 0, 0, 0})
	want = append([]byte{68, 20, 13, 3, 10, 0, 0, 1}, ms...)
	want = append(want, 10, 0, 0, 2, 0, 0, 0, 0)
	if got := info.Opts.Bytes(); !bytes.Equal(got, want) {
		t.Fatalf("prespec: %x, want %x", got, want)
	}
	// Full: the overflow counter goes up.
	info, raw := optsCase(t, h, []byte{68, 8, 9, 0x20, 0, 0, 0, 1})
	if want := []byte{68, 8, 9, 0x30, 0, 0, 0, 1}; !bytes.Equal(info.Opts.Bytes(), want) || !bytes.Equal(raw[20:28], want) {
		t.Fatalf("overflow: %x / raw %x, want %x", info.Opts.Bytes(), raw[20:28], want)
	}
}

func TestRecvOptionsAfterEnd(t *testing.T) {
	h := newHarness(t, Options{})
	info, _ := optsCase(t, h, []byte{1, 0, 0x55, 0x55})
	if want := []byte{1, 0, 0, 0}; !bytes.Equal(info.Opts.Bytes(), want) {
		t.Fatalf("after END: %x, want %x", info.Opts.Bytes(), want)
	}
	var out [wire.IPv4MaxOptionsLen]byte
	if n, ok := h.s.RetOpts(&info.Opts, &out); !ok || n != 0 {
		t.Fatalf("RetOpts of NOP/END: %d %v, want 0 true (an empty IP_RETOPTS)", n, ok)
	}
	// No options: nothing stored.
	info, _ = optsCase(t, h, nil)
	if info.Opts.Len != 0 {
		t.Fatalf("no options: Len %d", info.Opts.Len)
	}
}

// Any options, well formed or not, are rewritten and echoed without a
// panic and within 40 bytes.
func FuzzRecvOptions(f *testing.F) {
	f.Add([]byte{1, 7, 11, 4, 0, 0, 0, 0, 9, 9, 9, 9}, uint8(3))
	f.Add([]byte{68, 12, 5, 1, 0, 0, 0, 0, 0, 0, 0, 0}, uint8(7))
	f.Add([]byte{7, 2, 0, 0}, uint8(1))
	f.Fuzz(func(t *testing.T, opts []byte, flags uint8) {
		if len(opts) > wire.IPv4MaxOptionsLen {
			opts = opts[:wire.IPv4MaxOptionsLen]
		}
		for len(opts)%4 != 0 {
			opts = append(opts, 0)
		}
		s := New(Options{})
		defer s.Close()
		h := make([]byte, 20+len(opts))
		h[0] = 0x40 | byte(len(h)/4)
		copy(h[12:], []byte{10, 0, 0, 2, 10, 0, 0, 1})
		copy(h[20:], opts)
		o := s.recvOptions(wire.IPv4(h))
		if int(o.Len) != len(opts) {
			t.Fatalf("Len %d, want %d", o.Len, len(opts))
		}
		o.flags = flags & 7
		var out [wire.IPv4MaxOptionsLen]byte
		if n, ok := s.RetOpts(&o, &out); ok && (n > len(out) || n%4 != 0) {
			t.Fatalf("RetOpts n %d", n)
		}
		o.Len = 200 // a caller's garbage
		_ = o.Bytes()
	})
}

// TestRefusedOptionsGoBack: a datagram with IPv4 options that its
// socket refuses (receive buffer full, socket closed) gives the copy of
// its options back to the pool, so refusals allocate nothing.
func TestRefusedOptionsGoBack(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector drops pooled objects at random; runs without -race")
	}
	h := newHarness(t, Options{})
	h.ep.discard = true
	e := h.s.NewDgram(KindUDP, 17)
	if err := e.Bind(netip.AddrPortFrom(hostAddr, 5000)); err != nil {
		t.Fatal(err)
	}
	e.SetRecvBuf(0) // 2,304 bytes: one 1,500-byte datagram fills it
	rr := append([]byte{ipOptRR, 39, 4}, make([]byte, 37)...)
	big := ipFrame(wire.IPv4Header{Protocol: wire.ProtoUDP, Options: rr}, udpPayload(peerAddr, hostAddr, 7, 5000, make([]byte, 1400)))
	frames := [][]byte{big}
	h.nic.DeliverFrames(frames) // queued: an empty queue takes one
	if a := testing.AllocsPerRun(100, func() { h.nic.DeliverFrames(frames) }); a != 0 {
		t.Errorf("buffer full: %.2f allocations per refused datagram", a)
	}
	if d := e.Drops(); d != 101 {
		t.Errorf("%d drops, want 101", d)
	}

	e.Close()
	hdr := wire.IPv4(big[wire.EthernetHeaderLen:])
	payload := hdr[hdr.HeaderLen()+wire.UDPHeaderLen:]
	from := netip.AddrPortFrom(peerAddr, 7)
	if a := testing.AllocsPerRun(100, func() {
		if e.enqueue(payload, from, hdr, 0) {
			t.Fatal("a closed socket queued a datagram")
		}
	}); a != 0 {
		t.Errorf("closed: %.2f allocations per refused datagram", a)
	}
}

// A diverted datagram keeps its IPv4 options, and this host's Record
// Route slot names the original destination, as for a diverted TCP
// segment: Linux's TPROXY route there is local, so fib_compute_spec_dst
// gives that address. Without options it carries none, as before.
func TestRecvOptionsDiverted(t *testing.T) {
	h, u := tproxyHarness(t)
	opts := []byte{1, 7, 11, 4, 0, 0, 0, 0, 9, 9, 9, 9}
	h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoUDP, Dst: foreign, Options: opts},
		udpPayload(peerAddr, foreign, 7, 53, []byte("x"))))
	h.ep.inject(ipFrame(wire.IPv4Header{Protocol: wire.ProtoUDP, Dst: foreign},
		udpPayload(peerAddr, foreign, 7, 53, []byte("y"))))
	buf := make([]byte, 64)
	_, _, _, info, err := u.RecvFromInfo(buf, false)
	if err != nil {
		t.Fatal(err)
	}
	f := foreign.As4()
	want := []byte{1, 7, 11, 8, f[0], f[1], f[2], f[3], 9, 9, 9, 9}
	if got := info.Opts.Bytes(); !bytes.Equal(got, want) {
		t.Fatalf("diverted IP_RECVOPTS %x, want %x", got, want)
	}
	if _, _, _, info, err = u.RecvFromInfo(buf, false); err != nil || len(info.Opts.Bytes()) != 0 {
		t.Fatalf("second datagram: options %x, err %v; want none", info.Opts.Bytes(), err)
	}
}
