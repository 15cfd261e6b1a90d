package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/wire"
)

// The ICMP flags' errors name the problem.
func TestRelayICMPFlagErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--max-echoes", "0"}, "--max-echoes 0: want 1 to 65535"},
		{[]string{"--max-echoes", "70000"}, "--max-echoes 70000: want 1 to 65535"},
		{[]string{"--echo-timeout", "0s"}, "--echo-timeout 0s: want a positive duration"},
		{[]string{"--echo-socket", "magic"}, `--echo-socket "magic": want auto, ping or raw`},
	} {
		_, err := runCLI(t, "", append([]string{"relay", "--tun", "tun0", "--addr", "10.0.0.2/24"}, c.args...)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want %q", c.args, err, c.want)
		}
	}
}

// fakePing stands for the host's ping socket: the echoes the relay sends
// arrive on sent; what the test puts on in is read as the answers.
type fakePing struct {
	hops atomic.Int32 // the last echo's TTL
	sent chan []byte
	to   chan netip.Addr
	in   chan fakeMsg
	once sync.Once
	done chan struct{}
}

type fakeMsg struct {
	b    []byte
	from netip.Addr
}

func newFakePing() *fakePing {
	return &fakePing{sent: make(chan []byte, 16), to: make(chan netip.Addr, 16), in: make(chan fakeMsg), done: make(chan struct{})}
}

func (f *fakePing) ReadFrom(b []byte) (int, net.Addr, error) {
	select {
	case m := <-f.in:
		return copy(b, m.b), &net.UDPAddr{IP: m.from.AsSlice()}, nil
	case <-f.done:
		return 0, nil, net.ErrClosed
	}
}

func (f *fakePing) WriteTo(b []byte, a net.Addr) (int, error) {
	f.sent <- append([]byte(nil), b...)
	f.to <- addrOf(a)
	return len(b), nil
}

// WriteToHops is WriteTo, keeping the TTL the relay gave the echo (0:
// the socket's default).
func (f *fakePing) WriteToHops(b []byte, a net.Addr, hops int) (int, error) {
	f.hops.Store(int32(hops))
	return f.WriteTo(b, a)
}

func (f *fakePing) Close() error                     { f.once.Do(func() { close(f.done) }); return nil }
func (f *fakePing) LocalAddr() net.Addr              { return &net.UDPAddr{} }
func (f *fakePing) SetDeadline(time.Time) error      { return nil }
func (f *fakePing) SetReadDeadline(time.Time) error  { return nil }
func (f *fakePing) SetWriteDeadline(time.Time) error { return nil }

// icmpPair is a client stack (10.0.0.1 and 10.0.0.3) routing
// 198.51.100.0/24 over a pipe to the relay's stack (10.0.0.2), where an
// echo rule and a UDP rule divert to the relay.
func icmpPair(t *testing.T, o relayICMPOpts) (client *socket.Net, r *relay) {
	ea, eb := link.NewPipe(wire.MAC{2, 0, 0, 0, 0, 1}, wire.MAC{2, 0, 0, 0, 0, 2}, 1500)
	cs, rs := stack.New(stack.Options{DADTransmits: -1}), stack.New(stack.Options{DADTransmits: -1})
	t.Cleanup(cs.Close)
	t.Cleanup(rs.Close)
	cn := cs.AddNIC("eth0", ea)
	for _, a := range []string{"10.0.0.1/24", "10.0.0.3/24", "fd00::1/64", "fd00::3/64"} {
		if err := cn.AddAddress(netip.MustParsePrefix(a)); err != nil {
			t.Fatal(err)
		}
	}
	rn := rs.AddNIC("eth0", eb)
	for _, a := range []string{"10.0.0.2/24", "fd00::2/64"} {
		if err := rn.AddAddress(netip.MustParsePrefix(a)); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct{ pf, gw string }{{"198.51.100.0/24", "10.0.0.2"}, {"2001:db8:77::/48", "fd00::2"}} {
		pf := netip.MustParsePrefix(c.pf)
		cs.AddRoute(stack.Route{Prefix: pf, Gateway: netip.MustParseAddr(c.gw), NIC: cn})
		if err := rs.AddTransparentRule(stack.TransparentRule{Proto: stack.TransparentUDP | stack.TransparentICMPEcho, Dst: pf, ToPort: relayPort}); err != nil {
			t.Fatal(err)
		}
	}
	r = newTestRelay(t)
	r.n = socket.New(rs)
	r.own = []netip.Addr{netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("fd00::2")}
	r.icmp = newRelayICMP(rs, rn, o)
	t.Cleanup(func() {
		r.mu.Lock()
		r.closed = true
		for _, fl := range r.flows {
			fl.close()
		}
		r.mu.Unlock()
		r.icmp.Close()
		r.wg.Wait()
	})
	return socket.New(cs), r
}

// startFakeEcho runs the relay's echo loops of a family with fake as
// the host socket.
// (raw: as a raw one, whose echoes carry the identifier 0x4242).
func startFakeEcho(t *testing.T, r *relay, fake *fakePing, v6, raw bool) {
	t.Helper()
	ic := r.icmp
	in, err := stackEchoSocket(r.n, v6)
	if err != nil {
		t.Fatal(err)
	}
	f := &echoFamily{v6: v6, in: in, out: fake, raw: raw}
	if raw {
		f.id = 0x4242
	}
	ic.fams = append(ic.fams, f)
	r.wg.Add(2)
	go ic.requests(r, f)
	go ic.replies(r, f)
}

// pinger is a client ping socket bound to addr with echo identifier id.
func pinger(t *testing.T, n *socket.Net, addr string, id uint16) *socket.Socket {
	t.Helper()
	fam, proto := socket.AF_INET, socket.IPPROTO_ICMP
	if strings.Contains(addr, ":") {
		fam, proto = socket.AF_INET6, socket.IPPROTO_ICMPV6
	}
	s, err := n.Socket(fam, socket.SOCK_DGRAM, proto)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Bind(socket.InetAddr(netip.AddrPortFrom(netip.MustParseAddr(addr), id))); err != nil {
		t.Fatal(err)
	}
	s.SetReadDeadline(time.Now().Add(20 * time.Second)) // a regression fails instead of hanging
	return s
}

func echoReq(typ uint8, seq uint16, data string) []byte {
	m := make([]byte, 8+len(data))
	m[0] = typ
	binary.BigEndian.PutUint16(m[6:8], seq)
	copy(m[8:], data)
	return m
}

// Two clients pinging one destination with the same identifier and
// sequence number: the relay's echoes carry different sequence numbers,
// and each client gets its own reply (its identifier, sequence number
// and data) from the destination. A reply nobody waits for is stray;
// beyond --max-echoes a request is dropped; all counted.
func TestRelayEchoClientsDoNotCollide(t *testing.T) {
	for _, c := range []struct {
		name            string
		dst, a, b       string
		request, answer uint8
	}{
		{"ipv4", "198.51.100.7", "10.0.0.1", "10.0.0.3", wire.ICMPEcho, wire.ICMPEchoReply},
		{"ipv6", "2001:db8:77::7", "fd00::1", "fd00::3", wire.ICMPv6EchoRequest, wire.ICMPv6EchoReply},
	} {
		t.Run(c.name, func(t *testing.T) {
			client, r := icmpPair(t, relayICMPOpts{maxEchoes: 2, timeout: time.Minute})
			fake := newFakePing()
			startFakeEcho(t, r, fake, c.request == wire.ICMPv6EchoRequest, false)
			dst := netip.MustParseAddr(c.dst)
			to := socket.InetAddr(netip.AddrPortFrom(dst, 0))
			a, b := pinger(t, client, c.a, 7), pinger(t, client, c.b, 7)
			clients := []struct {
				s    *socket.Socket
				data string
			}{{a, "from A"}, {b, "from B"}}
			var seqs [2]uint16
			for i, cl := range clients {
				if _, err := cl.s.SendTo(echoReq(c.request, 1, cl.data), 0, to); err != nil {
					t.Fatal(err)
				}
				m := <-fake.sent
				if got := <-fake.to; got != dst || m[0] != c.request || string(m[8:]) != cl.data {
					t.Fatalf("relayed %x to %v", m, got)
				}
				seqs[i] = binary.BigEndian.Uint16(m[6:8])
			}
			if seqs[0] == seqs[1] {
				t.Fatalf("both echoes went out with sequence number %d", seqs[0])
			}
			// The limit: two are outstanding.
			if _, err := a.SendTo(echoReq(c.request, 2, "third"), 0, to); err != nil {
				t.Fatal(err)
			}
			st := &r.icmp.stats
			waitUntil(t, func() bool { return st.overLimit.Load()+st.sent.Load() == 3 }) // taken or refused
			// Answers in the other order, and one nobody asked for.
			straySeq := seqs[0] + 1
			for straySeq == seqs[0] || straySeq == seqs[1] {
				straySeq++
			}
			fake.in <- fakeMsg{echoReq(c.answer, straySeq, "?"), dst}
			for i := 1; i >= 0; i-- {
				fake.in <- fakeMsg{echoReq(c.answer, seqs[i], clients[i].data), dst}
			}
			for _, cl := range clients {
				buf := make([]byte, 64)
				n, from, err := cl.s.RecvFrom(buf, 0)
				if err != nil {
					t.Fatalf("%s: no reply: %v", cl.data, err)
				}
				m := wire.ICMPv4(buf[:n])
				if from.(*socket.SockaddrInet).AddrPort.Addr() != dst || m.Type() != c.answer || m.ID() != 7 || m.Seq() != 1 || string(m.Payload()) != cl.data {
					t.Fatalf("%s: reply from %v type %d id %d seq %d %q", cl.data, from, m.Type(), m.ID(), m.Seq(), m.Payload())
				}
			}
			waitUntil(t, func() bool { return st.replies.Load() == 2 }) // counted once sent
			if st.requests.Load() != 3 || st.sent.Load() != 2 || st.replies.Load() != 2 || st.overLimit.Load() != 1 || st.dropped.Load() != 1 || st.stray.Load() != 1 {
				t.Fatalf("counters: %s", r.icmp)
			}
			if len(fake.sent) != 0 {
				t.Fatal("the echo beyond the limit was sent")
			}
		})
	}
}

// A UDP flow whose kernel socket is refused (a closed loopback port
// stands for the destination's) makes the client's connected socket
// fail with ECONNREFUSED on its next recv, as through a real path; with
// --no-icmp it learns nothing.
func TestRelayUDPRefusedReachesClient(t *testing.T) {
	for _, off := range []bool{false, true} {
		client, r := icmpPair(t, relayICMPOpts{off: off, maxEchoes: 1, timeout: time.Second})
		closed, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		port := closed.LocalAddr().(*net.UDPAddr).Port
		closed.Close()
		r.dialUDP = func(orig netip.AddrPort) (net.Conn, error) {
			return net.DialUDP("udp", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
		}
		startRelayUDP(t, r)

		s, err := client.Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := s.Connect(socket.InetAddr(netip.MustParseAddrPort("198.51.100.7:53"))); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Send([]byte("query"), 0); err != nil {
			t.Fatal(err)
		}
		if off {
			// Nothing comes: the relay's counters are waited for instead.
			waitUntil(t, func() bool { return r.stats.dgramOut.Load() == 1 })
			s.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			if _, err := s.Recv(make([]byte, 16), 0); errors.Is(err, syscall.ECONNREFUSED) {
				t.Fatal("--no-icmp: the client was told")
			}
			if r.icmp.stats.unreachSent.Load() != 0 {
				t.Fatal("--no-icmp: counted")
			}
			continue
		}
		s.SetReadDeadline(time.Now().Add(20 * time.Second))
		if _, err := s.Recv(make([]byte, 16), 0); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("recv: %v, want ECONNREFUSED", err)
		}
		// Counted once the stack has sent it, which may be after the client got it.
		waitUntil(t, func() bool { return r.icmp.stats.unreachSent.Load() == 1 })
	}
}

// startRelayUDP runs the relay's loop on a transparent UDP socket on
// port 1 of its stack (the tests' rules divert there) until the test ends.
func startRelayUDP(t *testing.T, r *relay) {
	t.Helper()
	u, us, err := listenRelayUDP(r.n, "udp4", "0.0.0.0:1")
	if err != nil {
		t.Fatal(err)
	}
	r.wg.Add(1)
	go r.udpLoop(us)
	t.Cleanup(func() { u.Close() })
}

// waitUntil polls cond (a counter another goroutine sets) for at most 20s.
func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(time.Millisecond)
	}
}

// unreachErrno picks the errors a client learns of by ICMP.
func TestRelayUnreachErrno(t *testing.T) {
	for err, want := range map[error]syscall.Errno{
		&net.OpError{Op: "read", Err: syscall.ECONNREFUSED}:  syscall.ECONNREFUSED,
		&net.OpError{Op: "write", Err: syscall.EHOSTUNREACH}: syscall.EHOSTUNREACH,
		syscall.ENETUNREACH: syscall.ENETUNREACH,
		syscall.EAGAIN:      0,
		net.ErrClosed:       0,
	} {
		if got := unreachErrno(err); got != want {
			t.Errorf("%v: %v, want %v", err, got, want)
		}
	}
	if icmpChecksum([]byte{8, 0, 0, 0, 0, 1, 0, 1}) != ^uint16(0x0802) {
		t.Error("checksum")
	}
}

// A flow whose kernel socket cannot even connect (no route) makes the
// relay's stack send the client an ICMP host or network unreachable,
// which the client's connected socket with IP_RECVERR reports as that
// errno (without it these soft errors are not reported, as on Linux,
// which interop/relay_icmp_test.go checks).
func TestRelayUDPNoRouteReachesClient(t *testing.T) {
	for _, e := range []syscall.Errno{syscall.EHOSTUNREACH, syscall.ENETUNREACH} {
		client, r := icmpPair(t, relayICMPOpts{maxEchoes: 1, timeout: time.Second})
		r.dialUDP = func(orig netip.AddrPort) (net.Conn, error) {
			return nil, &net.OpError{Op: "dial", Net: "udp", Err: e}
		}
		startRelayUDP(t, r)
		s, err := client.Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		// Host and network unreachable are soft errors for UDP: a socket
		// hears them only with IP_RECVERR, as on Linux.
		if err := s.SetSockOptInt(socket.SOL_IP, socket.IP_RECVERR, 1); err != nil {
			t.Fatal(err)
		}
		if err := s.Connect(socket.InetAddr(netip.MustParseAddrPort("198.51.100.98:53"))); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Send([]byte("query"), 0); err != nil {
			t.Fatal(err)
		}
		s.SetReadDeadline(time.Now().Add(20 * time.Second))
		if _, err := s.Recv(make([]byte, 16), 0); !errors.Is(err, e) {
			t.Fatalf("recv: %v, want %v", err, e)
		}
		waitUntil(t, func() bool { return r.icmp.stats.unreachSent.Load() == 1 })
	}
}

// A router's host unreachable about a relayed echo, as a raw host socket
// reads it (quoting the relay's echo: its identifier and sequence
// number), reaches the client's ping socket as EHOSTUNREACH; one about
// another program's echo is ignored.
func TestRelayEchoErrorReachesClient(t *testing.T) {
	client, r := icmpPair(t, relayICMPOpts{maxEchoes: 4, timeout: time.Minute})
	fake := newFakePing()
	startFakeEcho(t, r, fake, false, true)
	dst := netip.MustParseAddr("198.51.100.7")
	a := pinger(t, client, "10.0.0.1", 7)
	// Host unreachable is a soft error: a ping socket hears it only with
	// IP_RECVERR, as on Linux.
	if err := a.SetSockOptInt(socket.SOL_IP, socket.IP_RECVERR, 1); err != nil {
		t.Fatal(err)
	}
	if err := a.Connect(socket.InetAddr(netip.AddrPortFrom(dst, 0))); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Send(echoReq(wire.ICMPEcho, 1, "x"), 0); err != nil {
		t.Fatal(err)
	}
	sent := <-fake.sent
	<-fake.to
	if binary.BigEndian.Uint16(sent[4:6]) != 0x4242 {
		t.Fatalf("raw echo's identifier %x", sent[4:6])
	}
	unreach := func(echo []byte) []byte {
		m := make([]byte, 8+20+8)
		m[0], m[1] = 3, 1
		ip := wire.IPv4(m[8:])
		ip[0] = 0x45
		ip.SetTotalLen(28)
		ip.SetProtocol(wire.ProtoICMP)
		ip.SetSrc(netip.MustParseAddr("192.0.2.1"))
		ip.SetDst(dst)
		copy(m[28:], echo[:8])
		return m
	}
	other := append([]byte(nil), sent...)
	other[4] ^= 0xff // another identifier
	router := netip.MustParseAddr("203.0.113.1")
	fake.in <- fakeMsg{unreach(other), router}
	fake.in <- fakeMsg{unreach(sent), router}
	if _, _, err := a.RecvFrom(make([]byte, 64), 0); !errors.Is(err, syscall.EHOSTUNREACH) {
		t.Fatalf("client: %v, want EHOSTUNREACH", err)
	}
	st := &r.icmp.stats
	waitUntil(t, func() bool { return st.errorsIn.Load() == 1 })
	if st.stray.Load() != 0 || st.replies.Load() != 0 {
		t.Fatalf("counters: %s", r.icmp)
	}
	r.icmp.mu.Lock()
	n := len(r.icmp.pending)
	r.icmp.mu.Unlock()
	if n != 0 {
		t.Fatal("the failed echo is still outstanding")
	}
}

// The host's echo socket gets the loop guard (--mark) as the relay's
// other upstream sockets do; a ping socket that ping_group_range does
// not allow is refused with the sysctl named.
func TestRelayEchoSocketGuard(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("raw sockets and SO_MARK need root (CAP_NET_RAW, CAP_NET_ADMIN): run as root")
	}
	c, raw, how, err := openEchoConn(false, "raw", relayOpts{mark: 7})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !raw || how != "a raw ICMP socket" {
		t.Fatalf("raw %v, %q", raw, how)
	}
	rc, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var mark int
	var gerr error
	rc.Control(func(fd uintptr) { mark, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK) })
	if gerr != nil || mark != 7 {
		t.Fatalf("SO_MARK %d, %v", mark, gerr)
	}
	b, err := os.ReadFile("/proc/sys/net/ipv4/ping_group_range")
	if err != nil {
		t.Skip("no ping_group_range")
	}
	var lo, hi int
	fmt.Sscan(string(b), &lo, &hi)
	if gid := os.Getegid(); gid >= lo && gid <= hi {
		return // ping sockets allowed here: nothing to refuse
	}
	if _, _, _, err := openEchoConn(false, "ping", relayOpts{}); err == nil || !strings.Contains(err.Error(), "net.ipv4.ping_group_range must include group") {
		t.Fatalf("ping socket refused: %v", err)
	}
}
