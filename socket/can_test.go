package socket

import (
	"bytes"
	"encoding/binary"
	"errors"
	"runtime"
	"syscall"
	"testing"
	"time"
	"unsafe"
	"weak"

	"github.com/sockstack/sockstack/clock"
	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/waiter"
	"github.com/sockstack/sockstack/wire"
)

// canHosts puts two hosts (ECUs) on one bus, each with its node "vcan0".
type canHosts struct {
	bus  *link.CANBus
	a, b *Net
	ia   *link.CANIf
	ib   *link.CANIf
	clk  clock.Clock
}

func newCANHosts(t testing.TB, opts link.CANBusOptions) *canHosts {
	t.Helper()
	if opts.Clock == nil {
		opts.Clock = clock.NewManual(time.Unix(1700000000, 0))
	}
	bus := link.NewCANBus("bus", opts)
	h := &canHosts{bus: bus, clk: opts.Clock}
	sa := stack.New(stack.Options{Name: "a", Clock: opts.Clock})
	sb := stack.New(stack.Options{Name: "b", Clock: opts.Clock})
	t.Cleanup(func() { sa.Close(); sb.Close() })
	h.a, h.b = New(sa), New(sb)
	h.ia, h.ib = bus.Attach("vcan0"), bus.Attach("vcan0")
	h.a.AttachCAN(h.ia)
	h.b.AttachCAN(h.ib)
	return h
}

// pyFrame packs like Python's struct.pack("=IB3x8s", id, len, data).
func pyFrame(id uint32, data []byte) []byte {
	b := make([]byte, 16)
	binary.NativeEndian.PutUint32(b, id)
	b[4] = byte(len(data))
	copy(b[8:], data)
	return b
}

func fdFrame(id uint32, flags byte, data []byte) []byte {
	b := make([]byte, 72)
	binary.NativeEndian.PutUint32(b, id)
	b[4] = byte(len(data))
	b[5] = flags
	copy(b[8:], data)
	return b
}

func canRawBound(t testing.TB, n *Net, ifname string) *Socket {
	t.Helper()
	s := mustSocket(t, n, AF_CAN, SOCK_RAW, CAN_RAW)
	if err := s.Bind(&SockaddrCAN{Ifname: ifname}); err != nil {
		t.Fatal(err)
	}
	s.SetBlocking(false)
	return s
}

func recvIDs(t testing.TB, s *Socket) []uint32 {
	t.Helper()
	var out []uint32
	buf := make([]byte, 72)
	for {
		n, err := s.Recv(buf, 0)
		if errors.Is(err, syscall.EAGAIN) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if n != 16 && n != 72 {
			t.Fatalf("recv %d bytes", n)
		}
		out = append(out, binary.NativeEndian.Uint32(buf))
	}
}

func wantIDs(t testing.TB, got []uint32, want ...uint32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got ids %x, want %x", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("got ids %x, want %x", got, want)
		}
	}
}

func TestCANRawPythonExample(t *testing.T) {
	h := newCANHosts(t, link.CANBusOptions{})
	rx := canRawBound(t, h.b, "vcan0")
	tx := mustSocket(t, h.a, PF_CAN, SOCK_RAW, CAN_RAW)
	if err := tx.Bind(&SockaddrCAN{Ifname: "vcan0"}); err != nil {
		t.Fatal(err)
	}
	frame := pyFrame(0x123, []byte{0xde, 0xad, 0xbe, 0xef})
	if n, err := tx.Send(frame, 0); err != nil || n != 16 {
		t.Fatalf("send %d %v", n, err)
	}
	buf := make([]byte, 16)
	n, from, err := rx.RecvFrom(buf, 0)
	if err != nil || n != 16 || !bytes.Equal(buf, frame) {
		t.Fatalf("recv %d %v % x", n, err, buf)
	}
	if a := from.(*SockaddrCAN); a.Ifindex != CANIfindexBase || a.Ifname != "vcan0" {
		t.Fatalf("from %+v", a)
	}
	if v, _ := rx.GetSockOptInt(SOL_SOCKET, SO_TYPE); v != SOCK_RAW {
		t.Fatal("SO_TYPE", v)
	}
}

func TestCANSocketCreateErrors(t *testing.T) {
	h := newCANHosts(t, link.CANBusOptions{})
	for _, c := range []struct {
		typ, proto int
		want       syscall.Errno
	}{
		{SOCK_DGRAM, CAN_RAW, syscall.EPROTOTYPE},
		{SOCK_RAW, CAN_ISOTP, syscall.EPROTOTYPE},
		{SOCK_RAW, CAN_BCM, syscall.EPROTOTYPE},
		{SOCK_RAW, 0, syscall.EPROTONOSUPPORT},
		{SOCK_RAW, 3, syscall.EPROTONOSUPPORT},
		{SOCK_RAW, 8, syscall.EINVAL},
		{SOCK_RAW, -1, syscall.EINVAL},
	} {
		if _, err := h.a.Socket(AF_CAN, c.typ, c.proto); !errors.Is(err, c.want) {
			t.Errorf("socket(AF_CAN, %d, %d) = %v, want %v", c.typ, c.proto, err, c.want)
		}
	}
}

func TestCANRawBindSendErrors(t *testing.T) {
	h := newCANHosts(t, link.CANBusOptions{})
	s := mustSocket(t, h.a, AF_CAN, SOCK_RAW, CAN_RAW)
	frame := pyFrame(0x1, nil)
	if _, err := s.Send(frame, 0); !errors.Is(err, syscall.ENXIO) {
		t.Fatalf("unbound send: %v", err)
	}
	if _, err := s.Send(frame[:15], 0); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("unbound short send: %v (size is checked first)", err)
	}
	if err := s.Bind(Inet("1.2.3.4", 5)); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("bind inet: %v", err)
	}
	if err := s.Bind(&SockaddrCAN{Ifname: "can9"}); !errors.Is(err, syscall.ENODEV) {
		t.Fatalf("bind unknown name: %v", err)
	}
	if err := s.Bind(&SockaddrCAN{Ifindex: 4242}); !errors.Is(err, syscall.ENODEV) {
		t.Fatalf("bind unknown index: %v", err)
	}
	if _, err := s.SendTo(frame, 0, Inet("1.2.3.4", 5)); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("sendto inet: %v", err)
	}
	if _, err := s.SendTo(frame, 0, &SockaddrCAN{Ifindex: 4242}); !errors.Is(err, syscall.ENXIO) {
		t.Fatalf("sendto unknown index: %v", err)
	}
	// sendto with an address works unbound.
	rx := canRawBound(t, h.b, "vcan0")
	if _, err := s.SendTo(frame, 0, &SockaddrCAN{Ifname: "vcan0"}); err != nil {
		t.Fatal(err)
	}
	wantIDs(t, recvIDs(t, rx), 1)
	if err := s.Bind(&SockaddrCAN{Ifname: "vcan0"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		b    []byte
	}{
		{"short", frame[:15]},
		{"long", append(frame, 0)},
		{"fd without CAN_RAW_FD_FRAMES", fdFrame(1, 0, []byte{1})},
		{"classic len 9", func() []byte { f := pyFrame(1, nil); f[4] = 9; return f }()},
	} {
		if _, err := s.Send(c.b, 0); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("%s: %v, want EINVAL", c.name, err)
		}
	}
	_ = s.SetSockOpt(SOL_CAN_RAW, CAN_RAW_FD_FRAMES, 1)
	bad := fdFrame(1, 0, nil)
	bad[4] = 65
	if _, err := s.Send(bad, 0); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("fd len 65: %v", err)
	}
	h.ia.SetDown(true)
	if _, err := s.Send(frame, 0); !errors.Is(err, syscall.ENETDOWN) {
		t.Errorf("interface down: %v", err)
	}
}

func TestCANRawShortRecvTruncates(t *testing.T) {
	h := newCANHosts(t, link.CANBusOptions{})
	rx := canRawBound(t, h.b, "vcan0")
	tx := canRawBound(t, h.a, "vcan0")
	_, _ = tx.Send(pyFrame(0x55, []byte{1, 2, 3}), 0)
	buf := make([]byte, 8)
	n, m, err := rx.RecvMsgCAN(buf, 0)
	if err != nil || n != 8 || m.Flags&MSG_TRUNC == 0 || binary.NativeEndian.Uint32(buf) != 0x55 {
		t.Fatalf("n %d flags %#x err %v", n, m.Flags, err)
	}
}

func TestCANRawLoopbackAndOwnMessages(t *testing.T) {
	h := newCANHosts(t, link.CANBusOptions{})
	s1 := canRawBound(t, h.a, "vcan0")
	s2 := canRawBound(t, h.a, "vcan0")
	remote := canRawBound(t, h.b, "vcan0")
	buf := make([]byte, 16)

	_, _ = s1.Send(pyFrame(0x10, nil), 0)
	if _, _, err := s1.RecvMsgCAN(buf, 0); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("own frame without RECV_OWN_MSGS: %v", err)
	}
	n, m, err := s2.RecvMsgCAN(buf, 0)
	if err != nil || n != 16 || m.Flags != MSG_DONTROUTE {
		t.Fatalf("local echo: %v flags %#x", err, m.Flags)
	}
	if _, m, err = remote.RecvMsgCAN(buf, 0); err != nil || m.Flags != 0 {
		t.Fatalf("remote: %v flags %#x", err, m.Flags)
	}

	if err := s1.SetSockOpt(SOL_CAN_RAW, CAN_RAW_RECV_OWN_MSGS, 1); err != nil {
		t.Fatal(err)
	}
	_, _ = s1.Send(pyFrame(0x11, nil), 0)
	if _, m, err = s1.RecvMsgCAN(buf, 0); err != nil || m.Flags != MSG_DONTROUTE|MSG_CONFIRM {
		t.Fatalf("own: %v flags %#x", err, m.Flags)
	}
	recvIDs(t, s2)
	recvIDs(t, remote)

	// Loopback off: no local socket sees it, not even with RECV_OWN_MSGS.
	if err := s1.SetSockOpt(SOL_CAN_RAW, CAN_RAW_LOOPBACK, 0); err != nil {
		t.Fatal(err)
	}
	_, _ = s1.Send(pyFrame(0x12, nil), 0)
	wantIDs(t, recvIDs(t, s1))
	wantIDs(t, recvIDs(t, s2))
	wantIDs(t, recvIDs(t, remote), 0x12)
	if v, _ := s1.GetSockOptInt(SOL_CAN_RAW, CAN_RAW_LOOPBACK); v != 0 {
		t.Fatal("loopback read back", v)
	}
	if v, _ := s2.GetSockOptInt(SOL_CAN_RAW, CAN_RAW_LOOPBACK); v != 1 {
		t.Fatal("loopback default", v)
	}
}

func TestCANRawFilters(t *testing.T) {
	h := newCANHosts(t, link.CANBusOptions{})
	tx := canRawBound(t, h.a, "vcan0")
	rx := canRawBound(t, h.b, "vcan0")
	send := func(ids ...uint32) {
		for _, id := range ids {
			if _, err := tx.Send(pyFrame(id, nil), 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	all := []uint32{0x123, 0x124, 0x223, 0x123 | CAN_RTR_FLAG, 0x123 | CAN_EFF_FLAG}

	set := func(fs ...CANFilter) {
		t.Helper()
		if err := rx.SetSockOpt(SOL_CAN_RAW, CAN_RAW_FILTER, fs); err != nil {
			t.Fatal(err)
		}
	}
	// Exact SFF data frames of 0x123 only.
	set(CANFilter{0x123, CAN_SFF_MASK | CAN_EFF_FLAG | CAN_RTR_FLAG})
	send(all...)
	wantIDs(t, recvIDs(t, rx), 0x123)
	// The id bits only: 0x123 whatever its flags... an EFF 0x123 too.
	set(CANFilter{0x123, CAN_SFF_MASK})
	send(all...)
	wantIDs(t, recvIDs(t, rx), 0x123, 0x123|CAN_RTR_FLAG, 0x123|CAN_EFF_FLAG)
	// Inverted: everything but 0x123 (data, SFF).
	set(CANFilter{0x123 | CAN_INV_FILTER, CAN_SFF_MASK | CAN_EFF_FLAG | CAN_RTR_FLAG})
	send(all...)
	wantIDs(t, recvIDs(t, rx), 0x124, 0x223, 0x123|CAN_RTR_FLAG, 0x123|CAN_EFF_FLAG)
	// Two filters matching one frame still give one copy.
	set(CANFilter{0x100, 0x700}, CANFilter{0x020, 0x0F0})
	send(0x123, 0x133, 0x023)
	wantIDs(t, recvIDs(t, rx), 0x123, 0x133, 0x023)
	// Joined: both must match.
	if err := rx.SetSockOpt(SOL_CAN_RAW, CAN_RAW_JOIN_FILTERS, 1); err != nil {
		t.Fatal(err)
	}
	send(0x123, 0x133, 0x023)
	wantIDs(t, recvIDs(t, rx), 0x123)
	_ = rx.SetSockOpt(SOL_CAN_RAW, CAN_RAW_JOIN_FILTERS, 0)
	// No filters: nothing.
	set()
	send(all...)
	wantIDs(t, recvIDs(t, rx))
	// Packed struct can_filter bytes, as C and Python pass them.
	var packed [8]byte
	binary.NativeEndian.PutUint32(packed[0:], 0x224)
	binary.NativeEndian.PutUint32(packed[4:], 0x7FF)
	if err := rx.SetSockOpt(SOL_CAN_RAW, CAN_RAW_FILTER, packed[:]); err != nil {
		t.Fatal(err)
	}
	send(0x223, 0x224)
	wantIDs(t, recvIDs(t, rx), 0x224)
	got, _ := rx.GetSockOpt(SOL_CAN_RAW, CAN_RAW_FILTER)
	if fs := got.([]CANFilter); len(fs) != 1 || fs[0] != (CANFilter{0x224, 0x7FF}) {
		t.Fatalf("read back %v", fs)
	}
	// Limits and bad values.
	if err := rx.SetSockOpt(SOL_CAN_RAW, CAN_RAW_FILTER, make([]CANFilter, CAN_RAW_FILTER_MAX+1)); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("513 filters: %v", err)
	}
	if err := rx.SetSockOpt(SOL_CAN_RAW, CAN_RAW_FILTER, packed[:7]); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("7 bytes: %v", err)
	}
}

func TestCANRawErrorFilter(t *testing.T) {
	h := newCANHosts(t, link.CANBusOptions{ErrorRate: 1})
	tx := canRawBound(t, h.a, "vcan0")
	plain := canRawBound(t, h.a, "vcan0")
	errs := canRawBound(t, h.a, "vcan0")
	if err := errs.SetSockOpt(SOL_CAN_RAW, CAN_RAW_ERR_FILTER, int(CAN_ERR_MASK)); err != nil {
		t.Fatal(err)
	}
	busoff := canRawBound(t, h.a, "vcan0")
	_ = busoff.SetSockOpt(SOL_CAN_RAW, CAN_RAW_ERR_FILTER, 0x40) // CAN_ERR_BUSOFF
	_, _ = tx.Send(pyFrame(0x1, nil), 0)
	wantIDs(t, recvIDs(t, plain))
	if n := len(recvIDs(t, errs)); n != 32 {
		t.Fatalf("error frames %d, want 32 (one per failed attempt)", n)
	}
	got := recvIDs(t, busoff)
	if len(got) != 1 || got[0]&0x40 == 0 || got[0]&CAN_ERR_FLAG == 0 {
		t.Fatalf("bus-off frames %x", got)
	}
	if _, err := tx.Send(pyFrame(0x1, nil), 0); !errors.Is(err, syscall.ENETDOWN) {
		t.Fatalf("bus-off send: %v", err)
	}
}

func TestCANRawFDFrames(t *testing.T) {
	h := newCANHosts(t, link.CANBusOptions{})
	tx := canRawBound(t, h.a, "vcan0")
	classic := canRawBound(t, h.b, "vcan0")
	fd := canRawBound(t, h.b, "vcan0")
	if err := fd.SetSockOpt(SOL_CAN_RAW, CAN_RAW_FD_FRAMES, 1); err != nil {
		t.Fatal(err)
	}
	_ = tx.SetSockOpt(SOL_CAN_RAW, CAN_RAW_FD_FRAMES, 1)
	payload := bytes.Repeat([]byte{0xab}, 48)
	if n, err := tx.Send(fdFrame(0x321, CANFD_BRS, payload), 0); err != nil || n != 72 {
		t.Fatalf("fd send %d %v", n, err)
	}
	_, _ = tx.Send(pyFrame(0x322, []byte{1}), 0)
	wantIDs(t, recvIDs(t, classic), 0x322)
	buf := make([]byte, 72)
	n, err := fd.Recv(buf, 0)
	if err != nil || n != 72 || buf[4] != 48 || buf[5] != CANFD_BRS || !bytes.Equal(buf[8:56], payload) {
		t.Fatalf("fd recv %d %v % x", n, err, buf[:8])
	}
	// A classic frame reaches an FD socket as a 16-byte can_frame.
	if n, err := fd.Recv(buf, 0); err != nil || n != 16 {
		t.Fatalf("classic on fd socket: %d %v", n, err)
	}
}

func TestCANRawOptions(t *testing.T) {
	h := newCANHosts(t, link.CANBusOptions{})
	s := canRawBound(t, h.a, "vcan0")
	if err := s.SetSockOpt(SOL_IP, 1, 1); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("foreign level: %v", err)
	}
	if err := s.SetSockOpt(SOL_CAN_RAW, 99, 1); !errors.Is(err, syscall.ENOPROTOOPT) {
		t.Fatalf("unknown option: %v", err)
	}
	if err := s.SetSockOpt(SOL_CAN_RAW, CAN_RAW_LOOPBACK, "x"); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("bad value: %v", err)
	}
	if _, err := s.GetSockOpt(SOL_CAN_RAW, 99); !errors.Is(err, syscall.ENOPROTOOPT) {
		t.Fatalf("get unknown: %v", err)
	}
	for _, o := range []int{CAN_RAW_RECV_OWN_MSGS, CAN_RAW_FD_FRAMES, CAN_RAW_JOIN_FILTERS} {
		if v, err := s.GetSockOptInt(SOL_CAN_RAW, o); err != nil || v != 0 {
			t.Fatalf("option %d default %d %v", o, v, err)
		}
		_ = s.SetSockOpt(SOL_CAN_RAW, o, 1)
		if v, _ := s.GetSockOptInt(SOL_CAN_RAW, o); v != 1 {
			t.Fatalf("option %d not set", o)
		}
	}
	_ = s.SetSockOpt(SOL_CAN_RAW, CAN_RAW_ERR_FILTER, 0xFFFFFFFF)
	if v, _ := s.GetSockOptInt(SOL_CAN_RAW, CAN_RAW_ERR_FILTER); v != CAN_ERR_MASK {
		t.Fatalf("err mask %#x", v)
	}
	if err := s.Listen(1); !errors.Is(err, syscall.EOPNOTSUPP) {
		t.Fatalf("listen: %v", err)
	}
}

func TestCANRawTimestamp(t *testing.T) {
	clk := clock.NewManual(time.Unix(1700000000, 0))
	h := newCANHosts(t, link.CANBusOptions{Clock: clk, Bitrate: 500000})
	tx := canRawBound(t, h.a, "vcan0")
	rx := canRawBound(t, h.b, "vcan0")
	if err := rx.SetSockOpt(SOL_SOCKET, SO_TIMESTAMP, 1); err != nil {
		t.Fatal(err)
	}
	_, _ = tx.Send(pyFrame(0, nil), 0)
	clk.Advance(time.Millisecond)
	buf := make([]byte, 16)
	_, m, err := rx.RecvMsgCAN(buf, 0)
	// Delivered when its 53 bits were sent at 500 kbit/s.
	if err != nil || !m.Time.Equal(time.Unix(1700000000, 106000)) {
		t.Fatalf("ts %v %v", m.Time, err)
	}
	if v, _ := rx.GetSockOptInt(SOL_SOCKET, SO_TIMESTAMP); v != 1 {
		t.Fatal("SO_TIMESTAMP read back")
	}
}

// TestCANRawTimestampControl: recvmsg with a control buffer gives the
// frame's bus time as SCM_TIMESTAMPNS, SCM_TIMESTAMP_NEW or
// SCM_TIMESTAMPING as asked (raw_recvmsg's sock_recv_cmsgs), nothing
// when nothing is asked, MSG_CTRUNC when it does not fit.
func TestCANRawTimestampControl(t *testing.T) {
	clk := clock.NewManual(time.Unix(1700000000, 0))
	h := newCANHosts(t, link.CANBusOptions{Clock: clk, Bitrate: 500000})
	tx := canRawBound(t, h.a, "vcan0")
	rx := canRawBound(t, h.b, "vcan0")
	rx.SetBlocking(false)
	var sent time.Time
	recv := func(oobSize int) (typ int, at time.Time, clen, rflags int) {
		t.Helper()
		clk.Advance(time.Second) // each frame at another time
		sent = clk.Now()
		_, _ = tx.Send(pyFrame(0x42, []byte{7}), 0)
		clk.Advance(time.Millisecond)
		buf, oob := make([]byte, 16), make([]byte, oobSize)
		n, oobn, rflags, from, err := rx.RecvMsgControl(buf, oob, 0)
		if err != nil || n != 16 || binary.NativeEndian.Uint32(buf) != 0x42 {
			t.Fatalf("recvmsg: %d %v", n, err)
		}
		if a, ok := from.(*SockaddrCAN); !ok || a.Ifname != "vcan0" {
			t.Fatalf("from %v", from)
		}
		if oobn == 0 {
			return 0, time.Time{}, 0, rflags
		}
		ne := binary.NativeEndian
		clen, typ = int(ne.Uint64(oob)), int(ne.Uint32(oob[12:]))
		if lvl := ne.Uint32(oob[8:]); lvl != SOL_SOCKET {
			t.Fatalf("level %d", lvl)
		}
		if clen >= 32 {
			sec, sub := int64(ne.Uint64(oob[16:])), int64(ne.Uint64(oob[24:]))
			if typ == SO_TIMESTAMP || typ == SO_TIMESTAMP_NEW {
				sub *= 1000
			}
			at = time.Unix(sec, sub)
		}
		return typ, at, clen, rflags
	}
	if typ, _, _, fl := recv(64); typ != 0 || fl&MSG_CTRUNC != 0 {
		t.Fatalf("nothing asked: message %d, flags %#x", typ, fl)
	}
	for _, c := range []struct {
		opt, v, typ, clen int
	}{
		{SO_TIMESTAMPNS, 1, SO_TIMESTAMPNS, 32},
		{SO_TIMESTAMP_NEW, 1, SO_TIMESTAMP_NEW, 32},
		{SO_TIMESTAMPING, SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE, SO_TIMESTAMPING, 64},
	} {
		rx.SetSockOpt(SOL_SOCKET, SO_TIMESTAMP, 0)
		rx.SetSockOpt(SOL_SOCKET, SO_TIMESTAMPING, 0)
		if err := rx.SetSockOpt(SOL_SOCKET, c.opt, c.v); err != nil {
			t.Fatal(err)
		}
		if v, err := rx.GetSockOptInt(SOL_SOCKET, c.opt); err != nil || v != c.v {
			t.Fatalf("option %d reads %d %v", c.opt, v, err)
		}
		typ, at, clen, fl := recv(64)
		// Delivered once its bits were sent at 500 kbit/s: after the
		// send, before the clock moved on.
		if typ != c.typ || clen != c.clen || !at.After(sent) || at.After(sent.Add(time.Millisecond)) || fl&MSG_CTRUNC != 0 {
			t.Fatalf("option %d: message %d len %d at %v (sent %v), flags %#x", c.opt, typ, clen, at, sent, fl)
		}
	}
	if _, _, clen, fl := recv(20); clen != 20 || fl&MSG_CTRUNC == 0 {
		t.Fatalf("short buffer: len %d flags %#x", clen, fl)
	}
}

func TestCANRawBlockingModes(t *testing.T) {
	h := newCANHosts(t, link.CANBusOptions{})
	tx := canRawBound(t, h.a, "vcan0")
	rx := canRawBound(t, h.b, "vcan0")
	buf := make([]byte, 16)
	if _, err := rx.Recv(buf, 0); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("non-blocking: %v", err)
	}
	rx.SetTimeout(time.Millisecond)
	var te *TimeoutError
	if _, err := rx.Recv(buf, 0); !errors.As(err, &te) {
		t.Fatalf("timeout: %v", err)
	}
	// Blocking: a receiver waiting in Recv is woken by the frame.
	rx.SetBlocking(true)
	got := make(chan error, 1)
	e := waiter.NewEntry()
	rx.Waiter().Register(e, waiter.EventIn)
	go func() {
		_, err := rx.Recv(buf, 0)
		got <- err
	}()
	_, _ = tx.Send(pyFrame(0x77, nil), 0)
	if err := <-got; err != nil || binary.NativeEndian.Uint32(buf) != 0x77 {
		t.Fatalf("blocking recv: %v", err)
	}
	rx.Waiter().Unregister(e)
	// Poller sees readability.
	p := NewPoller()
	defer p.Close()
	if err := p.Add(rx, waiter.EventIn, 7); err != nil {
		t.Fatal(err)
	}
	_, _ = tx.Send(pyFrame(0x78, nil), 0)
	ev := make([]PollEvent, 4)
	n, err := p.Wait(ev, time.Second)
	if err != nil || n != 1 || ev[0].Data != 7 {
		t.Fatalf("poll %d %v %+v", n, err, ev[:n])
	}
}

func TestCANRawQueueLimit(t *testing.T) {
	h := newCANHosts(t, link.CANBusOptions{TxQueueLen: 1024})
	tx := canRawBound(t, h.a, "vcan0")
	rx := canRawBound(t, h.b, "vcan0")
	if err := rx.SetSockOpt(SOL_SOCKET, SO_RCVBUF, 4*canTruesize); err != nil {
		t.Fatal(err)
	}
	limit := canQueueLimit(8 * canTruesize) // doubled like Linux
	for i := range limit + 5 {
		_, _ = tx.Send(pyFrame(uint32(i), nil), 0)
	}
	if got := len(recvIDs(t, rx)); got != limit || rx.CANDrops() != 5 {
		t.Fatalf("queued %d (limit %d) drops %d", got, limit, rx.CANDrops())
	}
}

func TestCANRawBindAny(t *testing.T) {
	h := newCANHosts(t, link.CANBusOptions{})
	rx := mustSocket(t, h.b, AF_CAN, SOCK_RAW, CAN_RAW)
	rx.SetBlocking(false)
	if err := rx.Bind(&SockaddrCAN{Ifindex: 0}); err != nil {
		t.Fatal(err)
	}
	// A second bus joins host b later; the socket hears it too.
	bus2 := link.NewCANBus("bus2", link.CANBusOptions{})
	idx := h.b.AttachCAN(bus2.Attach("vcan1"))
	other := bus2.Attach("peer")
	tx := canRawBound(t, h.a, "vcan0")
	_, _ = tx.Send(pyFrame(0x1, nil), 0)
	_ = other.Send(&wire.CANFrame{ID: 0x2}, nil, false)
	buf := make([]byte, 16)
	var idxs []int
	for {
		_, m, err := rx.RecvMsgCAN(buf, 0)
		if err != nil {
			break
		}
		idxs = append(idxs, m.Ifindex)
	}
	if len(idxs) != 2 || idxs[0] != CANIfindexBase || idxs[1] != idx {
		t.Fatalf("ifindexes %v", idxs)
	}
	if a, _ := rx.GetSockName(); a.(*SockaddrCAN).Ifindex != 0 {
		t.Fatalf("sockname %v", a)
	}
}

func TestCANSpaceReleasedWithNet(t *testing.T) {
	bus := link.NewCANBus("b", link.CANBusOptions{})
	k := func() weak.Pointer[Net] {
		st := stack.New(stack.Options{})
		defer st.Close()
		n := New(st)
		n.AttachCAN(bus.Attach("vcan0"))
		return weak.Make(n)
	}()
	if _, ok := canSpaces.Load(k); !ok {
		t.Fatal("no CAN side recorded")
	}
	for range 50 {
		runtime.GC()
		runtime.Gosched()
		if _, ok := canSpaces.Load(k); !ok {
			return
		}
	}
	t.Fatal("the CAN side of a dropped Net is still held")
}

// CAN_RAW's queue charges each frame its slot plus stack.DgramOverhead
// (576, Linux's per-skb overhead) against SO_RCVBUF, like the UDP, ping
// and raw queues; its drops show in Drops like theirs.
func TestCANRawQueueChargesTrueSize(t *testing.T) {
	h := newCANHosts(t, link.CANBusOptions{TxQueueLen: 1024})
	tx := canRawBound(t, h.a, "vcan0")
	rx := canRawBound(t, h.b, "vcan0")
	charge := int(unsafe.Sizeof(canRxEntry{})) + stack.DgramOverhead
	limit := canDefaultRcvBuf / charge
	for i := range limit + 7 {
		_, _ = tx.Send(pyFrame(uint32(i), nil), 0)
	}
	if got := len(recvIDs(t, rx)); got != limit {
		t.Fatalf("default SO_RCVBUF (%d bytes) queued %d frames, want %d (%d bytes each)", canDefaultRcvBuf, got, limit, charge)
	}
	if rx.Drops() != 7 || rx.CANDrops() != 7 {
		t.Fatalf("Drops %d, CANDrops %d, want 7", rx.Drops(), rx.CANDrops())
	}
}
