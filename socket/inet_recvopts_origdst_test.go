package socket

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/sockstack/sockstack/stack"
)

// IP_ORIGDSTADDR / IPV6_ORIGDSTADDR on raw and ping sockets' reads, as
// Linux gives them (ip_cmsg_recv_dstaddr, ip6_datagram_recv_specific_
// ctl): the datagram's destination, and as the port bytes 2-3 of its
// transport header whatever the protocol (an ICMP checksum for ping);
// a datagram too short for them gets no message. Before, raw and ping
// reads had none.
func TestRecvOrigDstRawAndPing(t *testing.T) {
	n := New(stack.New(stack.Options{}))
	read := func(s *Socket) (data, ctl []byte) {
		t.Helper()
		buf, oob := make([]byte, 256), make([]byte, 256)
		k, oobn, _, _, err := s.RecvMsgControl(buf, oob, 0)
		if err != nil {
			t.Fatal(err)
		}
		return buf[:k], oob[:oobn]
	}
	payload := []byte("\x11\x22\xab\xcdxyz")

	r4 := mustSocket(t, n, AF_INET, SOCK_RAW, 253)
	setOpts(t, r4, SOL_IP, IP_RECVORIGDSTADDR)
	if _, err := mustSocket(t, n, AF_INET, SOCK_RAW, 253).SendTo(payload, 0, Inet("127.0.0.1", 0)); err != nil {
		t.Fatal(err)
	}
	sin := make([]byte, 16)
	binary.NativeEndian.PutUint16(sin, AF_INET)
	copy(sin[2:], "\xab\xcd\x7f\x00\x00\x01")
	if _, c := read(r4); !bytes.Equal(c, cmsgBytes(SOL_IP, IP_ORIGDSTADDR, sin)) {
		t.Fatalf("raw: control %x, want IP_ORIGDSTADDR 127.0.0.1 port 0xabcd", c)
	}

	r6 := mustSocket(t, n, AF_INET6, SOCK_RAW, 253)
	setOpts(t, r6, IPPROTO_IPV6, IPV6_RECVORIGDSTADDR)
	w6 := mustSocket(t, n, AF_INET6, SOCK_RAW, 253)
	for _, p := range [][]byte{payload, payload[:3]} {
		if _, err := w6.SendTo(p, 0, Inet6("::1", 0)); err != nil {
			t.Fatal(err)
		}
	}
	sin6 := make([]byte, 28)
	binary.NativeEndian.PutUint16(sin6, AF_INET6)
	copy(sin6[2:], "\xab\xcd")
	sin6[23] = 1
	if _, c := read(r6); !bytes.Equal(c, cmsgBytes(IPPROTO_IPV6, IPV6_ORIGDSTADDR, sin6)) {
		t.Fatalf("raw6: control %x, want IPV6_ORIGDSTADDR ::1 port 0xabcd", c)
	}
	if d, c := read(r6); len(d) != 3 || len(c) != 0 {
		t.Fatalf("raw6, 3 bytes: %x control %x, want none", d, c)
	}

	p := mustSocket(t, n, AF_INET, SOCK_DGRAM, IPPROTO_ICMP)
	setOpts(t, p, SOL_IP, IP_RECVORIGDSTADDR)
	if _, err := p.SendTo([]byte("\x08\x00\x00\x00\x00\x00\x00\x01ping"), 0, Inet("127.0.0.1", 0)); err != nil {
		t.Fatal(err)
	}
	d, c := read(p)
	if len(d) < 8 {
		t.Fatalf("ping: read %x", d)
	}
	copy(sin[2:4], d[2:4]) // the echo reply's checksum
	if !bytes.Equal(c, cmsgBytes(SOL_IP, IP_ORIGDSTADDR, sin)) {
		t.Fatalf("ping: control %x, want IP_ORIGDSTADDR 127.0.0.1 port %x", c, d[2:4])
	}
}
