// Command rawping is ping written with a raw socket: the program builds
// the ICMP echo request itself (type, code, checksum, identifier,
// sequence number), and what it receives starts with the IP header, which
// it must skip using the header-length field, as the classic C ping does.
// A raw socket sees every ICMP message the host receives, so replies are
// matched by identifier.
//
// On the kernel this needs root (CAP_NET_RAW); on the virtual network it
// does not, so this example has no -kernel flag.
//
//	go run ./examples/rawping
package main

import (
	"encoding/binary"
	"fmt"
	"log"
	"time"

	"github.com/sockstack/sockstack/examples/internal/vnet"
	"github.com/sockstack/sockstack/socket"
)

const (
	icmpEchoReply   = 0
	icmpEchoRequest = 8
	ident           = 0x5eed // identifies our requests among all ICMP traffic
)

func main() {
	nw := vnet.New("target", "pinger")
	defer nw.Close()
	target, me := nw.Hosts[0], nw.Hosts[1]

	s, err := me.Net.Socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	s.SetTimeout(2 * time.Second)

	payload := []byte("sockstack raw ping, 32 bytes....")
	fmt.Printf("PING %s: %d data bytes\n", target.Addr, len(payload))
	buf := make([]byte, 1500)
	for seq := 1; seq <= 3; seq++ {
		req := echoRequest(uint16(seq), payload)
		start := time.Now()
		if _, err := s.SendTo(req, 0, socket.Inet(target.Addr, 0)); err != nil {
			log.Fatal("sendto: ", err)
		}
		for {
			n, from, err := s.RecvFrom(buf, 0)
			if err != nil {
				fmt.Printf("icmp_seq=%d: no reply (%v)\n", seq, err)
				break
			}
			pkt := buf[:n]
			if len(pkt) < 20 {
				continue // shorter than an IPv4 header: not for us
			}
			// IPv4 header: version and header length in the first byte,
			// TTL at offset 8. The ICMP message follows the header.
			ihl := int(pkt[0]&0x0f) * 4
			if ihl < 20 || len(pkt) < ihl {
				continue // a malformed header: never trust a length field
			}
			ttl := pkt[8]
			icmp := pkt[ihl:]
			if len(icmp) < 8 || icmp[0] != icmpEchoReply ||
				binary.BigEndian.Uint16(icmp[4:]) != ident {
				continue // someone else's ICMP, or not a reply
			}
			if checksum(icmp) != 0 {
				fmt.Println("bad checksum, dropped")
				continue
			}
			rtt := time.Since(start)
			fmt.Printf("%d bytes from %v: icmp_seq=%d ttl=%d time=%.3f ms\n",
				len(icmp), from.(*socket.SockaddrInet).AddrPort.Addr(), binary.BigEndian.Uint16(icmp[6:]), ttl, float64(rtt.Microseconds())/1000)
			break
		}
	}
}

// echoRequest builds an ICMP echo request: type 8, code 0, checksum,
// identifier, sequence number, then the payload.
func echoRequest(seq uint16, payload []byte) []byte {
	m := make([]byte, 8+len(payload))
	m[0] = icmpEchoRequest
	binary.BigEndian.PutUint16(m[4:], ident)
	binary.BigEndian.PutUint16(m[6:], seq)
	copy(m[8:], payload)
	binary.BigEndian.PutUint16(m[2:], checksum(m)) // computed with the field zero
	return m
}

// checksum is the Internet checksum (RFC 1071): the ones' complement of
// the ones' complement sum of 16-bit words. Over a message that already
// holds its checksum it gives 0.
func checksum(b []byte) uint16 {
	var sum uint32
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
