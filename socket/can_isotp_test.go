package socket

import (
	"bytes"
	"encoding/binary"
	"errors"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sockstack/sockstack/clock"
	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/waiter"
	"github.com/sockstack/sockstack/wire"
)

// busLog records every frame the bus carries, with its time.
type busLog struct {
	frames []wire.CANFrame
	times  []time.Time
}

func logBus(h *canHosts) *busLog {
	l := &busLog{}
	h.bus.SetTap(func(ts time.Time, f *wire.CANFrame) {
		l.frames = append(l.frames, *f)
		l.times = append(l.times, ts)
	})
	return l
}

func isotpSock(t testing.TB, n *Net, rx, tx uint32, setup func(s *Socket)) *Socket {
	t.Helper()
	s := mustSocket(t, n, AF_CAN, SOCK_DGRAM, CAN_ISOTP)
	s.SetBlocking(false)
	if setup != nil {
		setup(s)
	}
	if err := s.Bind(&SockaddrCAN{Ifname: "vcan0", RxID: rx, TxID: tx}); err != nil {
		t.Fatal(err)
	}
	return s
}

func seq(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

func mustRecvMsg(t testing.TB, s *Socket, size int) []byte {
	t.Helper()
	buf := make([]byte, size+10)
	n, err := s.Recv(buf, 0)
	if err != nil {
		t.Fatalf("recv: %v", err)
	}
	return buf[:n]
}

func TestISOTP100Bytes(t *testing.T) {
	h := newCANHosts(t, link.CANBusOptions{})
	clk := h.clk.(*clock.Manual)
	log := logBus(h)
	tester := isotpSock(t, h.a, 0x7E8, 0x7E0, nil)
	ecu := isotpSock(t, h.b, 0x7E0, 0x7E8, nil)
	msg := seq(100)
	if n, err := tester.Send(msg, 0); err != nil || n != 100 {
		t.Fatalf("send %d %v", n, err)
	}
	clk.Advance(10 * time.Millisecond)
	if got := mustRecvMsg(t, ecu, 100); !bytes.Equal(got, msg) {
		t.Fatalf("got % x", got)
	}
	// FF (6 bytes), FC, then 14 CFs of 7 bytes (the last with 3).
	if len(log.frames) != 16 {
		t.Fatalf("%d frames on the bus", len(log.frames))
	}
	ff := log.frames[0]
	if ff.ID != 0x7E0 || ff.Len != 8 || ff.Data[0] != 0x10 || ff.Data[1] != 100 || !bytes.Equal(ff.Data[2:8], msg[:6]) {
		t.Fatalf("FF %+v", ff)
	}
	fc := log.frames[1]
	if fc.ID != 0x7E8 || fc.Len != 3 || fc.Data[0] != 0x30 || fc.Data[1] != 0 || fc.Data[2] != 0 {
		t.Fatalf("FC % x", fc.Payload())
	}
	for i, f := range log.frames[2:] {
		if f.ID != 0x7E0 || f.Data[0] != 0x20|byte((i+1)&0xF) {
			t.Fatalf("CF %d: % x", i, f.Payload())
		}
	}
	if last := log.frames[15]; last.Len != 4 {
		t.Fatalf("last CF length %d", last.Len)
	}
	// And back, as a single frame.
	if _, err := ecu.Send([]byte{0x62, 0xF1, 0x90}, 0); err != nil {
		t.Fatal(err)
	}
	if got := mustRecvMsg(t, tester, 3); !bytes.Equal(got, []byte{0x62, 0xF1, 0x90}) {
		t.Fatalf("reply % x", got)
	}
	sf := log.frames[16]
	if sf.Len != 4 || sf.Data[0] != 0x03 {
		t.Fatalf("SF % x", sf.Payload())
	}
}

func TestISOTPPaddingAndExtendedAddressing(t *testing.T) {
	h := newCANHosts(t, link.CANBusOptions{})
	clk := h.clk.(*clock.Manual)
	log := logBus(h)
	opts := func(ta, flags uint32) func(*Socket) {
		return func(s *Socket) {
			if err := s.SetSockOpt(SOL_CAN_ISOTP, CAN_ISOTP_OPTS, ISOTPOptions{Flags: flags | CAN_ISOTP_TX_PADDING, ExtAddress: uint8(ta), TxPadContent: 0xAA, RxPadContent: 0xAA}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Both ends agree on the address byte 0xF1 with extended addressing.
	a := isotpSock(t, h.a, 0x600, 0x601, opts(0xF1, CAN_ISOTP_EXTEND_ADDR|CAN_ISOTP_CHK_PAD_LEN))
	b := isotpSock(t, h.b, 0x601, 0x600, opts(0xF1, CAN_ISOTP_EXTEND_ADDR|CAN_ISOTP_CHK_PAD_LEN|CAN_ISOTP_CHK_PAD_DATA))
	if _, err := a.Send([]byte{1, 2, 3}, 0); err != nil {
		t.Fatal(err)
	}
	if got := mustRecvMsg(t, b, 3); !bytes.Equal(got, []byte{1, 2, 3}) {
		t.Fatalf("sf % x", got)
	}
	sf := log.frames[0]
	if sf.Len != 8 || !bytes.Equal(sf.Data[:8], []byte{0xF1, 0x03, 1, 2, 3, 0xAA, 0xAA, 0xAA}) {
		t.Fatalf("padded SF % x", sf.Payload())
	}
	msg := seq(20)
	if _, err := a.Send(msg, 0); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Millisecond)
	if got := mustRecvMsg(t, b, 20); !bytes.Equal(got, msg) {
		t.Fatalf("multi-frame % x", got)
	}
	ff := log.frames[1]
	if !bytes.Equal(ff.Data[:8], []byte{0xF1, 0x10, 20, 0, 1, 2, 3, 4}) {
		t.Fatalf("FF % x", ff.Payload())
	}
	// A frame for another address is ignored; an unpadded SF breaks
	// CAN_ISOTP_CHK_PAD_LEN: EBADMSG.
	raw := canRawBound(t, h.a, "vcan0")
	_, _ = raw.Send(pyFrame(0x601, []byte{0xF2, 0x01, 9, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA}), 0)
	_, _ = raw.Send(pyFrame(0x601, []byte{0xF1, 0x01, 9}), 0)
	if _, err := b.Recv(make([]byte, 10), 0); !errors.Is(err, syscall.EBADMSG) {
		t.Fatalf("unpadded SF: %v", err)
	}
	if _, err := b.Recv(make([]byte, 10), 0); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("other address delivered: %v", err)
	}
}

func TestISOTPBlockSizeAndSTmin(t *testing.T) {
	h := newCANHosts(t, link.CANBusOptions{})
	clk := h.clk.(*clock.Manual)
	log := logBus(h)
	a := isotpSock(t, h.a, 0x7E8, 0x7E0, nil)
	b := isotpSock(t, h.b, 0x7E0, 0x7E8, func(s *Socket) {
		if err := s.SetSockOpt(SOL_CAN_ISOTP, CAN_ISOTP_RECV_FC, ISOTPFCOptions{BS: 4, STmin: 10}); err != nil {
			t.Fatal(err)
		}
	})
	msg := seq(62) // FF with 6, then 8 CFs of 7
	start := clk.Now()
	if _, err := a.Send(msg, 0); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	if got := mustRecvMsg(t, b, 62); !bytes.Equal(got, msg) {
		t.Fatalf("got % x", got)
	}
	var kinds []byte
	var cfTimes []time.Duration
	for i, f := range log.frames {
		kinds = append(kinds, f.Data[0]&0xF0)
		if f.Data[0]&0xF0 == 0x20 {
			cfTimes = append(cfTimes, log.times[i].Sub(start))
		}
		if f.Data[0] == 0x30 && (f.Data[1] != 4 || f.Data[2] != 10) {
			t.Fatalf("FC % x", f.Payload())
		}
	}
	want := []byte{0x10, 0x30, 0x20, 0x20, 0x20, 0x20, 0x30, 0x20, 0x20, 0x20, 0x20}
	if !bytes.Equal(kinds, want) {
		t.Fatalf("frame kinds % x, want % x", kinds, want)
	}
	// In each block the first CF goes at once, the next STmin + 50 µs
	// (frame_txtime) apart.
	gap := 10*time.Millisecond + 50*time.Microsecond
	wantT := []time.Duration{0, gap, 2 * gap, 3 * gap, 3 * gap, 4 * gap, 5 * gap, 6 * gap}
	for i := range wantT {
		if cfTimes[i] != wantT[i] {
			t.Fatalf("CF times %v, want %v", cfTimes, wantT)
		}
	}
}

func TestISOTPLongMessages(t *testing.T) {
	h := newCANHosts(t, link.CANBusOptions{})
	clk := h.clk.(*clock.Manual)
	a := isotpSock(t, h.a, 0x7E8, 0x7E0, nil)
	b := isotpSock(t, h.b, 0x7E0, 0x7E8, nil)
	msg := seq(4095)
	if _, err := a.Send(msg, 0); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	if got := mustRecvMsg(t, b, 4095); !bytes.Equal(got, msg) {
		t.Fatal("4095-byte message differs")
	}
	// CAN FD with 64-byte frames: 8000 bytes use the 32-bit FF length.
	log := logBus(h)
	fdOpts := func(s *Socket) {
		if err := s.SetSockOpt(SOL_CAN_ISOTP, CAN_ISOTP_LL_OPTS, ISOTPLLOptions{MTU: CANFD_MTU, TxDL: 64, TxFlags: CANFD_BRS}); err != nil {
			t.Fatal(err)
		}
	}
	fa := isotpSock(t, h.a, 0x18DAF110|CAN_EFF_FLAG, 0x18DA10F1|CAN_EFF_FLAG, fdOpts)
	fb := isotpSock(t, h.b, 0x18DA10F1|CAN_EFF_FLAG, 0x18DAF110|CAN_EFF_FLAG, fdOpts)
	big := seq(8000)
	if _, err := fa.Send(big, 0); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	if got := mustRecvMsg(t, fb, 8000); !bytes.Equal(got, big) {
		t.Fatal("8000-byte FD message differs")
	}
	ff := log.frames[0]
	if !ff.IsFD() || ff.Len != 64 || ff.Data[0] != 0x10 || ff.Data[1] != 0 || binary.BigEndian.Uint32(ff.Data[2:]) != 8000 || ff.Flags&wire.CANFDBRS == 0 {
		t.Fatalf("escape FF % x", ff.Data[:8])
	}
	// An FD single frame of 40 bytes uses the escape SF (0x00, length).
	if _, err := fa.Send(seq(40), 0); err != nil {
		t.Fatal(err)
	}
	if got := mustRecvMsg(t, fb, 40); !bytes.Equal(got, seq(40)) {
		t.Fatal("FD SF differs")
	}
	sf := log.frames[len(log.frames)-1]
	if sf.Len != 48 || sf.Data[0] != 0 || sf.Data[1] != 40 {
		t.Fatalf("FD SF len %d % x", sf.Len, sf.Data[:4])
	}
}

func TestISOTPTimeoutsAndErrors(t *testing.T) {
	h := newCANHosts(t, link.CANBusOptions{})
	clk := h.clk.(*clock.Manual)
	raw := canRawBound(t, h.a, "vcan0")

	// N_Bs: nobody answers the FF with flow control: ECOMM after 1 s.
	lone := isotpSock(t, h.a, 0x111, 0x222, nil)
	if _, err := lone.Send(seq(20), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := lone.Send(seq(20), 0); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("second send while busy: %v", err)
	}
	clk.Advance(999 * time.Millisecond)
	if v, _ := lone.GetSockOptInt(SOL_SOCKET, SO_ERROR); v != 0 {
		t.Fatalf("error before N_Bs: %d", v)
	}
	clk.Advance(time.Millisecond)
	if v, _ := lone.GetSockOptInt(SOL_SOCKET, SO_ERROR); v != int(syscall.ECOMM) {
		t.Fatalf("SO_ERROR after N_Bs %d, want ECOMM", v)
	}
	if v, _ := lone.GetSockOptInt(SOL_SOCKET, SO_ERROR); v != 0 {
		t.Fatal("SO_ERROR not cleared")
	}

	// N_Cr: an FF, then no CF: ETIMEDOUT on the receiver.
	rx := isotpSock(t, h.b, 0x333, 0x334, nil)
	_, _ = raw.Send(pyFrame(0x333, []byte{0x10, 20, 1, 2, 3, 4, 5, 6}), 0)
	clk.Advance(time.Second)
	if _, err := rx.Recv(make([]byte, 64), 0); !errors.Is(err, syscall.ETIMEDOUT) {
		t.Fatalf("N_Cr: %v", err)
	}

	// Wrong sequence number: EILSEQ.
	_, _ = raw.Send(pyFrame(0x333, []byte{0x10, 20, 1, 2, 3, 4, 5, 6}), 0)
	_, _ = raw.Send(pyFrame(0x333, []byte{0x22, 7, 8, 9, 10, 11, 12, 13}), 0)
	if _, err := rx.Recv(make([]byte, 64), 0); !errors.Is(err, syscall.EILSEQ) {
		t.Fatalf("bad SN: %v", err)
	}

	// An FF announcing more than the socket can take: overflow FC.
	rawRx := canRawBound(t, h.a, "vcan0")
	recvIDs(t, rawRx)
	_, _ = raw.Send(pyFrame(0x333, []byte{0x10, 0, 0, 0, 0x40, 0, 1, 2}), 0)
	buf := make([]byte, 16)
	var ovf bool
	for {
		n, err := rawRx.Recv(buf, 0)
		if err != nil {
			break
		}
		if n == 16 && binary.NativeEndian.Uint32(buf) == 0x334 && buf[8] == 0x32 {
			ovf = true
		}
	}
	if !ovf {
		t.Fatal("no overflow flow control")
	}

	// The sender gets EMSGSIZE for an overflow FC, EBADMSG for a bad one,
	// and goes on after WAIT.
	tx := isotpSock(t, h.a, 0x444, 0x445, nil)
	for _, c := range []struct {
		fc   byte
		want error
	}{{0x32, syscall.EMSGSIZE}, {0x37, syscall.EBADMSG}} {
		if _, err := tx.Send(seq(30), 0); err != nil {
			t.Fatal(err)
		}
		_, _ = raw.Send(pyFrame(0x444, []byte{c.fc, 0, 0}), 0)
		if v, _ := tx.GetSockOptInt(SOL_SOCKET, SO_ERROR); v != int(c.want.(syscall.Errno)) {
			t.Fatalf("FC %#x: SO_ERROR %d, want %v", c.fc, v, c.want)
		}
	}
	peer := isotpSock(t, h.b, 0x445, 0x444, nil)
	_ = peer
	// WAIT keeps the sender waiting past the first second.
	wt := isotpSock(t, h.a, 0x555, 0x556, nil)
	if _, err := wt.Send(seq(30), 0); err != nil {
		t.Fatal(err)
	}
	clk.Advance(900 * time.Millisecond)
	_, _ = raw.Send(pyFrame(0x555, []byte{0x31, 0, 0}), 0)
	clk.Advance(900 * time.Millisecond)
	if v, _ := wt.GetSockOptInt(SOL_SOCKET, SO_ERROR); v != 0 {
		t.Fatalf("error despite WAIT: %d", v)
	}
	clk.Advance(100 * time.Millisecond)
	if v, _ := wt.GetSockOptInt(SOL_SOCKET, SO_ERROR); v != int(syscall.ECOMM) {
		t.Fatalf("after WAIT and silence: %d", v)
	}
}

func TestISOTPNAsTimeout(t *testing.T) {
	// At 50 bit/s a frame takes over two seconds: its echo comes after
	// N_As (1 s), so the send fails with ECOMM.
	clk := clock.NewManual(time.Unix(0, 0))
	h := newCANHosts(t, link.CANBusOptions{Clock: clk, Bitrate: 50})
	s := isotpSock(t, h.a, 0x1, 0x2, nil)
	if _, err := s.Send([]byte{1}, 0); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	if v, _ := s.GetSockOptInt(SOL_SOCKET, SO_ERROR); v != int(syscall.ECOMM) {
		t.Fatalf("SO_ERROR %d, want ECOMM", v)
	}
}

func TestISOTPWaitTxDone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := clock.NewManual(time.Unix(0, 0))
		h := newCANHosts(t, link.CANBusOptions{Clock: clk})
		s := mustSocket(t, h.a, AF_CAN, SOCK_DGRAM, CAN_ISOTP)
		if err := s.SetSockOpt(SOL_CAN_ISOTP, CAN_ISOTP_OPTS, ISOTPOptions{Flags: CAN_ISOTP_WAIT_TX_DONE}); err != nil {
			t.Fatal(err)
		}
		if err := s.Bind(&SockaddrCAN{Ifname: "vcan0", RxID: 0x10, TxID: 0x11}); err != nil {
			t.Fatal(err)
		}
		done := make(chan error)
		go func() {
			_, err := s.Send(seq(50), 0)
			done <- err
		}()
		synctest.Wait() // the sender blocks, waiting for flow control
		clk.Advance(time.Second)
		if err := <-done; !errors.Is(err, syscall.ECOMM) {
			t.Fatalf("blocking send: %v, want ECOMM", err)
		}
		// With a receiver the blocking send returns the length.
		isotpSock(t, h.b, 0x11, 0x10, nil)
		go func() {
			_, err := s.Send(seq(50), 0)
			done <- err
		}()
		synctest.Wait()
		clk.Advance(time.Second)
		if err := <-done; err != nil {
			t.Fatalf("blocking send: %v", err)
		}
	})
}

func TestISOTPSocketErrors(t *testing.T) {
	h := newCANHosts(t, link.CANBusOptions{})
	s := mustSocket(t, h.a, AF_CAN, SOCK_DGRAM, CAN_ISOTP)
	if _, err := s.Send([]byte{1}, 0); !errors.Is(err, syscall.EADDRNOTAVAIL) {
		t.Fatalf("unbound send: %v", err)
	}
	if err := s.Bind(&SockaddrCAN{Ifname: "vcan0", RxID: 0x10, TxID: 0x10}); !errors.Is(err, syscall.EADDRNOTAVAIL) {
		t.Fatalf("rx == tx: %v", err)
	}
	if err := s.Bind(&SockaddrCAN{Ifname: "vcan0", RxID: 0x10, TxID: 0x11 | CAN_RTR_FLAG}); !errors.Is(err, syscall.EADDRNOTAVAIL) {
		t.Fatalf("rtr id: %v", err)
	}
	if err := s.Bind(&SockaddrCAN{RxID: 0x10, TxID: 0x11}); !errors.Is(err, syscall.ENODEV) {
		t.Fatalf("ifindex 0: %v", err)
	}
	if err := s.SetSockOpt(SOL_CAN_RAW, 1, 1); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("foreign level: %v", err)
	}
	if err := s.SetSockOpt(SOL_CAN_ISOTP, CAN_ISOTP_LL_OPTS, ISOTPLLOptions{MTU: CAN_MTU, TxDL: 64}); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("classic mtu with tx_dl 64: %v", err)
	}
	if err := s.SetSockOpt(SOL_CAN_ISOTP, CAN_ISOTP_LL_OPTS, ISOTPLLOptions{MTU: CANFD_MTU, TxDL: 13}); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("tx_dl 13: %v", err)
	}
	if err := s.SetSockOpt(SOL_CAN_ISOTP, CAN_ISOTP_OPTS, ISOTPOptions{Flags: CAN_ISOTP_SF_BROADCAST | CAN_ISOTP_CF_BROADCAST}); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("both broadcasts: %v", err)
	}
	if err := s.SetSockOpt(SOL_CAN_ISOTP, 77, 1); !errors.Is(err, syscall.ENOPROTOOPT) {
		t.Fatalf("unknown option: %v", err)
	}
	if err := s.Bind(&SockaddrCAN{Ifname: "vcan0", RxID: 0x10, TxID: 0x11}); err != nil {
		t.Fatal(err)
	}
	if err := s.Bind(&SockaddrCAN{Ifname: "vcan0", RxID: 0x12, TxID: 0x13}); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("second bind: %v", err)
	}
	if err := s.SetSockOpt(SOL_CAN_ISOTP, CAN_ISOTP_RECV_FC, ISOTPFCOptions{}); !errors.Is(err, syscall.EISCONN) {
		t.Fatalf("option after bind: %v", err)
	}
	if _, err := s.Send(nil, 0); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("empty send: %v", err)
	}
	if _, err := s.Send(make([]byte, isotpMaxPDU+1), 0); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("oversize send: %v", err)
	}
	// A short receive buffer cuts the message and says so.
	r := isotpSock(t, h.b, 0x11, 0x10, nil)
	_, _ = s.Send([]byte{1, 2, 3, 4}, 0)
	n, fl, _, err := r.RecvMsg(make([]byte, 2), 0)
	if err != nil || n != 2 || fl&MSG_TRUNC == 0 {
		t.Fatalf("short recv %d %#x %v", n, fl, err)
	}
}

func TestISOTPReceiveQueueLimit(t *testing.T) {
	h := newCANHosts(t, link.CANBusOptions{})
	a := isotpSock(t, h.a, 0x20, 0x21, nil)
	b := isotpSock(t, h.b, 0x21, 0x20, nil)
	for i := range isotpMaxQueued + 6 {
		if _, err := a.Send([]byte{byte(i)}, 0); err != nil {
			t.Fatal(err)
		}
	}
	got := 0
	for {
		if _, err := b.Recv(make([]byte, 8), 0); err != nil {
			break
		}
		got++
	}
	e := b.ep.(*isotpEP)
	if got != isotpMaxQueued || e.RxDropped != 6 {
		t.Fatalf("queued %d dropped %d", got, e.RxDropped)
	}
}

func TestISOTPListenModeAndForceRxSTmin(t *testing.T) {
	h := newCANHosts(t, link.CANBusOptions{})
	clk := h.clk.(*clock.Manual)
	log := logBus(h)
	raw := canRawBound(t, h.a, "vcan0")
	// Listen mode: the message is assembled, no flow control is sent.
	spy := isotpSock(t, h.b, 0x700, 0x701, func(s *Socket) {
		_ = s.SetSockOpt(SOL_CAN_ISOTP, CAN_ISOTP_OPTS, ISOTPOptions{Flags: CAN_ISOTP_LISTEN_MODE})
	})
	_, _ = raw.Send(pyFrame(0x700, []byte{0x10, 10, 1, 2, 3, 4, 5, 6}), 0)
	_, _ = raw.Send(pyFrame(0x700, []byte{0x21, 7, 8, 9, 10}), 0)
	if got := mustRecvMsg(t, spy, 10); !bytes.Equal(got, []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}) {
		t.Fatalf("listen mode got % x", got)
	}
	for _, f := range log.frames {
		if f.ID == 0x701 {
			t.Fatalf("listen mode sent % x", f.Payload())
		}
	}
	// FORCE_RXSTMIN 5 ms: a CF 1 ms after the previous one is dropped.
	strict := isotpSock(t, h.b, 0x710, 0x711, func(s *Socket) {
		_ = s.SetSockOpt(SOL_CAN_ISOTP, CAN_ISOTP_OPTS, ISOTPOptions{Flags: CAN_ISOTP_FORCE_RXSTMIN})
		_ = s.SetSockOpt(SOL_CAN_ISOTP, CAN_ISOTP_RX_STMIN, 5000000)
	})
	_, _ = raw.Send(pyFrame(0x710, []byte{0x10, 20, 1, 2, 3, 4, 5, 6}), 0)
	_, _ = raw.Send(pyFrame(0x710, []byte{0x21, 7, 8, 9, 10, 11, 12, 13}), 0)
	clk.Advance(time.Millisecond)
	_, _ = raw.Send(pyFrame(0x710, []byte{0x22, 14, 15, 16, 17, 18, 19, 20}), 0) // too early: ignored
	clk.Advance(5 * time.Millisecond)
	_, _ = raw.Send(pyFrame(0x710, []byte{0x22, 14, 15, 16, 17, 18, 19, 20}), 0)
	if got := mustRecvMsg(t, strict, 20); len(got) != 20 || got[19] != 20 {
		t.Fatalf("force rx stmin got % x", got)
	}
	if e := strict.ep.(*isotpEP); e.RxErrors != 1 {
		t.Fatalf("dropped CFs %d, want 1", e.RxErrors)
	}
}

// TestISOTPTimestamps: with SO_TIMESTAMP_NEW a message read with a
// control buffer carries the arrival of its last frame, not the time of
// the read; without the option nothing comes.
func TestISOTPTimestamps(t *testing.T) {
	h := newCANHosts(t, link.CANBusOptions{Bitrate: 500000})
	clk := h.clk.(*clock.Manual)
	tester := isotpSock(t, h.a, 0x7E8, 0x7E0, nil)
	ecu := isotpSock(t, h.b, 0x7E0, 0x7E8, nil)
	recv := func() (msg []byte, at time.Time, oobn int) {
		t.Helper()
		buf, oob := make([]byte, 200), make([]byte, 64)
		n, oobn, _, _, err := ecu.RecvMsgControl(buf, oob, 0)
		if err != nil {
			t.Fatal(err)
		}
		if oobn >= 32 {
			ne := binary.NativeEndian
			if typ := ne.Uint32(oob[12:]); typ != SO_TIMESTAMP_NEW {
				t.Fatalf("control message type %d", typ)
			}
			at = time.Unix(int64(ne.Uint64(oob[16:])), int64(ne.Uint64(oob[24:]))*1000)
		}
		return buf[:n], at, oobn
	}
	if _, err := tester.Send([]byte{1, 2, 3}, 0); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Millisecond)
	if msg, _, oobn := recv(); len(msg) != 3 || oobn != 0 {
		t.Fatalf("no option: %d bytes, %d of control", len(msg), oobn)
	}
	if err := ecu.SetSockOpt(SOL_SOCKET, SO_TIMESTAMP_NEW, 1); err != nil {
		t.Fatal(err)
	}
	start := clk.Now()
	if _, err := tester.Send(seq(100), 0); err != nil {
		t.Fatal(err)
	}
	// Step the bus until the message is complete, then read it later.
	var done time.Time
	for range 100 {
		clk.Advance(100 * time.Microsecond)
		if ecu.ep.readiness(waiter.EventIn)&waiter.EventIn != 0 {
			done = clk.Now()
			break
		}
	}
	if done.IsZero() {
		t.Fatal("the message did not complete")
	}
	clk.Advance(time.Second)
	msg, at, _ := recv()
	if !bytes.Equal(msg, seq(100)) || !at.After(start) || at.After(done) || !at.After(done.Add(-100*time.Microsecond)) {
		t.Fatalf("%d bytes stamped %v; sent %v, complete by %v", len(msg), at, start, done)
	}
}
