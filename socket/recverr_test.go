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
	"github.com/sockstack/sockstack/waiter"
)

// waitErr waits for POLLERR on s (the port unreachable crossing the pipe).
func waitErr(t *testing.T, s *Socket) {
	t.Helper()
	e := waiter.NewEntry()
	s.Waiter().Register(e, waiter.EventErr)
	defer s.Waiter().Unregister(e)
	timer := time.NewTimer(5 * time.Second)
	defer timer.Stop()
	for s.Readiness(waiter.EventIn|waiter.EventErr)&waiter.EventErr == 0 {
		select {
		case <-e.C:
		case <-timer.C:
			t.Fatal("no POLLERR")
		}
	}
}

// A datagram to a closed port of the peer, IP_RECVERR on: recvmsg with
// MSG_ERRQUEUE returns the datagram's data, the destination as msg_name,
// MSG_ERRQUEUE, and the control message as Linux lays it out; the queue
// never blocks, even on a blocking socket.
func TestRecvErrAcrossPipe(t *testing.T) {
	p := newPair(t, 1500, stack.Options{})
	s := mustSocket(t, p.a, AF_INET, SOCK_DGRAM, 0)
	if err := s.SetSockOpt(SOL_IP, IP_RECVERR, 1); err != nil {
		t.Fatal(err)
	}
	if v, err := s.GetSockOpt(SOL_IP, IP_RECVERR); err != nil || v != 1 {
		t.Fatalf("getsockopt IP_RECVERR: %v %v", v, err)
	}
	if _, err := s.SendTo([]byte("payload"), 0, ap(addrB, 9)); err != nil {
		t.Fatal(err)
	}
	waitErr(t, s)
	buf := make([]byte, 4)
	n, rflags, from, ee, err := s.RecvErr(buf, 0)
	if err != nil {
		t.Fatal(err)
	}
	if string(buf[:n]) != "payl" || rflags != MSG_ERRQUEUE|MSG_TRUNC || from.(*SockaddrInet).AddrPort != netip.AddrPortFrom(addrB, 9) {
		t.Fatalf("%q flags %#x from %v", buf[:n], rflags, from)
	}
	want := make([]byte, 48)
	binary.NativeEndian.PutUint64(want, 48)
	binary.NativeEndian.PutUint32(want[8:], SOL_IP)
	binary.NativeEndian.PutUint32(want[12:], IP_RECVERR)
	binary.NativeEndian.PutUint32(want[16:], uint32(syscall.ECONNREFUSED))
	copy(want[20:], []byte{SO_EE_ORIGIN_ICMP, 3, 3, 0})
	binary.NativeEndian.PutUint16(want[32:], AF_INET)
	copy(want[36:], []byte{10, 0, 0, 2})
	if got := ee.Cmsg(); !bytes.Equal(got, want) {
		t.Fatalf("control message\n%x, want\n%x", got, want)
	}
	s.SetTimeout(time.Hour)
	if _, _, _, err := s.RecvMsg(buf, MSG_ERRQUEUE); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("empty queue, blocking socket: %v, want EAGAIN at once", err)
	}
}

// A queued error alone does not end a blocking receive (only POLLERR
// shows it), as in Linux: the wait ends at its timeout.
func TestRecvErrQueueDoesNotWakeReceive(t *testing.T) {
	p := newPair(t, 1500, stack.Options{})
	s := mustSocket(t, p.a, AF_INET, SOCK_DGRAM, 0)
	s.SetSockOpt(SOL_IP, IP_RECVERR, 1)
	s.SendTo([]byte("x"), 0, ap(addrB, 9))
	waitErr(t, s)
	// The pending error ends the first receive; the queued one stays.
	if _, err := s.Recv(make([]byte, 8), 0); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("first recv: %v, want ECONNREFUSED", err)
	}
	s.SetTimeout(20 * time.Millisecond)
	if _, err := s.Recv(make([]byte, 8), 0); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("recv with only a queued error: %v, want the timeout", err)
	}
	if s.ErrQueueLen() != 1 || s.Readiness(waiter.EventIn)&waiter.EventErr == 0 {
		t.Fatalf("queue %d, POLLERR %v", s.ErrQueueLen(), s.Readiness(waiter.EventIn)&waiter.EventErr != 0)
	}
}

// Options: IPV6_RECVERR is ENOPROTOOPT on AF_INET (EOPNOTSUPP to
// read); IP_MTU_DISCOVER takes 0..5; MSG_ERRQUEUE on other sockets.
func TestRecvErrOptions(t *testing.T) {
	p := newPair(t, 1500, stack.Options{})
	s := mustSocket(t, p.a, AF_INET, SOCK_DGRAM, 0)
	if err := s.SetSockOpt(IPPROTO_IPV6, IPV6_RECVERR, 1); !errors.Is(err, syscall.ENOPROTOOPT) {
		t.Fatalf("IPV6_RECVERR on AF_INET: %v", err)
	}
	if _, err := s.GetSockOpt(IPPROTO_IPV6, IPV6_RECVERR); !errors.Is(err, syscall.EOPNOTSUPP) {
		t.Fatalf("get IPV6_RECVERR on AF_INET: %v", err)
	}
	if v, _ := s.GetSockOpt(SOL_IP, IP_MTU_DISCOVER); v != IP_PMTUDISC_WANT {
		t.Fatalf("IP_MTU_DISCOVER default %v", v)
	}
	for _, v := range []int{-1, 6} {
		if err := s.SetSockOpt(SOL_IP, IP_MTU_DISCOVER, v); !errors.Is(err, syscall.EINVAL) {
			t.Fatalf("IP_MTU_DISCOVER %d: %v", v, err)
		}
	}
	r := mustSocket(t, p.a, AF_INET6, SOCK_RAW, IPPROTO_ICMPV6)
	if err := r.SetSockOpt(SOL_IP, IP_RECVERR, 1); !errors.Is(err, syscall.ENOPROTOOPT) {
		t.Fatalf("IP_RECVERR on an AF_INET6 raw socket: %v, want ENOPROTOOPT", err)
	}
	tc := mustSocket(t, p.a, AF_INET, SOCK_STREAM, 0)
	if _, _, _, err := tc.RecvMsg(make([]byte, 8), MSG_ERRQUEUE); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("TCP MSG_ERRQUEUE: %v, want EAGAIN", err)
	}
}

// IPv6: IPV6_DONTFRAG over the link MTU is EMSGSIZE with a local error
// naming the MTU and the send's port; a sockaddr_in6 control message.
func TestRecvErrIPv6LocalEMSGSIZE(t *testing.T) {
	st := stack.New(stack.Options{})
	t.Cleanup(st.Close)
	n := New(st)
	s := mustSocket(t, n, AF_INET6, SOCK_DGRAM, 0)
	s.SetSockOpt(IPPROTO_IPV6, IPV6_RECVERR, 1)
	s.SetSockOpt(IPPROTO_IPV6, IPV6_DONTFRAG, 1)
	mtu := st.NICByName("lo").MTU()
	to := InetAddr(netip.AddrPortFrom(netip.IPv6Loopback(), 4242))
	if _, err := s.SendTo(make([]byte, mtu-40-8+1), 0, to); !errors.Is(err, syscall.EMSGSIZE) {
		t.Fatalf("send over the MTU: %v, want EMSGSIZE", err)
	}
	k, rflags, from, ee, err := s.RecvErr(nil, 0)
	if err != nil || k != 0 || rflags != MSG_ERRQUEUE || from.(*SockaddrInet).AddrPort != to.AddrPort {
		t.Fatalf("%d %#x %v %v", k, rflags, from, err)
	}
	if ee.Origin != SO_EE_ORIGIN_LOCAL || ee.Errno != syscall.EMSGSIZE || ee.Info != uint32(mtu) || ee.Offender != nil {
		t.Fatalf("%+v", ee)
	}
	c := ee.Cmsg()
	if len(c) != 64 || binary.NativeEndian.Uint64(c) != 60 || binary.NativeEndian.Uint32(c[8:]) != IPPROTO_IPV6 ||
		binary.NativeEndian.Uint32(c[12:]) != IPV6_RECVERR || !bytes.Equal(c[32:], make([]byte, 32)) {
		t.Fatalf("control message %x", c)
	}
	if _, err := s.SendTo(make([]byte, mtu-48), 0, to); err != nil {
		t.Fatalf("send at the MTU: %v", err)
	}
}

// IPv6 across a pipe to the peer's link-local address: the port
// unreachable's offender and the destination carry the NIC as their
// scope, and the control message's sockaddr_in6 its index, as Linux's
// ipv6_recv_error.
func TestRecvErrIPv6LinkLocalScope(t *testing.T) {
	p := newPair6(t)
	var peerLL netip.Addr
	for _, a := range p.sb.NICByName("eth0").Addrs() {
		if a.Addr().IsLinkLocalUnicast() {
			peerLL = a.Addr()
		}
	}
	if !peerLL.IsValid() {
		t.Fatal("peer has no link-local address")
	}
	s := mustSocket(t, p.a, AF_INET6, SOCK_DGRAM, 0)
	if err := s.SetSockOpt(IPPROTO_IPV6, IPV6_RECVERR, 1); err != nil {
		t.Fatal(err)
	}
	to := Inet6(peerLL.String()+"%eth0", 9)
	if _, err := s.SendTo([]byte("ll"), 0, to); err != nil {
		t.Fatal(err)
	}
	waitErr(t, s)
	n, _, from, ee, err := s.RecvErr(make([]byte, 8), 0)
	if err != nil || n != 2 {
		t.Fatal(n, err)
	}
	if from.(*SockaddrInet).AddrPort != to.AddrPort || ee.Offender.AddrPort.Addr() != peerLL.WithZone("eth0") {
		t.Fatalf("from %v offender %v", from, ee.Offender)
	}
	if ee.Origin != SO_EE_ORIGIN_ICMP6 || ee.Type != 1 || ee.Code != 4 || ee.Errno != syscall.ECONNREFUSED {
		t.Fatalf("%+v", ee)
	}
	c := ee.Cmsg()
	if id := binary.NativeEndian.Uint32(c[16+16+24:]); id == 0 || id != uint32(p.sa.NICByName("eth0").ID()) {
		t.Fatalf("offender scope id %d, want eth0's index %d", id, p.sa.NICByName("eth0").ID())
	}
}

// A TCP connect that ends on an error (here ARP finds nobody, which
// Linux turns into a host unreachable from the SYN's own source), with
// IP_RECVERR: recvmsg(MSG_ERRQUEUE) returns the SYN's TCP header as
// payload, the destination as msg_name and the control message; then
// SO_ERROR is 0 (the read moved the pending error on) and the queue is
// empty. Before, MSG_ERRQUEUE on a TCP socket was always EAGAIN.
func TestRecvErrTCPConnect(t *testing.T) {
	p := newPair(t, 1500, stack.Options{ARPRetryTime: 5 * time.Millisecond})
	s := mustSocket(t, p.a, AF_INET, SOCK_STREAM, 0)
	if err := s.SetSockOpt(SOL_IP, IP_RECVERR, 1); err != nil {
		t.Fatal(err)
	}
	s.SetTimeout(0)
	nobody := netip.MustParseAddr("10.0.0.9")
	if err := s.Connect(ap(nobody, 80)); !errors.Is(err, syscall.EINPROGRESS) {
		t.Fatalf("connect: %v", err)
	}
	waitErr(t, s)
	if s.ErrQueueLen() != 1 {
		t.Fatalf("%d queued", s.ErrQueueLen())
	}
	buf := make([]byte, 128)
	n, rflags, from, ee, err := s.RecvErr(buf, 0)
	if err != nil {
		t.Fatal(err)
	}
	// The SYN's header: our port, port 80, flags SYN, with options.
	if n < 20 || n != int(buf[12]>>4)*4 || binary.BigEndian.Uint16(buf[2:]) != 80 || buf[13] != 0x02 {
		t.Fatalf("payload %x, want the SYN's TCP header", buf[:n])
	}
	if rflags != MSG_ERRQUEUE || from.(*SockaddrInet).AddrPort != netip.AddrPortFrom(nobody, 80) {
		t.Fatalf("flags %#x from %v", rflags, from)
	}
	if ee.Errno != syscall.EHOSTUNREACH || ee.Origin != SO_EE_ORIGIN_ICMP || ee.Type != 3 || ee.Code != 1 ||
		ee.Offender == nil || ee.Offender.AddrPort.Addr() != addrA || ee.Level != SOL_IP || ee.CmsgType != IP_RECVERR {
		t.Fatalf("extended error %+v", ee)
	}
	if v, err := s.GetSockOpt(SOL_SOCKET, SO_ERROR); err != nil || v != 0 {
		t.Fatalf("SO_ERROR after reading the queue: %v %v", v, err)
	}
	if _, _, _, err := s.RecvMsg(buf, MSG_ERRQUEUE); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("empty queue: %v", err)
	}
}
