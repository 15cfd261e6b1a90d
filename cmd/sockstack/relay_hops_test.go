package main

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/wire"
)

// rawICMP is a raw ICMP (ICMPv6) socket of the client stack: it sees
// the ICMP errors the relay sends the client.
func rawICMP(t *testing.T, n *socket.Net, v6 bool) *socket.Socket {
	t.Helper()
	fam, proto := socket.AF_INET, socket.IPPROTO_ICMP
	if v6 {
		fam, proto = socket.AF_INET6, socket.IPPROTO_ICMPV6
	}
	s, err := n.Socket(fam, socket.SOCK_RAW, proto)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	s.SetReadDeadline(time.Now().Add(20 * time.Second)) // a regression fails instead of hanging
	return s
}

// timeExceeded reads raw until an ICMP time exceeded comes and returns
// its source and the message (ICMP header on).
func timeExceeded(t *testing.T, raw *socket.Socket, v6 bool) (netip.Addr, []byte) {
	t.Helper()
	buf := make([]byte, 2048)
	for {
		n, from, err := raw.RecvFrom(buf, 0)
		if err != nil {
			t.Fatalf("no time exceeded: %v", err)
		}
		m := buf[:n]
		if !v6 {
			m = m[int(m[0]&0xf)*4:] // a raw IPv4 socket reads the header too
		}
		if v6 && m[0] == wire.ICMPv6TimeExceeded || !v6 && m[0] == wire.ICMPTimeExceeded {
			return from.(*socket.SockaddrInet).AddrPort.Addr().Unmap(), append([]byte(nil), m...)
		}
	}
}

func setHops(t *testing.T, s *socket.Socket, v6 bool, hops int) {
	t.Helper()
	level, opt := socket.SOL_IP, socket.IP_TTL
	if v6 {
		level, opt = socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS
	}
	if err := s.SetSockOptInt(level, opt, hops); err != nil {
		t.Fatal(err)
	}
}

// A relayed echo leaves the relay's host socket with the client's TTL
// (hop limit) less one, as through a router; one that arrived with 1 is
// not sent: the client gets a time exceeded in transit (code 0) from
// the relay's own address quoting its request, and it is counted.
// Before, every echo left with the host's default TTL.
func TestRelayEchoHops(t *testing.T) {
	for _, c := range []struct {
		name, dst, client, relay string
		request, exceeded        uint8
	}{
		{"ipv4", "198.51.100.7", "10.0.0.1", "10.0.0.2", wire.ICMPEcho, wire.ICMPTimeExceeded},
		{"ipv6", "2001:db8:77::7", "fd00::1", "fd00::2", wire.ICMPv6EchoRequest, wire.ICMPv6TimeExceeded},
	} {
		t.Run(c.name, func(t *testing.T) {
			v6 := c.request == wire.ICMPv6EchoRequest
			client, r := icmpPair(t, relayICMPOpts{maxEchoes: 8, timeout: time.Minute})
			fake := newFakePing()
			startFakeEcho(t, r, fake, v6, false)
			raw := rawICMP(t, client, v6)
			to := socket.InetAddr(netip.AddrPortFrom(netip.MustParseAddr(c.dst), 0))
			p := pinger(t, client, c.client, 7)
			setHops(t, p, v6, 9)
			if _, err := p.SendTo(echoReq(c.request, 1, "nine"), 0, to); err != nil {
				t.Fatal(err)
			}
			relayedEcho(t, fake)
			if got := fake.hops.Load(); got != 8 {
				t.Fatalf("sent with TTL %d, want 8 (the client's 9 less one)", got)
			}
			setHops(t, p, v6, 1)
			if _, err := p.SendTo(echoReq(c.request, 2, "one"), 0, to); err != nil {
				t.Fatal(err)
			}
			from, m := timeExceeded(t, raw, v6)
			q := m[8:]
			hl := 40
			if !v6 {
				hl = int(q[0]&0xf) * 4
			}
			if from != netip.MustParseAddr(c.relay) || m[1] != 0 || q[hl] != c.request || binary.BigEndian.Uint16(q[hl+6:]) != 2 || !bytes.Contains(q[hl:], []byte("one")) {
				t.Fatalf("time exceeded from %v code %d quoting %x", from, m[1], q)
			}
			st := &r.icmp.stats
			waitUntil(t, func() bool { return st.ttlEcho.Load() == 1 })
			if st.requests.Load() != 1 || st.sent.Load() != 1 || len(fake.sent) != 0 {
				t.Fatalf("counters %s; %d more sent", r.icmp, len(fake.sent))
			}
		})
	}
}

// A relayed UDP datagram leaves the flow's kernel socket with the
// client's TTL less one (the destination, a loopback socket here, reads
// it with IP_RECVTTL); one that arrived with TTL 1 opens no flow: the
// client gets a time exceeded from the relay's address quoting it.
func TestRelayUDPHops(t *testing.T) {
	client, r := icmpPair(t, relayICMPOpts{maxEchoes: 1, timeout: time.Second})
	dst, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	rc, _ := dst.SyscallConn()
	rc.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_RECVTTL, 1) })
	var dials atomic.Int32
	r.dialUDP = func(orig netip.AddrPort) (net.Conn, error) {
		dials.Add(1)
		return net.DialUDP("udp4", nil, dst.LocalAddr().(*net.UDPAddr))
	}
	startRelayUDP(t, r)
	raw := rawICMP(t, client, false)

	s, err := client.Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// TTL 1: time exceeded, no flow.
	setHops(t, s, false, 1)
	if _, err := s.SendTo([]byte("probe"), 0, socket.InetAddr(netip.MustParseAddrPort("198.51.100.7:33434"))); err != nil {
		t.Fatal(err)
	}
	from, m := timeExceeded(t, raw, false)
	q := m[8:]
	if from != netip.MustParseAddr("10.0.0.2") || m[1] != 0 || binary.BigEndian.Uint16(q[22:]) != 33434 || string(q[28:]) != "probe" {
		t.Fatalf("time exceeded from %v code %d quoting %x", from, m[1], q)
	}
	// TTL 9, then 20: the destination reads 8, then 19.
	for _, hops := range []int{9, 20} {
		setHops(t, s, false, hops)
		if _, err := s.SendTo([]byte("data"), 0, socket.InetAddr(netip.MustParseAddrPort("198.51.100.7:53"))); err != nil {
			t.Fatal(err)
		}
		dst.SetReadDeadline(time.Now().Add(20 * time.Second))
		b, oob := make([]byte, 64), make([]byte, 64)
		_, oobn, _, _, err := dst.ReadMsgUDP(b, oob)
		if err != nil {
			t.Fatal(err)
		}
		cms, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil || len(cms) != 1 || cms[0].Header.Type != unix.IP_TTL {
			t.Fatalf("no IP_TTL: %v %v", cms, err)
		}
		if got := int(cms[0].Data[0]); got != hops-1 {
			t.Fatalf("the destination read TTL %d, want %d (the client's %d less one)", got, hops-1, hops)
		}
	}
	st := &r.icmp.stats
	waitUntil(t, func() bool { return r.stats.dgramOut.Load() == 2 }) // counted once sent
	if dials.Load() != 1 || st.ttlUDP.Load() != 1 {
		t.Fatalf("dials %d (want 1: the TTL-1 datagram opens no flow), ttl-exceeded udp %d", dials.Load(), st.ttlUDP.Load())
	}
}
