package socket

import (
	"encoding/binary"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/clock"
	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/wire"
)

func bcmSock(t testing.TB, n *Net) *Socket {
	t.Helper()
	s := mustSocket(t, n, AF_CAN, SOCK_DGRAM, CAN_BCM)
	s.SetBlocking(false)
	if err := s.Connect(&SockaddrCAN{Ifname: "vcan0"}); err != nil {
		t.Fatal(err)
	}
	return s
}

func bcmSend(t testing.TB, s *Socket, m BCMMsg) {
	t.Helper()
	b := m.Marshal()
	if n, err := s.Send(b, 0); err != nil || n != len(b) {
		t.Fatalf("bcm send op %d: %d %v", m.Opcode, n, err)
	}
}

func bcmRecv(t testing.TB, s *Socket) []BCMMsg {
	t.Helper()
	var out []BCMMsg
	buf := make([]byte, 4096)
	for {
		n, err := s.Recv(buf, 0)
		if errors.Is(err, syscall.EAGAIN) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		m, err := ParseBCMMsg(buf[:n])
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
}

// rxTimes returns the ids and offsets from start of frames a raw socket got.
func rxTimes(t testing.TB, s *Socket, start time.Time) (ids []uint32, at []time.Duration) {
	t.Helper()
	buf := make([]byte, 72)
	for {
		_, m, err := s.RecvMsgCAN(buf, 0)
		if err != nil {
			return
		}
		ids = append(ids, binary.NativeEndian.Uint32(buf))
		at = append(at, m.Time.Sub(start))
	}
}

func TestBCMHeadLayout(t *testing.T) {
	m := BCMMsg{Opcode: TX_SETUP, Flags: SETTIMER, Count: 3, Ival1: 1500 * time.Millisecond, Ival2: 2 * time.Second, CANID: 0x123,
		Frames: []wire.CANFrame{{ID: 0x123, Len: 1, Data: [64]byte{0xAB}}}}
	b := m.Marshal()
	ne := binary.NativeEndian
	if len(b) != 56+16 || ne.Uint32(b[0:]) != 1 || ne.Uint32(b[8:]) != 3 || ne.Uint64(b[16:]) != 1 || ne.Uint64(b[24:]) != 500000 ||
		ne.Uint64(b[32:]) != 2 || ne.Uint32(b[48:]) != 0x123 || ne.Uint32(b[52:]) != 1 || ne.Uint32(b[56:]) != 0x123 || b[60] != 1 || b[64] != 0xAB {
		t.Fatalf("layout % x", b)
	}
	back, err := ParseBCMMsg(b)
	if err != nil || back.Ival1 != m.Ival1 || back.Frames[0] != m.Frames[0] {
		t.Fatalf("%v %+v", err, back)
	}
}

func TestBCMCyclicTransmit(t *testing.T) {
	h := newCANHosts(t, link.CANBusOptions{})
	clk := h.clk.(*clock.Manual)
	rx := canRawBound(t, h.b, "vcan0")
	_ = rx.SetSockOpt(SOL_SOCKET, SO_TIMESTAMP, 1)
	s := bcmSock(t, h.a)
	start := clk.Now()
	bcmSend(t, s, BCMMsg{Opcode: TX_SETUP, Flags: SETTIMER | STARTTIMER | TX_COUNTEVT, Count: 3,
		Ival1: 10 * time.Millisecond, Ival2: 100 * time.Millisecond, CANID: 0x100,
		Frames: []wire.CANFrame{{ID: 0x100, Len: 1, Data: [64]byte{1}}, {ID: 0x100, Len: 1, Data: [64]byte{2}}}})
	clk.Advance(250 * time.Millisecond)
	ids, at := rxTimes(t, rx, start)
	want := []time.Duration{10, 20, 30, 130, 230}
	if len(at) != len(want) {
		t.Fatalf("frames at %v", at)
	}
	for i := range want {
		if at[i] != want[i]*time.Millisecond || ids[i] != 0x100 {
			t.Fatalf("frames at %v, want %v ms", at, want)
		}
	}
	notes := bcmRecv(t, s)
	if len(notes) != 1 || notes[0].Opcode != TX_EXPIRED || notes[0].CANID != 0x100 {
		t.Fatalf("notifications %+v", notes)
	}
	// TX_READ reports the op; TX_DELETE ends the cycle.
	bcmSend(t, s, BCMMsg{Opcode: TX_READ, CANID: 0x100})
	st := bcmRecv(t, s)
	if len(st) != 1 || st[0].Opcode != TX_STATUS || len(st[0].Frames) != 2 || st[0].Ival2 != 100*time.Millisecond {
		t.Fatalf("status %+v", st)
	}
	bcmSend(t, s, BCMMsg{Opcode: TX_DELETE, CANID: 0x100})
	clk.Advance(time.Second)
	if ids, _ := rxTimes(t, rx, start); len(ids) != 0 {
		t.Fatalf("sent after delete: %x", ids)
	}
	if _, err := s.Send((&BCMMsg{Opcode: TX_DELETE, CANID: 0x100}).Marshal(), 0); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("second delete: %v", err)
	}
}

func TestBCMAnnounceAndSend(t *testing.T) {
	h := newCANHosts(t, link.CANBusOptions{})
	clk := h.clk.(*clock.Manual)
	rx := canRawBound(t, h.b, "vcan0")
	_ = rx.SetSockOpt(SOL_SOCKET, SO_TIMESTAMP, 1)
	s := bcmSock(t, h.a)
	start := clk.Now()
	bcmSend(t, s, BCMMsg{Opcode: TX_SETUP, Flags: SETTIMER | STARTTIMER | TX_ANNOUNCE | TX_CP_CAN_ID, Ival2: 50 * time.Millisecond, CANID: 0x222,
		Frames: []wire.CANFrame{{Len: 2}}})
	clk.Advance(120 * time.Millisecond)
	ids, at := rxTimes(t, rx, start)
	if len(at) != 3 || at[0] != 0 || at[1] != 50*time.Millisecond || at[2] != 100*time.Millisecond || ids[0] != 0x222 {
		t.Fatalf("announce: %x at %v", ids, at)
	}
	bcmSend(t, s, BCMMsg{Opcode: TX_SEND, Frames: []wire.CANFrame{{ID: 0x333}}})
	if ids, _ := rxTimes(t, rx, start); len(ids) != 1 || ids[0] != 0x333 {
		t.Fatalf("TX_SEND: %x", ids)
	}
}

func TestBCMReceiveFilterAndTimeout(t *testing.T) {
	h := newCANHosts(t, link.CANBusOptions{})
	clk := h.clk.(*clock.Manual)
	tx := canRawBound(t, h.a, "vcan0")
	s := bcmSock(t, h.b)
	// Watch 0x300: only changes of the first byte count; silence for
	// 100 ms is reported.
	bcmSend(t, s, BCMMsg{Opcode: RX_SETUP, Flags: SETTIMER | STARTTIMER, Ival1: 100 * time.Millisecond, CANID: 0x300,
		Frames: []wire.CANFrame{{Len: 8, Data: [64]byte{0xFF}}}})
	send := func(d0, d1 byte) { _, _ = tx.Send(pyFrame(0x300, []byte{d0, d1}), 0) }
	send(1, 0) // first: reported
	send(1, 5) // byte 1 is masked out: not reported
	send(2, 5) // change: reported
	_, _ = tx.Send(pyFrame(0x301, []byte{9}), 0)
	notes := bcmRecv(t, s)
	if len(notes) != 2 || notes[0].Opcode != RX_CHANGED || notes[0].Frames[0].Data[0] != 1 || notes[1].Frames[0].Data[0] != 2 {
		t.Fatalf("changes %+v", notes)
	}
	clk.Advance(99 * time.Millisecond)
	send(2, 6) // keeps the watch alive, no change
	clk.Advance(99 * time.Millisecond)
	if n := bcmRecv(t, s); len(n) != 0 {
		t.Fatalf("early notifications %+v", n)
	}
	clk.Advance(time.Millisecond)
	notes = bcmRecv(t, s)
	if len(notes) != 1 || notes[0].Opcode != RX_TIMEOUT || notes[0].CANID != 0x300 {
		t.Fatalf("timeout %+v", notes)
	}
	// RX_READ and RX_DELETE.
	bcmSend(t, s, BCMMsg{Opcode: RX_READ, CANID: 0x300})
	if st := bcmRecv(t, s); len(st) != 1 || st[0].Opcode != RX_STATUS {
		t.Fatalf("status %+v", st)
	}
	bcmSend(t, s, BCMMsg{Opcode: RX_DELETE, CANID: 0x300})
	send(7, 7)
	if n := bcmRecv(t, s); len(n) != 0 {
		t.Fatalf("after delete %+v", n)
	}
}

func TestBCMThrottleAndFilterID(t *testing.T) {
	h := newCANHosts(t, link.CANBusOptions{})
	clk := h.clk.(*clock.Manual)
	tx := canRawBound(t, h.a, "vcan0")
	s := bcmSock(t, h.b)
	bcmSend(t, s, BCMMsg{Opcode: RX_SETUP, Flags: SETTIMER | RX_FILTER_ID, Ival2: 50 * time.Millisecond, CANID: 0x10})
	for i := range 5 {
		_, _ = tx.Send(pyFrame(0x10, []byte{byte(i)}), 0)
	}
	notes := bcmRecv(t, s)
	if len(notes) != 1 || notes[0].Frames[0].Data[0] != 0 {
		t.Fatalf("throttled %+v", notes)
	}
	clk.Advance(50 * time.Millisecond)
	notes = bcmRecv(t, s)
	if len(notes) != 1 || notes[0].Frames[0].Data[0] != 4 {
		t.Fatalf("after the period %+v", notes)
	}
}

func TestBCMRemoteRequestReply(t *testing.T) {
	h := newCANHosts(t, link.CANBusOptions{})
	tx := canRawBound(t, h.a, "vcan0")
	s := bcmSock(t, h.b)
	bcmSend(t, s, BCMMsg{Opcode: RX_SETUP, Flags: RX_RTR_FRAME, CANID: 0x55, Frames: []wire.CANFrame{{ID: 0x55, Len: 2, Data: [64]byte{0xCA, 0xFE}}}})
	_, _ = tx.Send(pyFrame(0x55|CAN_RTR_FLAG, nil), 0)
	buf := make([]byte, 16)
	n, err := tx.Recv(buf, 0)
	if err != nil || n != 16 || binary.NativeEndian.Uint32(buf) != 0x55 || buf[8] != 0xCA {
		t.Fatalf("reply %d %v % x", n, err, buf)
	}
}

func TestBCMErrors(t *testing.T) {
	h := newCANHosts(t, link.CANBusOptions{})
	s := mustSocket(t, h.a, AF_CAN, SOCK_DGRAM, CAN_BCM)
	msg := (&BCMMsg{Opcode: TX_SEND, Frames: []wire.CANFrame{{ID: 1}}}).Marshal()
	if _, err := s.Send(msg, 0); !errors.Is(err, syscall.ENOTCONN) {
		t.Fatalf("unconnected: %v", err)
	}
	if err := s.Connect(&SockaddrCAN{Ifname: "nope"}); !errors.Is(err, syscall.ENODEV) {
		t.Fatalf("unknown interface: %v", err)
	}
	if err := s.Connect(&SockaddrCAN{Ifname: "vcan0"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Connect(&SockaddrCAN{Ifname: "vcan0"}); !errors.Is(err, syscall.EISCONN) {
		t.Fatalf("second connect: %v", err)
	}
	for _, c := range []struct {
		name string
		b    []byte
	}{
		{"short", msg[:40]},
		{"partial frame", msg[:60]},
		{"bad opcode", (&BCMMsg{Opcode: 99}).Marshal()},
		{"TX_SETUP without frames", (&BCMMsg{Opcode: TX_SETUP}).Marshal()},
		{"TX_SEND with two frames", (&BCMMsg{Opcode: TX_SEND, Frames: make([]wire.CANFrame, 2)}).Marshal()},
		{"unknown TX_DELETE", (&BCMMsg{Opcode: TX_DELETE, CANID: 7}).Marshal()},
		{"nframes disagrees", func() []byte {
			b := (&BCMMsg{Opcode: TX_SEND, Frames: []wire.CANFrame{{ID: 1}}}).Marshal()
			binary.NativeEndian.PutUint32(b[52:], 2)
			return b
		}()},
		{"bad timeval", func() []byte {
			b := (&BCMMsg{Opcode: TX_SETUP, Flags: SETTIMER, Frames: []wire.CANFrame{{ID: 1}}}).Marshal()
			binary.NativeEndian.PutUint64(b[24:], 1000000)
			return b
		}()},
	} {
		if _, err := s.Send(c.b, 0); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("%s: %v, want EINVAL", c.name, err)
		}
	}
	if err := s.SetSockOpt(SOL_CAN_RAW, 1, 1); !errors.Is(err, syscall.ENOPROTOOPT) {
		t.Fatalf("option: %v", err)
	}
}

func TestBCMNotificationLimit(t *testing.T) {
	h := newCANHosts(t, link.CANBusOptions{})
	tx := canRawBound(t, h.a, "vcan0")
	s := bcmSock(t, h.b)
	bcmSend(t, s, BCMMsg{Opcode: RX_SETUP, Flags: RX_FILTER_ID, CANID: 0x10})
	for range bcmMaxNotifies + 3 {
		_, _ = tx.Send(pyFrame(0x10, nil), 0)
	}
	if n := len(bcmRecv(t, s)); n != bcmMaxNotifies || s.ep.(*bcmEP).Dropped != 3 {
		t.Fatalf("queued %d dropped %d", n, s.ep.(*bcmEP).Dropped)
	}
}

// TestBCMTimestamps: with SO_TIMESTAMPNS a change notification carries
// its frame's receive time (a throttled one the newest frame's), a
// timeout notification the time of the read; SO_TIMESTAMPING stamps
// only the changes, as bcm.c sends timer notifications untimed.
func TestBCMTimestamps(t *testing.T) {
	h := newCANHosts(t, link.CANBusOptions{})
	clk := h.clk.(*clock.Manual)
	tx := canRawBound(t, h.a, "vcan0")
	s := bcmSock(t, h.b)
	if err := s.SetSockOpt(SOL_SOCKET, SO_TIMESTAMPNS, 1); err != nil {
		t.Fatal(err)
	}
	if v, err := s.GetSockOptInt(SOL_SOCKET, SO_TIMESTAMPNS); v != 1 || err != nil {
		t.Fatalf("SO_TIMESTAMPNS reads %d %v", v, err)
	}
	bcmSend(t, s, BCMMsg{Opcode: RX_SETUP, Flags: SETTIMER | STARTTIMER | RX_FILTER_ID, Ival1: time.Second, Ival2: 50 * time.Millisecond, CANID: 0x20})
	// recv gives the opcode and the time of its stamp (zero: none).
	recv := func() (uint32, byte, time.Time) {
		t.Helper()
		buf, oob := make([]byte, 128), make([]byte, 128)
		n, oobn, _, _, err := s.RecvMsgControl(buf, oob, 0)
		if err != nil {
			t.Fatal(err)
		}
		m, err := ParseBCMMsg(buf[:n])
		if err != nil {
			t.Fatal(err)
		}
		var d0 byte
		if len(m.Frames) > 0 {
			d0 = m.Frames[0].Data[0]
		}
		if oobn == 0 {
			return m.Opcode, d0, time.Time{}
		}
		ne := binary.NativeEndian
		typ := ne.Uint32(oob[12:])
		if typ != SO_TIMESTAMPNS && typ != SO_TIMESTAMPING {
			t.Fatalf("control message type %d", typ)
		}
		return m.Opcode, d0, time.Unix(int64(ne.Uint64(oob[16:])), int64(ne.Uint64(oob[24:])))
	}
	t0 := clk.Now()
	_, _ = tx.Send(pyFrame(0x20, []byte{1}), 0)
	clk.Advance(10 * time.Millisecond)
	_, _ = tx.Send(pyFrame(0x20, []byte{2}), 0) // held by the throttle
	t1 := clk.Now()
	clk.Advance(10 * time.Millisecond)
	_, _ = tx.Send(pyFrame(0x20, []byte{3}), 0) // replaces it
	t2 := clk.Now()
	if op, d, at := recv(); op != RX_CHANGED || d != 1 || at.Before(t0) || !at.Before(t1) {
		t.Fatalf("first change: op %d data %d at %v (sent %v)", op, d, at, t0)
	}
	clk.Advance(40 * time.Millisecond) // the throttle's period ends
	if op, d, at := recv(); op != RX_CHANGED || d != 3 || at.Before(t2) || !at.Before(t2.Add(10*time.Millisecond)) {
		t.Fatalf("throttled change: op %d data %d at %v (newest frame sent %v)", op, d, at, t2)
	}
	clk.Advance(time.Second) // silence: RX_TIMEOUT
	if op, _, at := recv(); op != RX_TIMEOUT || !at.Equal(clk.Now()) {
		t.Fatalf("timeout: op %d at %v, want the time of the read %v", op, at, clk.Now())
	}
	// SO_TIMESTAMPING instead: a change stamped, a timeout not.
	s.SetSockOpt(SOL_SOCKET, SO_TIMESTAMPNS, 0)
	if err := s.SetSockOpt(SOL_SOCKET, SO_TIMESTAMPING, SOF_TIMESTAMPING_RX_SOFTWARE|SOF_TIMESTAMPING_SOFTWARE); err != nil {
		t.Fatal(err)
	}
	t3 := clk.Now()
	_, _ = tx.Send(pyFrame(0x20, []byte{4}), 0)
	if op, d, at := recv(); op != RX_CHANGED || d != 4 || at.Before(t3) {
		t.Fatalf("change with SO_TIMESTAMPING: op %d data %d at %v", op, d, at)
	}
	clk.Advance(2 * time.Second)
	if op, _, at := recv(); op != RX_TIMEOUT || !at.IsZero() {
		t.Fatalf("timeout with SO_TIMESTAMPING: op %d at %v, want no stamp", op, at)
	}
}
