package stack

import (
	"net/netip"
	"testing"
	"time"
	"unsafe"

	"github.com/sockstack/sockstack/wire"
)

// TestDgramArrivalTime: once asked, the queue records each datagram's
// arrival from the stack's clock, and a read (or peek, or a peek from
// an offset) later gives that time, not its own; before, it records 0.
func TestDgramArrivalTime(t *testing.T) {
	h := newHarness(t, Options{})
	clk := h.clk
	clk.Advance(42)
	e := h.s.NewDgram(KindUDP, 17)
	if err := e.Bind(netip.AddrPortFrom(hostAddr, 5000)); err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	frame := func(s string) [][]byte {
		return [][]byte{ipFrame(wire.IPv4Header{Protocol: wire.ProtoUDP}, udpPayload(peerAddr, hostAddr, 1, 5000, []byte(s)))}
	}
	h.nic.DeliverFrames(frame("before"))
	if e.RxTimestamps() {
		t.Fatal("timestamps on by default")
	}
	e.EnableRxTimestamps()
	first := clk.Now()
	h.nic.DeliverFrames(frame("first"))
	clk.Advance(time.Second)
	second := clk.Now()
	h.nic.DeliverFrames(frame("second"))
	clk.Advance(time.Second)

	buf := make([]byte, 64)
	var info PacketInfo
	check := func(step string, peek bool, off int, want string, at time.Time) {
		t.Helper()
		n, _, _, got, err := e.RecvFromAt(buf, peek, off, &info)
		if err != nil || string(buf[:n]) != want {
			t.Fatalf("%s: %q %v, want %q", step, buf[:n], err, want)
		}
		if wantNs := int64(0); !at.IsZero() {
			wantNs = at.UnixNano()
			if got != wantNs {
				t.Fatalf("%s: arrival %d, want %d", step, got, wantNs)
			}
		} else if got != 0 {
			t.Fatalf("%s: arrival %d, want none", step, got)
		}
	}
	check("peek at the offset of the second", true, len("before")+len("first"), "second", second)
	check("read of one queued before", false, -1, "before", time.Time{})
	check("peek", true, -1, "first", first)
	check("read", false, -1, "first", first)
	check("read", false, -1, "second", second)
}

// TestDgramStampAllocsAndSize: recording arrival times allocates
// nothing per datagram, and the queue entry stays within 128 bytes.
func TestDgramStampAllocsAndSize(t *testing.T) {
	if n := unsafe.Sizeof(received{}); n > 128 {
		t.Fatalf("queue entry of %d bytes", n)
	}
	if raceEnabled {
		t.Skip("the race detector allocates on its own; runs without -race")
	}
	h := newHarness(t, Options{})
	h.ep.discard = true
	e := h.s.NewDgram(KindUDP, 17)
	if err := e.Bind(netip.AddrPortFrom(hostAddr, 5000)); err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	e.EnableRxTimestamps()
	udp := [][]byte{ipFrame(wire.IPv4Header{Protocol: wire.ProtoUDP}, udpPayload(peerAddr, hostAddr, 1, 5000, make([]byte, 64)))}
	buf := make([]byte, 2048)
	if a := testing.AllocsPerRun(200, func() { h.nic.DeliverFrames(udp); e.RecvFromAt(buf, false, -1, nil) }); a != 0 {
		t.Errorf("%.1f allocations per datagram", a)
	}
}

// BenchmarkReceiveUDPStamped is BenchmarkReceiveUDP with arrival times
// recorded (stamped) or not: the cost of one clock read per datagram.
func BenchmarkReceiveUDPStamped(b *testing.B) {
	for _, on := range []bool{false, true} {
		b.Run(map[bool]string{false: "off", true: "on"}[on], func(b *testing.B) {
			h := newHarness(&testing.T{}, Options{})
			defer h.s.Close()
			h.ep.discard = true
			e := h.s.NewDgram(KindUDP, 17)
			if err := e.Bind(netip.AddrPortFrom(hostAddr, 5000)); err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			if on {
				e.EnableRxTimestamps()
			}
			frames := [][]byte{ipFrame(wire.IPv4Header{Protocol: wire.ProtoUDP}, udpPayload(peerAddr, hostAddr, 1, 5000, make([]byte, 64)))}
			buf := make([]byte, 2048)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				h.nic.DeliverFrames(frames)
				if _, _, _, _, err := e.RecvFromAt(buf, false, -1, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
