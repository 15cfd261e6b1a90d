package tcp

import (
	"net/netip"
	"testing"
	"time"

	"github.com/sockstack/sockstack/wire"
)

// TestMemLimit: with a small tcp_mem, a receiver whose application does
// not read stops growing its buffer (pressure), drops data it has no
// memory for (counted) and, once the application reads, gets every byte
// intact: nothing acknowledged was lost.
func TestMemLimit(t *testing.T) {
	n := newPair(5, Config{MemPressure: 16 << 10, MemLimit: 32 << 10})
	n.delay = time.Millisecond
	c, s := n.connect(t)
	const size = 512 << 10
	src := newStream(9, size)
	// Fill the receiver while nobody reads.
	n.run(2*time.Second, func() bool {
		if err := src.pump(c); err != nil {
			t.Fatal(err)
		}
		return false
	})
	st := n.b.Stats()
	if st.MemoryPressures == 0 {
		t.Fatal("no memory pressure")
	}
	if got := n.b.memTotal(); got > 64<<10 {
		t.Fatalf("receiver holds %d buffer bytes, limit 32 KiB", got)
	}
	if s.Info().RcvSpace > 128<<10 {
		t.Fatalf("receive buffer auto-tuned to %d under pressure", s.Info().RcvSpace)
	}
	// Now read everything.
	k := newSink()
	ok := n.run(5*time.Minute, func() bool {
		if err := src.pump(c); err != nil {
			t.Fatal(err)
		}
		if src.left == 0 {
			c.Shutdown(ShutWr)
		}
		if err := k.drain(s); err != nil {
			t.Fatal(err)
		}
		return k.eof
	})
	if !ok || k.n != size || string(k.h.Sum(nil)) != string(src.h.Sum(nil)) {
		t.Fatalf("got %d of %d bytes (ok %v)", k.n, size, ok)
	}
	t.Logf("receiver stats: pressures %d drops %d", n.b.Stats().MemoryPressures, n.b.Stats().RcvMemDrops)
	c.Close()
	s.Close()
	n.run(5*time.Minute, func() bool { return c.State() == StateClosed && s.State() == StateClosed })
	if a, b := n.a.memTotal(), n.b.memTotal(); a != 0 || b != 0 {
		t.Fatalf("buffers still charged after close: %d %d", a, b)
	}
}

// TestMemLimitDrops: at the hard limit a segment that needs the ring to
// grow is dropped and counted, and not acknowledged.
func TestMemLimitDrops(t *testing.T) {
	s := newScript(t, Config{MemPressure: 1 << 10, MemLimit: 2 << 10})
	_, c, iss := s.passiveOpen(noOpts)
	s.inject(seg{flags: fPA, seq: 1001, ack: iss + 1, win: 65535, data: make([]byte, 1460)})
	s.clk.Advance(time.Second)
	s.out()
	s.inject(seg{flags: fPA, seq: 2461, ack: iss + 1, win: 65535, data: make([]byte, 1460)})
	s.inject(seg{flags: fPA, seq: 2461 + 1460, ack: iss + 1, win: 65535, data: make([]byte, 1460)})
	o := s.out()
	if len(o) == 0 || o[len(o)-1].h.Ack != 2461 {
		t.Fatalf("at the limit: %v", o)
	}
	if st := s.p.Stats(); st.RcvMemDrops == 0 || st.MemBytes > 4<<10 {
		t.Fatalf("drops %d bytes %d", st.RcvMemDrops, st.MemBytes)
	}
	if got := len(readAll(c)); got != 1460 {
		t.Fatalf("read %d", got)
	}
	// With the ring drained the next segment fits without growing.
	s.inject(seg{flags: fPA, seq: 2461, ack: iss + 1, win: 65535, data: make([]byte, 1000)})
	s.clk.Advance(time.Second)
	if o := s.out(); len(o) == 0 || o[len(o)-1].h.Ack != 3461 {
		t.Fatalf("after reading: %v", o)
	}
}

// TestMaxOrphans: closing more connections with data in flight than
// MaxOrphans resets the excess (AbortOnMemory); orphans are uncounted
// when they finish.
func TestMaxOrphans(t *testing.T) {
	s := newScript(t, Config{MaxOrphans: 2})
	l, c1, iss1 := s.passiveOpen(noOpts)
	p1 := s.remote.Port()
	c2, iss2 := s.openAnother(l, 41001, noOpts)
	c3, _ := s.openAnother(l, 41002, noOpts)
	for _, c := range []*Endpoint{c1, c2, c3} {
		c.Write([]byte("data"))
	}
	s.out()
	c1.Close()
	c2.Close()
	s.out() // their FINs
	if st := s.p.Stats(); st.Orphans != 2 || st.AbortOnMemory != 0 {
		t.Fatalf("orphans %d aborts %d", st.Orphans, st.AbortOnMemory)
	}
	c3.Close()
	o := s.out()
	r := o[len(o)-1]
	if r.h.Flags&fR == 0 || c3.State() != StateClosed {
		t.Fatalf("%v %v", r, c3.State())
	}
	if st := s.p.Stats(); st.Orphans != 2 || st.AbortOnMemory != 1 {
		t.Fatalf("orphans %d aborts %d", st.Orphans, st.AbortOnMemory)
	}
	// The peer acknowledges c1's data, FIN, and closes: TIME_WAIT.
	s.remote = netip.AddrPortFrom(remoteIP, p1)
	s.inject(seg{flags: fFA, seq: 1001, ack: iss1 + 6, win: 65535})
	if !inTimeWait(c1) {
		t.Fatal(c1.State())
	}
	// c2's peer resets.
	s.remote = netip.AddrPortFrom(remoteIP, 41001)
	s.inject(seg{flags: fR, seq: 1001, ack: iss2 + 1})
	if st := s.p.Stats(); st.Orphans != 0 {
		t.Fatalf("orphans %d after they finished", st.Orphans)
	}
	_ = wire.TCPFlagACK
}

// TestTinySegmentsBounded: the receive side charges what it holds, ring
// capacity, and tiny segments cost their bytes only: 20,000 one-byte
// segments take a 32 KiB ring (Linux's truesize would be ~15 MB), and
// 10,000 one-byte out-of-order segments with gaps keep at most
// maxOOORanges ranges, the rest dropped and counted, memory within the
// receive buffer.
func TestTinySegmentsBounded(t *testing.T) {
	s := newScript(t, Config{})
	_, c, iss := s.passiveOpen(noOpts)
	for i := 0; i < 20000; i++ {
		s.inject(seg{flags: fA, seq: 1001 + uint32(i), ack: iss + 1, win: 65535, data: []byte{byte(i)}})
	}
	s.out()
	if got := s.p.Stats().MemBytes; got != 32<<10 {
		t.Fatalf("20,000 one-byte segments charged %d bytes", got)
	}
	base := uint32(1001 + 20000)
	for i := 0; i < 10000; i++ {
		s.inject(seg{flags: fA, seq: base + 1 + 2*uint32(i), ack: iss + 1, win: 65535, data: []byte{1}})
	}
	s.out()
	st := s.p.Stats()
	c.lock()
	ranges, rcvCap := len(c.ooo), c.rcvCap
	c.unlock()
	if ranges > maxOOORanges || st.OFOQueued != maxOOORanges || st.OFOQueueDrops != 10000-maxOOORanges {
		t.Fatalf("ranges %d queued %d dropped %d", ranges, st.OFOQueued, st.OFOQueueDrops)
	}
	if int(st.MemBytes) > rcvCap {
		t.Fatalf("%d bytes charged, receive buffer %d", st.MemBytes, rcvCap)
	}
	if got := readAll(c); len(got) != 20000 || got[19999] != byte(19999&0xff) {
		t.Fatalf("read %d bytes", len(got))
	}
}

// TestIdleConnectionHoldsNoBuffer: after a small request and response,
// an idle connection gives its (small) send and receive rings back, so
// a million idle connections do not hold gigabytes of empty buffers.
func TestIdleConnectionHoldsNoBuffer(t *testing.T) {
	n := newPair(5, Config{})
	n.delay = time.Millisecond
	c, s := n.connect(t)
	var b [16]byte
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	got := 0
	n.run(time.Second, func() bool {
		k, _ := s.Read(b[:], false)
		got += k
		return got == 4
	})
	if _, err := s.Write([]byte("pong")); err != nil {
		t.Fatal(err)
	}
	got = 0
	n.run(time.Second, func() bool {
		k, _ := c.Read(b[:], false)
		got += k
		return got == 4
	})
	// Everything read and acknowledged.
	n.run(time.Second, func() bool { return c.Info().BytesInFlight == 0 && s.Info().BytesInFlight == 0 })
	if a, b := n.a.memTotal(), n.b.memTotal(); a != 0 || b != 0 {
		t.Fatalf("idle connection still holds %d and %d buffer bytes", a, b)
	}
	// And the next exchange works as before.
	if _, err := c.Write([]byte("again")); err != nil {
		t.Fatal(err)
	}
	got = 0
	n.run(time.Second, func() bool {
		k, _ := s.Read(b[:], false)
		got += k
		return got == 5
	})
	if got != 5 || string(b[:5]) != "again" {
		t.Fatalf("second exchange: %q", b[:got])
	}
}
