package conformance

import (
	"encoding/binary"

	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/wire"
)

// IP_ORIGDSTADDR / IPV6_ORIGDSTADDR on raw sockets' reads: Linux gives
// the datagram's destination and, as the port, bytes 2-3 of its
// transport header whatever the protocol (ip_cmsg_recv_dstaddr,
// ip6_datagram_recv_specific_ctl); none for a datagram too short for
// them. The datagrams are of protocol 253 (RFC 3692's experiments),
// which no stack answers; the IPv4 one is built whole by an IPPROTO_RAW
// socket, so that its identification is the same on both sides.
func recvOptsOrigDstCases() []Case {
	const proto = 253
	// proto4 is an IPv4 datagram of protocol 253 from and to 127.0.0.1
	// whose bytes 2-3 after the header are 0xabcd.
	proto4 := func(payload string) []byte {
		p := udp4WithOpts(nil, 0xabcd, 64, 0, payload)
		p[9] = proto
		p[10], p[11] = 0, 0
		binary.BigEndian.PutUint16(p[10:], wire.Checksum(p[:20]))
		return p
	}
	return []Case{
		{Name: "recvopts/origdst/raw IP_ORIGDSTADDR: bytes 2-3 of the transport header", Root: true, Run: func(t *T) {
			r := t.Socket(AF_INET, RAW, proto)
			t.Check("IP_RECVORIGDSTADDR=1", r.SetSockOpt(socket.SOL_IP, socket.IP_RECVORIGDSTADDR, 1))
			t.sendRaw4("send", proto4("xyz"))
			t.RecvCtl("recvmsg", r, 64, 256, 0)
		}},
		// ICMP: the port is the checksum, of the echo request (looped
		// to every raw ICMP socket) and of the reply. The IP headers'
		// identification, TTL and checksum differ per side: masked.
		{Name: "recvopts/origdst/raw icmp IP_ORIGDSTADDR: the ICMP checksum", Root: true, Run: func(t *T) {
			r := t.Socket(AF_INET, RAW, socket.IPPROTO_ICMP)
			t.Check("IP_RECVORIGDSTADDR=1", r.SetSockOpt(socket.SOL_IP, socket.IP_RECVORIGDSTADDR, 1))
			echo := []byte("\x08\x00\x00\x00\x12\x34\x00\x01origdst")
			binary.BigEndian.PutUint16(echo[2:], wire.Checksum(echo))
			t.Send("send echo", t.Socket(AF_INET, RAW, socket.IPPROTO_ICMP), echo, 0, socket.Inet("127.0.0.1", 0))
			t.recvCtl("recvmsg request", r, 64, 256, 0, 4, 12)
			t.recvCtl("recvmsg reply", r, 64, 256, 0, 4, 12)
		}},
		{Name: "recvopts/origdst/raw6 IPV6_ORIGDSTADDR: bytes 2-3, none for a 3-byte datagram", Root: true, Run: func(t *T) {
			r := t.Socket(AF_INET6, RAW, proto)
			t.Check("IPV6_RECVORIGDSTADDR=1", r.SetSockOpt(socket.IPPROTO_IPV6, socket.IPV6_RECVORIGDSTADDR, 1))
			w := t.Socket(AF_INET6, RAW, proto)
			t.Send("send", w, []byte("\x11\x22\xab\xcdxyz"), 0, socket.Inet6("::1", 0))
			t.RecvCtl("recvmsg", r, 64, 256, 0)
			t.Send("send 3 bytes", w, []byte("\x11\x22\xab"), 0, socket.Inet6("::1", 0))
			t.RecvCtl("recvmsg 3 bytes", r, 64, 256, 0)
		}},
	}
}
