package socket

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/wire"
)

func setOpts(t *testing.T, s *Socket, level int, names ...int) {
	t.Helper()
	for _, n := range names {
		if err := s.SetSockOpt(level, n, 1); err != nil {
			t.Fatalf("setsockopt(%d, %d): %v", level, n, err)
		}
	}
}

func int32Bytes(v int32) []byte { return binary.NativeEndian.AppendUint32(nil, uint32(v)) }

// recvCtl reads one datagram with a control buffer of oobSize, waiting
// up to 5 s for it.
func recvCtl(t *testing.T, s *Socket, oobSize, flags int) (data []byte, ctl []byte, rflags int) {
	t.Helper()
	s.SetTimeout(5 * time.Second)
	p, oob := make([]byte, 256), make([]byte, oobSize)
	n, oobn, rflags, _, err := s.RecvMsgControl(p, oob, flags)
	if err != nil {
		t.Fatalf("RecvMsgControl: %v", err)
	}
	return p[:n], oob[:oobn], rflags
}

// IP_RECVTTL and IP_RECVTOS give IP_TTL (an int) and IP_TOS (one byte),
// after IP_PKTINFO and in that order, as Linux's ip_cmsg_recv.
func TestRecvTTLTOS(t *testing.T) {
	n, r, ra := loopReceiver(t, AF_INET)
	setOpts(t, r, SOL_IP, IP_RECVTOS, IP_RECVTTL, IP_PKTINFO)
	s := mustSocket(t, n, AF_INET, SOCK_DGRAM, 0)
	s.SetSockOpt(SOL_IP, IP_TTL, 33)
	s.SetSockOpt(SOL_IP, IP_TOS, 0x28)
	if _, err := s.SendTo([]byte("hi"), 0, ra); err != nil {
		t.Fatal(err)
	}
	data, ctl, rflags := recvCtl(t, r, 256, 0)
	pi := binary.NativeEndian.AppendUint32(nil, 1) // lo
	pi = append(pi, 127, 0, 0, 1, 127, 0, 0, 1)
	want := append(cmsgBytes(SOL_IP, IP_PKTINFO, pi), cmsgBytes(SOL_IP, IP_TTL, int32Bytes(33))...)
	want = append(want, cmsgBytes(SOL_IP, IP_TOS, []byte{0x28})...)
	if string(data) != "hi" || rflags != 0 || !bytes.Equal(ctl, want) {
		t.Fatalf("read %q flags %#x control\n%x\nwant\n%x", data, rflags, ctl, want)
	}
	// A control buffer with room for IP_PKTINFO and IP_TTL only: the
	// rest is cut, MSG_CTRUNC.
	s.SendTo([]byte("hi"), 0, ra)
	_, ctl, rflags = recvCtl(t, r, 32+20, 0)
	if rflags&MSG_CTRUNC == 0 || !bytes.Equal(ctl, want[:32+20]) {
		t.Fatalf("52-byte buffer: flags %#x control %x", rflags, ctl)
	}
	// Off again: nothing.
	r.SetSockOpt(SOL_IP, IP_RECVTTL, 0)
	r.SetSockOpt(SOL_IP, IP_RECVTOS, "")
	r.SetSockOpt(SOL_IP, IP_PKTINFO, 0)
	s.SendTo([]byte("hi"), 0, ra)
	if _, ctl, _ = recvCtl(t, r, 256, 0); len(ctl) != 0 {
		t.Fatalf("options off: control %x", ctl)
	}
}

// A ping socket's echo reply carries its TTL under IP_RECVTTL.
func TestRecvTTLPing(t *testing.T) {
	n := New(stack.New(stack.Options{}))
	s := mustSocket(t, n, AF_INET, SOCK_DGRAM, IPPROTO_ICMP)
	setOpts(t, s, SOL_IP, IP_RECVTTL, IP_RECVOPTS)
	echo := []byte{8, 0, 0, 0, 0, 0, 0, 1, 'p'}
	if _, err := s.SendTo(echo, 0, Inet("127.0.0.1", 0)); err != nil {
		t.Fatal(err)
	}
	data, ctl, _ := recvCtl(t, s, 64, 0)
	if len(data) < 8 || data[0] != 0 {
		t.Fatalf("not an echo reply: %x", data)
	}
	if want := cmsgBytes(SOL_IP, IP_TTL, int32Bytes(64)); !bytes.Equal(ctl, want) {
		t.Fatalf("control %x, want %x (no options: no IP_RECVOPTS)", ctl, want)
	}
}

// IPV6_FLOWINFO gives the IPv6 header's traffic class and flow label
// (network order) after IPV6_TCLASS, and nothing when both are zero.
func TestRecvFlowInfo(t *testing.T) {
	n, r, ra := loopReceiver(t, AF_INET6)
	setOpts(t, r, IPPROTO_IPV6, IPV6_FLOWINFO, IPV6_RECVTCLASS)
	s := mustSocket(t, n, AF_INET6, SOCK_DGRAM, 0)
	s.SendTo([]byte("a"), 0, ra)
	if _, ctl, _ := recvCtl(t, r, 256, 0); !bytes.Equal(ctl, cmsgBytes(IPPROTO_IPV6, IPV6_TCLASS, int32Bytes(0))) {
		t.Fatalf("class 0, label 0: control %x, want IPV6_TCLASS alone", ctl)
	}
	s.SetSockOpt(IPPROTO_IPV6, IPV6_TCLASS, 0x28)
	s.SendTo([]byte("a"), 0, ra)
	_, ctl, _ := recvCtl(t, r, 256, 0)
	want := append(cmsgBytes(IPPROTO_IPV6, IPV6_TCLASS, int32Bytes(0x28)), cmsgBytes(IPPROTO_IPV6, IPV6_FLOWINFO, []byte{0x02, 0x80, 0, 0})...)
	if !bytes.Equal(ctl, want) {
		t.Fatalf("control\n%x\nwant\n%x", ctl, want)
	}
}

// A datagram with options (from a raw IP_HDRINCL socket): IP_RECVOPTS
// shows this host recorded in Record Route, IP_RETOPTS the reply's.
func TestRecvOptsRetOpts(t *testing.T) {
	n := New(stack.New(stack.Options{}))
	r := mustSocket(t, n, AF_INET, SOCK_DGRAM, 0)
	if err := r.Bind(Inet("127.0.0.1", 4000)); err != nil {
		t.Fatal(err)
	}
	setOpts(t, r, SOL_IP, IP_RETOPTS, IP_RECVOPTS)
	raw := mustSocket(t, n, AF_INET, SOCK_RAW, IPPROTO_RAW)
	h := wire.IPv4Header{TTL: 64, Protocol: wire.ProtoUDP, ID: 1,
		Src: netip.MustParseAddr("127.0.0.1"), Dst: netip.MustParseAddr("127.0.0.1"),
		Options: []byte{1, 7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0}}
	u := []byte{0, 7, 0x0f, 0xa0, 0, 9, 0, 0, 'o'}
	h.TotalLen = h.Len() + len(u)
	pkt := make([]byte, h.TotalLen)
	copy(pkt[h.Put(pkt):], u)
	if _, err := raw.SendTo(pkt, 0, Inet("127.0.0.1", 0)); err != nil {
		t.Fatal(err)
	}
	_, ctl, rflags := recvCtl(t, r, 256, 0)
	want := append(cmsgBytes(SOL_IP, IP_RECVOPTS, []byte{1, 7, 11, 8, 127, 0, 0, 1, 0, 0, 0, 0}),
		cmsgBytes(SOL_IP, IP_RETOPTS, []byte{7, 11, 8, 127, 0, 0, 1, 0, 0, 0, 0, 0})...)
	if rflags != 0 || !bytes.Equal(ctl, want) {
		t.Fatalf("flags %#x control\n%x\nwant\n%x", rflags, ctl, want)
	}
}

// The error queue: the ICMP's TTL and TOS (0xc0, as Linux's icmp_send)
// before IP_RECVERR.
func TestRecvTTLErrQueue(t *testing.T) {
	n := New(stack.New(stack.Options{}))
	s := mustSocket(t, n, AF_INET, SOCK_DGRAM, 0)
	setOpts(t, s, SOL_IP, IP_RECVERR, IP_RECVTTL, IP_RECVTOS)
	if _, err := s.SendTo([]byte("x"), 0, Inet("127.0.0.1", 9)); err != nil {
		t.Fatal(err)
	}
	waitErr(t, s)
	_, ctl, rflags := recvCtl(t, s, 256, MSG_ERRQUEUE)
	want := append(cmsgBytes(SOL_IP, IP_TTL, int32Bytes(64)), cmsgBytes(SOL_IP, IP_TOS, []byte{0xc0})...)
	if rflags&MSG_ERRQUEUE == 0 || !bytes.HasPrefix(ctl, want) || len(ctl) != len(want)+48 {
		t.Fatalf("flags %#x control %x, want %x then IP_RECVERR", rflags, ctl, want)
	}
}

// Validation, as Linux: the IP level reads an int, a byte from a short
// value and 0 from none; IPv6 wants an int; AF_INET6 raw sockets take no
// SOL_IP option, AF_INET sockets no IPPROTO_IPV6 one; TCP keeps them.
func TestRecvOptsValidation(t *testing.T) {
	n := New(stack.New(stack.Options{}))
	u := mustSocket(t, n, AF_INET, SOCK_DGRAM, 0)
	for _, c := range []struct {
		v    any
		want int
	}{{1, 1}, {"\x05", 1}, {"", 0}, {"\x00\x00\x01", 0}, {-1, 1}, {"\x00\x00\x00\x00\x01", 0}, {uint8(2), 1}} {
		if err := u.SetSockOpt(SOL_IP, IP_RECVTTL, c.v); err != nil {
			t.Fatalf("set %q: %v", c.v, err)
		}
		if got, _ := u.GetSockOptInt(SOL_IP, IP_RECVTTL); got != c.want {
			t.Fatalf("set %q: get %d, want %d", c.v, got, c.want)
		}
	}
	if err := u.SetSockOpt(SOL_IP, IP_RECVTTL, 1.5); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("float value: %v, want EINVAL", err)
	}
	if err := u.SetSockOpt(IPPROTO_IPV6, IPV6_FLOWINFO, 1); !errors.Is(err, syscall.ENOPROTOOPT) {
		t.Fatalf("IPV6_FLOWINFO on AF_INET: %v", err)
	}
	if _, err := u.GetSockOpt(IPPROTO_IPV6, IPV6_FLOWINFO); !errors.Is(err, syscall.EOPNOTSUPP) {
		t.Fatalf("get IPV6_FLOWINFO on AF_INET: %v", err)
	}
	u6 := mustSocket(t, n, AF_INET6, SOCK_DGRAM, 0)
	if err := u6.SetSockOpt(IPPROTO_IPV6, IPV6_FLOWINFO, "\x01"); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("one-byte IPV6_FLOWINFO: %v, want EINVAL", err)
	}
	if err := u6.SetSockOpt(SOL_IP, IP_RETOPTS, 1); err != nil {
		t.Fatal(err)
	}
	r6 := mustSocket(t, n, AF_INET6, SOCK_RAW, IPPROTO_UDP)
	if err := r6.SetSockOpt(SOL_IP, IP_RECVTOS, 1); !errors.Is(err, syscall.ENOPROTOOPT) {
		t.Fatalf("IP_RECVTOS on AF_INET6 raw: %v", err)
	}
	if _, err := r6.GetSockOpt(SOL_IP, IP_RECVTOS); !errors.Is(err, syscall.ENOPROTOOPT) {
		t.Fatalf("get IP_RECVTOS on AF_INET6 raw: %v", err)
	}
	tc := mustSocket(t, n, AF_INET6, SOCK_STREAM, 0)
	setOpts(t, tc, SOL_IP, IP_RECVOPTS)
	setOpts(t, tc, IPPROTO_IPV6, IPV6_FLOWINFO_SEND)
	if a, _ := tc.GetSockOptInt(SOL_IP, IP_RECVOPTS); a != 1 {
		t.Fatal("TCP IP_RECVOPTS not kept")
	}
	if a, _ := tc.GetSockOptInt(IPPROTO_IPV6, IPV6_FLOWINFO_SEND); a != 1 {
		t.Fatal("TCP IPV6_FLOWINFO_SEND not kept")
	}
}

// put_cmsg's truncation: a message cut to the room left says so in
// cmsg_len; less room than a header gives nothing.
func TestCmsgWriterTruncates(t *testing.T) {
	w := cmsgWriter{b: make([]byte, 18)}
	w.put(SOL_IP, IP_TTL, int32Bytes(7))
	if !w.trunc || w.n != 18 || binary.NativeEndian.Uint64(w.b) != 18 || !bytes.Equal(w.b[16:18], int32Bytes(7)[:2]) {
		t.Fatalf("cut message: n %d trunc %v %x", w.n, w.trunc, w.b)
	}
	w = cmsgWriter{b: make([]byte, 15)}
	w.put(SOL_IP, IP_TTL, int32Bytes(7))
	if !w.trunc || w.n != 0 {
		t.Fatalf("no room: n %d trunc %v", w.n, w.trunc)
	}
}

// An accepted TCP socket inherits the listener's receive options, as
// Linux's clone of the listener copies them.
func TestAcceptInheritsRecvOpts(t *testing.T) {
	n := New(stack.New(stack.Options{}))
	l := mustSocket(t, n, AF_INET6, SOCK_STREAM, 0)
	if err := l.Bind(Inet6("::1", 0)); err != nil {
		t.Fatal(err)
	}
	setOpts(t, l, SOL_IP, IP_RECVTTL, IP_PKTINFO)
	setOpts(t, l, IPPROTO_IPV6, IPV6_FLOWINFO, IPV6_RECVPKTINFO)
	if err := l.Listen(1); err != nil {
		t.Fatal(err)
	}
	la, _ := l.GetSockName()
	c := mustSocket(t, n, AF_INET6, SOCK_STREAM, 0)
	c.SetTimeout(5 * time.Second)
	if err := c.Connect(la); err != nil {
		t.Fatal(err)
	}
	l.SetTimeout(5 * time.Second)
	a, _, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	for _, o := range []struct{ level, name int }{{SOL_IP, IP_RECVTTL}, {SOL_IP, IP_PKTINFO}, {IPPROTO_IPV6, IPV6_FLOWINFO}, {IPPROTO_IPV6, IPV6_RECVPKTINFO}} {
		if v, err := a.GetSockOptInt(o.level, o.name); err != nil || v != 1 {
			t.Errorf("accepted socket option %d/%d: %d %v, want 1", o.level, o.name, v, err)
		}
	}
}

// IP_OPTIONS on a datagram socket: set from bytes, read back as Linux's
// getsockopt gives them, sent on each datagram; on TCP sockets set and
// read back alike.
func TestIPOptionsSockopt(t *testing.T) {
	n := New(stack.New(stack.Options{}))
	u := mustSocket(t, n, AF_INET, SOCK_DGRAM, 0)
	if err := u.SetSockOpt(SOL_IP, IP_OPTIONS, []byte{7, 7, 4, 9, 9, 9, 9}); err != nil {
		t.Fatal(err)
	}
	if v, err := u.GetSockOpt(SOL_IP, IP_OPTIONS); err != nil || v != string([]byte{7, 7, 4, 0, 0, 0, 0, 0}) {
		t.Fatalf("get %q %v", v, err)
	}
	if err := u.SetSockOpt(SOL_IP, IP_OPTIONS, 1.5); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("float: %v", err)
	}
	if err := u.SetSockOpt(SOL_IP, IP_OPTIONS, string(make([]byte, 41))); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("41 bytes: %v", err)
	}
	r := mustSocket(t, n, AF_INET, SOCK_DGRAM, 0)
	if err := r.Bind(Inet("127.0.0.1", 0)); err != nil {
		t.Fatal(err)
	}
	ra, _ := r.GetSockName()
	setOpts(t, r, SOL_IP, IP_RECVOPTS)
	if _, err := u.SendTo([]byte("o"), 0, ra); err != nil {
		t.Fatal(err)
	}
	// One slot: the sender fills it, the receiver finds it full.
	if _, ctl, _ := recvCtl(t, r, 64, 0); !bytes.Equal(ctl, cmsgBytes(SOL_IP, IP_RECVOPTS, []byte{7, 7, 8, 127, 0, 0, 1, 0})) {
		t.Fatalf("received options: %x", ctl)
	}
	// TCP (AF_INET and AF_INET6, as Linux) takes them with the same
	// checks and reads them back the same way (tcp/ipopts.go).
	for _, fam := range []int{AF_INET, AF_INET6} {
		tc := mustSocket(t, n, fam, SOCK_STREAM, 0)
		if v, err := tc.GetSockOpt(SOL_IP, IP_OPTIONS); err != nil || v != "" {
			t.Fatalf("TCP %d default: %q %v", fam, v, err)
		}
		if err := tc.SetSockOpt(SOL_IP, IP_OPTIONS, []byte{7, 7, 4, 9, 9, 9, 9}); err != nil {
			t.Fatalf("TCP %d: %v", fam, err)
		}
		if v, err := tc.GetSockOpt(SOL_IP, IP_OPTIONS); err != nil || v != string([]byte{7, 7, 4, 0, 0, 0, 0, 0}) {
			t.Fatalf("TCP %d get %q %v", fam, v, err)
		}
		if err := tc.SetSockOpt(SOL_IP, IP_OPTIONS, []byte{7, 1, 0, 0}); !errors.Is(err, syscall.EINVAL) {
			t.Fatalf("TCP %d, length 1: %v", fam, err)
		}
		if err := tc.SetSockOpt(SOL_IP, IP_OPTIONS, ""); err != nil {
			t.Fatal(err)
		}
		if v, err := tc.GetSockOpt(SOL_IP, IP_OPTIONS); err != nil || v != "" {
			t.Fatalf("TCP %d after none: %q %v", fam, v, err)
		}
	}
	r6 := mustSocket(t, n, AF_INET6, SOCK_RAW, IPPROTO_UDP)
	if err := r6.SetSockOpt(SOL_IP, IP_OPTIONS, ""); !errors.Is(err, syscall.ENOPROTOOPT) {
		t.Fatalf("AF_INET6 raw: %v", err)
	}
}

// The control messages cost no allocation per datagram: a read with
// IP_PKTINFO, IP_RECVTTL, IP_RECVTOS and IP_RECVORIGDSTADDR on allocates
// no more than one with them off (the loopback send and the blocking
// read allocate on their own).
func TestRecvMsgControlAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts under the race detector: sync.Pool drops some of what is put back")
	}
	n, r, ra := loopReceiver(t, AF_INET)
	s := mustSocket(t, n, AF_INET, SOCK_DGRAM, 0)
	p, oob := make([]byte, 64), make([]byte, 256)
	r.SetTimeout(5 * time.Second)
	run := func(wantCtl bool) float64 {
		return testing.AllocsPerRun(50, func() {
			if _, err := s.SendTo([]byte("a"), 0, ra); err != nil {
				t.Fatal(err)
			}
			if _, oobn, _, _, err := r.RecvMsgControl(p, oob, 0); err != nil || (oobn > 0) != wantCtl {
				t.Fatalf("read: %v oobn %d", err, oobn)
			}
		})
	}
	off := run(false)
	setOpts(t, r, SOL_IP, IP_PKTINFO, IP_RECVTTL, IP_RECVTOS, IP_RECVORIGDSTADDR)
	if on := run(true); on > off {
		t.Fatalf("%.1f allocations per datagram with the options, %.1f without", on, off)
	}
}
