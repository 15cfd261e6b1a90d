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
)

func ctlInt(level, typ, v int) []byte { return cmsgBytes(level, typ, int32Bytes(int32(v))) }

// rawCtl is a header claiming cmsg_len l, followed by data, unpadded.
func rawCtl(l uint64, level, typ int, data []byte) []byte {
	b := make([]byte, 16, 16+len(data))
	binary.NativeEndian.PutUint64(b, l)
	binary.NativeEndian.PutUint32(b[8:], uint32(level))
	binary.NativeEndian.PutUint32(b[12:], uint32(typ))
	return append(b, data...)
}

// udpLoop4 is a receiver on 127.0.0.1 with IP_RECVTTL and IP_RECVTOS,
// and a sender with IP_TTL 33 and IP_TOS 0x28.
func udpLoop4(t *testing.T) (s, r *Socket, ra Sockaddr) {
	n := New(stack.New(stack.Options{}))
	r = mustSocket(t, n, AF_INET, SOCK_DGRAM, 0)
	if err := r.Bind(Inet("127.0.0.1", 0)); err != nil {
		t.Fatal(err)
	}
	ra, _ = r.GetSockName()
	setOpts(t, r, SOL_IP, IP_RECVTTL, IP_RECVTOS)
	s = mustSocket(t, n, AF_INET, SOCK_DGRAM, 0)
	s.SetSockOpt(SOL_IP, IP_TTL, 33)
	s.SetSockOpt(SOL_IP, IP_TOS, 0x28)
	return s, r, ra
}

func wantTTLTOS(t *testing.T, what string, r *Socket, ttl int, tos byte) {
	t.Helper()
	_, ctl, _ := recvCtl(t, r, 256, 0)
	want := append(ctlInt(SOL_IP, IP_TTL, ttl), cmsgBytes(SOL_IP, IP_TOS, []byte{tos})...)
	if !bytes.Equal(ctl, want) {
		t.Fatalf("%s: control\n%x\nwant TTL %d TOS %#x\n%x", what, ctl, ttl, tos, want)
	}
}

// IP_TTL and IP_TOS given to sendmsg, raw or typed, replace the
// socket's for that datagram only.
func TestSendCtlTTLTOS(t *testing.T) {
	s, r, ra := udpLoop4(t)
	both := append(ctlInt(SOL_IP, IP_TTL, 7), cmsgBytes(SOL_IP, IP_TOS, []byte{0x10})...)
	if _, err := s.SendMsgControl([]byte("raw"), both, 0, ra); err != nil {
		t.Fatal(err)
	}
	wantTTLTOS(t, "raw", r, 7, 0x10)
	if _, err := s.SendMsg([]byte("typed"), 0, ra, IPTTL(200), IPTOS(0xb8)); err != nil {
		t.Fatal(err)
	}
	wantTTLTOS(t, "typed", r, 200, 0xb8)
	s.SendTo([]byte("plain"), 0, ra)
	wantTTLTOS(t, "plain", r, 33, 0x28)
	// IPv6 messages on AF_INET are passed over, IPv4 ones read.
	if _, err := s.SendMsgControl([]byte("mixed"), append(ctlInt(IPPROTO_IPV6, IPV6_HOPLIMIT, 999), ctlInt(SOL_IP, IP_TTL, 9)...), 0, ra); err != nil {
		t.Fatal(err)
	}
	wantTTLTOS(t, "mixed", r, 9, 0x28)
}

func TestSendCtlHopLimitTClass(t *testing.T) {
	n, r, ra := loopReceiver(t, AF_INET6)
	setOpts(t, r, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, IPV6_RECVTCLASS)
	s := mustSocket(t, n, AF_INET6, SOCK_DGRAM, 0)
	s.SetSockOpt(IPPROTO_IPV6, IPV6_UNICAST_HOPS, 33)
	s.SetSockOpt(IPPROTO_IPV6, IPV6_TCLASS, 0x28)
	for _, c := range []struct {
		what      string
		raw       []byte
		typed     []any
		hop, tcls int
	}{
		{"raw 9 / 0xb8", append(ctlInt(IPPROTO_IPV6, IPV6_HOPLIMIT, 9), ctlInt(IPPROTO_IPV6, IPV6_TCLASS, 0xb8)...), nil, 9, 0xb8},
		{"typed 0 / 4", nil, []any{IPv6HopLimit(0), IPv6TClass(4)}, 0, 4},
		// -1: the socket's hop limit, but class 255 (as Linux sends).
		{"typed -1 / -1", nil, []any{IPv6HopLimit(-1), IPv6TClass(-1)}, 33, 255},
		{"IP_TTL passed over", ctlInt(SOL_IP, IP_TTL, 0), nil, 33, 0x28},
		{"none", nil, nil, 33, 0x28},
	} {
		var err error
		if c.raw != nil {
			_, err = s.SendMsgControl([]byte("x"), c.raw, 0, ra)
		} else {
			_, err = s.SendMsg([]byte("x"), 0, ra, c.typed...)
		}
		if err != nil {
			t.Fatalf("%s: %v", c.what, err)
		}
		_, ctl, _ := recvCtl(t, r, 256, 0)
		want := append(ctlInt(IPPROTO_IPV6, IPV6_HOPLIMIT, c.hop), ctlInt(IPPROTO_IPV6, IPV6_TCLASS, c.tcls)...)
		if !bytes.Equal(ctl, want) {
			t.Fatalf("%s: control\n%x\nwant\n%x", c.what, ctl, want)
		}
	}
}

// A per-datagram IP_TTL applies to multicast too (Linux's ipc.ttl wins
// over IP_MULTICAST_TTL), seen on the other host.
func TestSendCtlMulticastTTL(t *testing.T) {
	p := newPair(t, 1500, stack.Options{})
	group := netip.MustParseAddr("224.1.1.1")
	rcv := mustSocket(t, p.b, AF_INET, SOCK_DGRAM, 0)
	if err := rcv.Bind(ap(netip.IPv4Unspecified(), 5007)); err != nil {
		t.Fatal(err)
	}
	if err := rcv.SetSockOpt(SOL_IP, IP_ADD_MEMBERSHIP, IPMreq{Multiaddr: group}); err != nil {
		t.Fatal(err)
	}
	setOpts(t, rcv, SOL_IP, IP_RECVTTL)
	snd := mustSocket(t, p.a, AF_INET, SOCK_DGRAM, 0)
	if _, err := snd.SendMsg([]byte("m"), 0, ap(group, 5007), IPTTL(9)); err != nil {
		t.Fatal(err)
	}
	if _, ctl, _ := recvCtl(t, rcv, 64, 0); !bytes.Equal(ctl, ctlInt(SOL_IP, IP_TTL, 9)) {
		t.Fatalf("control %x, want IP_TTL 9", ctl)
	}
	snd.SendTo([]byte("m"), 0, ap(group, 5007))
	if _, ctl, _ := recvCtl(t, rcv, 64, 0); !bytes.Equal(ctl, ctlInt(SOL_IP, IP_TTL, 1)) {
		t.Fatalf("control %x, want IP_TTL 1 (IP_MULTICAST_TTL)", ctl)
	}
}

// IPV6_DONTFRAG per datagram: EMSGSIZE instead of fragments, and 0
// over a socket that has it on.
func TestSendCtlDontFrag6(t *testing.T) {
	p := newPair6(t)
	rcv := mustSocket(t, p.b, AF_INET6, SOCK_DGRAM, 0)
	if err := rcv.Bind(Inet6("2001:db8::2", 0)); err != nil {
		t.Fatal(err)
	}
	ra, _ := rcv.GetSockName()
	snd := mustSocket(t, p.a, AF_INET6, SOCK_DGRAM, 0)
	big := make([]byte, 2000)
	if _, err := snd.SendMsg(big, 0, ra); err != nil {
		t.Fatalf("fragmented send: %v", err)
	}
	_, err := snd.SendMsgControl(big, ctlInt(IPPROTO_IPV6, IPV6_DONTFRAG, 1), 0, ra)
	errIs(t, "IPV6_DONTFRAG 1", err, syscall.EMSGSIZE)
	snd.SetSockOpt(IPPROTO_IPV6, IPV6_DONTFRAG, 1)
	_, err = snd.SendTo(big, 0, ra)
	errIs(t, "socket IPV6_DONTFRAG", err, syscall.EMSGSIZE)
	if _, err := snd.SendMsg(big, 0, ra, IPv6DontFrag(0)); err != nil {
		t.Fatalf("IPV6_DONTFRAG 0 over the socket's 1: %v", err)
	}
	_, err = snd.SendMsg(big, 0, ra, IPv6DontFrag(2))
	errIs(t, "IPV6_DONTFRAG 2", err, syscall.EINVAL)
	rcv.SetTimeout(5 * time.Second)
	buf := make([]byte, 4000)
	for i := 0; i < 2; i++ {
		if n, err := rcv.Recv(buf, 0); err != nil || n != len(big) {
			t.Fatalf("datagram %d: %d %v", i, n, err)
		}
	}
}

// Malformed buffers and refused values: Linux's errnos, nothing sent.
func TestSendCtlErrors(t *testing.T) {
	s, r, ra := udpLoop4(t)
	ttl7 := ctlInt(SOL_IP, IP_TTL, 7)
	before := CtlTooLong()
	for _, c := range []struct {
		what string
		oob  []byte
		want syscall.Errno
	}{
		{"cmsg_len 15", rawCtl(15, SOL_IP, IP_TTL, []byte{7, 0, 0, 0}), syscall.EINVAL},
		{"cmsg_len past the end", rawCtl(21, SOL_IP, IP_TTL, []byte{7, 0, 0, 0}), syscall.EINVAL},
		{"cmsg_len 2^64-1", rawCtl(^uint64(0), SOL_IP, IP_TTL, []byte{7, 0, 0, 0}), syscall.EINVAL},
		{"bad second header", append(ttl7, rawCtl(3, SOL_IP, IP_TOS, nil)...), syscall.EINVAL},
		{"IP_TTL 0", ctlInt(SOL_IP, IP_TTL, 0), syscall.EINVAL},
		{"IP_TTL 2 bytes", cmsgBytes(SOL_IP, IP_TTL, []byte{7, 0}), syscall.EINVAL},
		{"IP_TOS 256", ctlInt(SOL_IP, IP_TOS, 256), syscall.EINVAL},
		{"SOL_IP 99", ctlInt(SOL_IP, 99, 0), syscall.EINVAL},
		{"IP_PKTINFO 8 bytes", cmsgBytes(SOL_IP, IP_PKTINFO, make([]byte, 8)), syscall.EINVAL},
		{"IP_RETOPTS bad length", cmsgBytes(SOL_IP, IP_RETOPTS, []byte{7, 9, 4, 0}), syscall.EINVAL},
		{"SOL_UDP 99", ctlInt(SOL_UDP, 99, 0), syscall.EINVAL},
		{"UDP_SEGMENT as an int", ctlInt(SOL_UDP, UDP_SEGMENT, 100), syscall.EINVAL},
		{"SOL_SOCKET 99", ctlInt(SOL_SOCKET, 99, 0), syscall.EINVAL},
		{"SO_MARK 8 bytes", cmsgBytes(SOL_SOCKET, SO_MARK, make([]byte, 8)), syscall.EINVAL},
		{"SO_TIMESTAMPING RX", ctlInt(SOL_SOCKET, SO_TIMESTAMPING_OLD, 1<<3), syscall.EINVAL},
		{"SCM_TXTIME", cmsgBytes(SOL_SOCKET, SCM_TXTIME, make([]byte, 8)), syscall.EINVAL},
		{"128 KiB", make([]byte, maxControl), syscall.ENOBUFS},
	} {
		_, err := s.SendMsgControl([]byte("bad"), c.oob, 0, ra)
		errIs(t, c.what, err, c.want)
	}
	if got := CtlTooLong() - before; got != 1 {
		t.Errorf("CtlTooLong counted %d, want 1", got)
	}
	// Accepted and without effect: short buffers, unknown levels,
	// SCM_RIGHTS, SO_MARK (the process owns the stack).
	for _, oob := range [][]byte{nil, make([]byte, 15), ctlInt(200, 1, 1), ctlInt(SOL_SOCKET, SCM_RIGHTS, 0), ctlInt(SOL_SOCKET, SO_MARK, 5), ctlInt(SOL_IP, IP_PROTOCOL, 17),
		ctlInt(SOL_SOCKET, SO_TIMESTAMPING_NEW, SOF_TIMESTAMPING_TX_SOFTWARE)} {
		if _, err := s.SendMsgControl([]byte("ok"), oob, 0, ra); err != nil {
			t.Fatalf("%x: %v", oob, err)
		}
		if data, _, _ := recvCtl(t, r, 256, 0); string(data) != "ok" {
			t.Fatalf("read %q, want the accepted one (a refused one was sent)", data)
		}
	}
}

// TCP reads SOL_SOCKET only; what fails there is EINVAL.
func TestSendCtlTCP(t *testing.T) {
	n := New(stack.New(stack.Options{}))
	l := mustSocket(t, n, AF_INET, SOCK_STREAM, 0)
	l.Bind(Inet("127.0.0.1", 0))
	l.Listen(1)
	la, _ := l.GetSockName()
	c := mustSocket(t, n, AF_INET, SOCK_STREAM, 0)
	if err := c.Connect(la); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SendMsgControl([]byte("a"), ctlInt(SOL_IP, IP_TTL, 0), 0, nil); err != nil {
		t.Fatalf("IP_TTL 0 on TCP: %v", err)
	}
	// Record flags ask this send's transmit timestamps (tcptxstamp.go);
	// other bits are EINVAL.
	if n, err := c.SendMsgControl([]byte("b"), ctlInt(SOL_SOCKET, SO_TIMESTAMPING_OLD, 2), 0, nil); n != 1 || err != nil {
		t.Fatalf("SO_TIMESTAMPING TX_SOFTWARE on TCP: %d, %v", n, err)
	}
	_, err := c.SendMsgControl([]byte("b"), ctlInt(SOL_SOCKET, SO_TIMESTAMPING_OLD, SOF_TIMESTAMPING_RX_SOFTWARE), 0, nil)
	errIs(t, "SO_TIMESTAMPING RX_SOFTWARE on TCP", err, syscall.EINVAL)
	_, err = c.SendMsgControl([]byte("b"), rawCtl(8, SOL_IP, IP_TTL, nil), 0, nil)
	errIs(t, "cmsg_len 8 on TCP", err, syscall.EINVAL)
}

// Whatever the buffer, SendMsgControl answers (no panic) on UDP, raw
// and TCP sockets of both families.
func FuzzSendMsgControl(f *testing.F) {
	f.Add(ctlInt(SOL_IP, IP_TTL, 7), uint8(0))
	f.Add(append(ctlInt(IPPROTO_IPV6, IPV6_PKTINFO, 0), rawCtl(99, SOL_UDP, UDP_SEGMENT, []byte{1})...), uint8(1))
	f.Add(cmsgBytes(SOL_IP, IP_RETOPTS, []byte{7, 7, 4, 0, 0, 0, 0}), uint8(2))
	f.Add(cmsgBytes(IPPROTO_IPV6, IPV6_PKTINFO, make([]byte, 20)), uint8(3))
	n := New(stack.New(stack.Options{}))
	type sk struct {
		fam, typ, proto int
		to              Sockaddr
	}
	kinds := []sk{
		{AF_INET, SOCK_DGRAM, 0, Inet("127.0.0.1", 9)},
		{AF_INET6, SOCK_DGRAM, 0, Inet6("::1", 9)},
		{AF_INET6, SOCK_DGRAM, 0, Inet6("::ffff:127.0.0.1", 9)},
		{AF_INET, SOCK_RAW, IPPROTO_UDP, Inet("127.0.0.1", 0)},
		{AF_INET6, SOCK_RAW, IPPROTO_UDP, Inet6("::1", 0)},
		{AF_INET, SOCK_STREAM, 0, nil},
	}
	var socks []*Socket
	for _, k := range kinds {
		s, err := n.Socket(k.fam, k.typ, k.proto)
		if err != nil {
			f.Fatal(err)
		}
		s.SetBlocking(false)
		socks = append(socks, s)
	}
	f.Fuzz(func(t *testing.T, oob []byte, which uint8) {
		i := int(which) % len(kinds)
		_, err := socks[i].SendMsgControl([]byte("fuzz"), oob, MSG_DONTWAIT, kinds[i].to)
		var e syscall.Errno
		if err != nil && !errors.As(err, &e) {
			t.Fatalf("not an errno: %v", err)
		}
	})
}

// IPV6_FLOWINFO: the label goes out, the class bits do not.
func TestSendCtlFlowInfo(t *testing.T) {
	n, r, ra := loopReceiver(t, AF_INET6)
	setOpts(t, r, IPPROTO_IPV6, IPV6_FLOWINFO)
	s := mustSocket(t, n, AF_INET6, SOCK_DGRAM, 0)
	oob := cmsgBytes(IPPROTO_IPV6, IPV6_FLOWINFO, []byte{0x0b, 0xb1, 0x23, 0x45})
	if _, err := s.SendMsgControl([]byte("f"), oob, 0, ra); err != nil {
		t.Fatal(err)
	}
	if _, ctl, _ := recvCtl(t, r, 64, 0); !bytes.Equal(ctl, cmsgBytes(IPPROTO_IPV6, IPV6_FLOWINFO, []byte{0, 1, 0x23, 0x45})) {
		t.Fatalf("control %x, want flow information 0x00012345", ctl)
	}
	_, err := s.SendMsgControl([]byte("f"), cmsgBytes(IPPROTO_IPV6, IPV6_FLOWINFO, []byte{1, 2}), 0, ra)
	errIs(t, "2-byte IPV6_FLOWINFO", err, syscall.EINVAL)
}

// An unconnected socket given no address: EDESTADDRREQ before any
// control message is read, as Linux; on the IPv4 path the length and
// MSG_OOB come before that.
func TestSendCtlNoDestination(t *testing.T) {
	n := New(stack.New(stack.Options{}))
	for _, fam := range []int{AF_INET, AF_INET6} {
		s := mustSocket(t, n, fam, SOCK_DGRAM, 0)
		_, err := s.SendMsgControl([]byte("x"), rawCtl(15, SOL_IP, IP_TTL, []byte{7, 0, 0, 0}), 0, nil)
		errIs(t, "malformed, no address", err, syscall.EDESTADDRREQ)
		_, err = s.SendMsg([]byte("x"), 0, nil, IPTTL(0))
		errIs(t, "typed IP_TTL 0, no address", err, syscall.EDESTADDRREQ)
	}
	// The IPv4 path: a datagram over 64 KB, then MSG_OOB, first.
	s := mustSocket(t, n, AF_INET, SOCK_DGRAM, 0)
	to := Inet("127.0.0.1", 9)
	_, err := s.SendMsg(make([]byte, 65536), 0, to, IPTTL(0))
	errIs(t, "64 KB, IP_TTL 0", err, syscall.EMSGSIZE)
	_, err = s.SendMsg([]byte("x"), MSG_OOB, to, IPTTL(0))
	errIs(t, "MSG_OOB, IP_TTL 0", err, syscall.EOPNOTSUPP)
}

// IPv6 extension-header messages: a well-formed header is sent (as on
// Linux; inet6_ext_test.go checks what arrives), a malformed one or a
// second Hop-by-Hop header EINVAL as on Linux, and IPV6_NEXTHOP and
// IPV6_RTHDR EINVAL as on Linux without Mobile IPv6.
func TestSendCtlExtHeaders6(t *testing.T) {
	n := New(stack.New(stack.Options{}))
	s := mustSocket(t, n, AF_INET6, SOCK_DGRAM, 0)
	to := Inet6("::1", 9)
	for _, c := range []struct {
		what string
		oob  []byte
		want syscall.Errno
	}{
		{"IPV6_HOPOPTS PadN", cmsgBytes(IPPROTO_IPV6, IPV6_HOPOPTS, []byte{0, 0, 1, 4, 0, 0, 0, 0}), 0},
		{"IPV6_HOPOPTS twice", append(cmsgBytes(IPPROTO_IPV6, IPV6_HOPOPTS, make([]byte, 8)), cmsgBytes(IPPROTO_IPV6, IPV6_2292HOPOPTS, make([]byte, 8))...), syscall.EINVAL},
		{"IPV6_2292DSTOPTS after IPV6_DSTOPTS", append(cmsgBytes(IPPROTO_IPV6, IPV6_DSTOPTS, make([]byte, 8)), cmsgBytes(IPPROTO_IPV6, IPV6_2292DSTOPTS, make([]byte, 8))...), syscall.EINVAL},
		{"IPV6_DSTOPTS twice", append(cmsgBytes(IPPROTO_IPV6, IPV6_DSTOPTS, make([]byte, 8)), cmsgBytes(IPPROTO_IPV6, IPV6_DSTOPTS, make([]byte, 8))...), 0},
		{"IPV6_DSTOPTS hdrlen 1 in 8 bytes", cmsgBytes(IPPROTO_IPV6, IPV6_DSTOPTS, []byte{0, 1, 1, 4, 0, 0, 0, 0}), syscall.EINVAL},
		{"IPV6_RTHDRDSTOPTS 1 byte", cmsgBytes(IPPROTO_IPV6, IPV6_RTHDRDSTOPTS, []byte{0}), syscall.EINVAL},
		{"IPV6_NEXTHOP", cmsgBytes(IPPROTO_IPV6, IPV6_NEXTHOP, make([]byte, 28)), syscall.EINVAL},
		{"IPV6_RTHDR type 2", cmsgBytes(IPPROTO_IPV6, IPV6_RTHDR, append([]byte{0, 2, 2, 1}, make([]byte, 20)...)), syscall.EINVAL},
	} {
		_, err := s.SendMsgControl([]byte("x"), c.oob, 0, to)
		if c.want == 0 {
			if err != nil {
				t.Errorf("%s: %v, want sent", c.what, err)
			}
			continue
		}
		errIs(t, c.what, err, c.want)
	}
}

// Sockets with no control messages of their own here (AF_UNIX: no
// descriptor passing) refuse a message with EOPNOTSUPP.
func TestSendCtlUnix(t *testing.T) {
	n := New(stack.New(stack.Options{}))
	s := mustSocket(t, n, AF_UNIX, SOCK_DGRAM, 0)
	// Descriptor 0 is not a socket of this Net (unix_rights.go).
	_, err := s.SendMsgControl([]byte("x"), ctlInt(SOL_SOCKET, SCM_RIGHTS, 0), 0, nil)
	errIs(t, "SCM_RIGHTS of fd 0 on AF_UNIX", err, syscall.EBADF)
}
