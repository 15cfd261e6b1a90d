package socket

import (
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/clock"
	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/wire"
)

// TestIoctlTimestampCAN: CAN sockets answer SIOCGSTAMP as Linux's
// sock_gettstamp. A CAN_RAW frame read once timestamps are on gives its
// arrival time, not the time it was read; so does a BCM change
// notification (bcm.c restores its frame's rx_stamp) and an ISO-TP
// message (its last frame's).
func TestIoctlTimestampCAN(t *testing.T) {
	h := newCANHosts(t, link.CANBusOptions{})
	clk := h.clk.(*clock.Manual)
	tx := canRawBound(t, h.a, "vcan0")
	rx := canRawBound(t, h.b, "vcan0")
	stamp := func(step string, s *Socket, want time.Time, wantErr error) {
		t.Helper()
		got, err := s.IoctlTimestamp(SIOCGSTAMPNS)
		if wantErr != nil {
			if !errors.Is(err, wantErr) {
				t.Fatalf("%s: %v %v, want %v", step, got, err, wantErr)
			}
			return
		}
		if err != nil || !got.Equal(want) {
			t.Fatalf("%s: %v %v, want %v", step, got, err, want)
		}
	}
	buf := make([]byte, 4096)
	stamp("raw, fresh", rx, time.Time{}, syscall.ENOENT) // and timestamps on
	clk.Advance(time.Second)
	arrived := clk.Now()
	if _, err := tx.Send(pyFrame(0x123, []byte{1}), 0); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	if _, err := rx.Recv(buf, 0); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	stamp("raw, read later", rx, arrived, nil)

	b := bcmSock(t, h.b)
	stamp("bcm, fresh", b, time.Time{}, syscall.ENOENT)
	bcmSend(t, b, BCMMsg{Opcode: RX_SETUP, CANID: 0x300, Frames: []wire.CANFrame{{Len: 1, Data: [64]byte{0xFF}}}})
	arrived = clk.Now()
	if _, err := tx.Send(pyFrame(0x300, []byte{7}), 0); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	if n, err := b.Recv(buf, 0); err != nil || n == 0 {
		t.Fatalf("bcm recv: %d %v", n, err)
	}
	clk.Advance(time.Second)
	stamp("bcm, after a notification", b, arrived, nil)

	ia := isotpSock(t, h.a, 0x701, 0x702, nil)
	ib := isotpSock(t, h.b, 0x702, 0x701, nil)
	stamp("isotp, fresh", ib, time.Time{}, syscall.ENOENT)
	arrived = clk.Now()
	if _, err := ia.Send([]byte("hi"), 0); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	if n, err := ib.Recv(buf, 0); err != nil || string(buf[:n]) != "hi" {
		t.Fatalf("isotp recv: %q %v", buf[:n], err)
	}
	clk.Advance(time.Second)
	stamp("isotp, after a message", ib, arrived, nil)
}
