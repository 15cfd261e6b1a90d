// Command sniffer captures every frame of a host with an AF_PACKET socket
// (what tcpdump uses) and decodes it by hand: the Ethernet header, then
// ARP or IPv4, then TCP or UDP, reading each field at its offset in
// network byte order. To have something to see, the sniffing host makes
// a UDP exchange and a short TCP connection with another host.
//
// On the kernel an AF_PACKET socket needs CAP_NET_RAW; on the virtual
// network it does not, so this example has no -kernel flag.
//
//	go run ./examples/sniffer
package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log"
	"net/netip"
	"strings"
	"syscall"
	"time"

	"github.com/sockstack/sockstack/examples/internal/vnet"
	"github.com/sockstack/sockstack/socket"
)

func main() {
	nw := vnet.New("server", "sniffer")
	defer nw.Close()
	srv, me := nw.Hosts[0], nw.Hosts[1]

	// ETH_P_ALL: every protocol. The protocol argument is in network byte
	// order, as in C: socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL)).
	ps, err := me.Net.Socket(socket.AF_PACKET, socket.SOCK_RAW, socket.Htons(socket.ETH_P_ALL))
	if err != nil {
		log.Fatal(err)
	}
	defer ps.Close()

	traffic(srv, me)

	// Read what was captured; a quiet 300 ms means the traffic is over.
	ps.SetTimeout(300 * time.Millisecond)
	buf := make([]byte, 65536)
	count := 0
	for {
		n, from, err := ps.RecvFrom(buf, 0)
		if errors.Is(err, syscall.EAGAIN) {
			break
		} else if err != nil {
			log.Fatal(err)
		}
		dir := "in "
		if from.(*socket.SockaddrPacket).PktType == socket.PACKET_OUTGOING {
			dir = "out"
		}
		count++
		fmt.Printf("%s %s\n", dir, decode(buf[:n]))
	}
	fmt.Printf("%d frames captured\n", count)
}

// decode describes an Ethernet frame in one line.
func decode(f []byte) string {
	if len(f) < 14 {
		return "truncated Ethernet frame"
	}
	dst, src := mac(f[0:6]), mac(f[6:12])
	etherType := binary.BigEndian.Uint16(f[12:14])
	p := f[14:]
	eth := fmt.Sprintf("%s > %s", src, dst)
	switch etherType {
	case 0x0806:
		return eth + " " + decodeARP(p)
	case 0x0800:
		return eth + " " + decodeIPv4(p)
	}
	return fmt.Sprintf("%s ethertype %#04x", eth, etherType)
}

func decodeARP(p []byte) string {
	if len(p) < 28 {
		return "ARP truncated"
	}
	op := binary.BigEndian.Uint16(p[6:8])
	sender, target := addr4(p[14:18]), addr4(p[24:28])
	if op == 1 {
		return fmt.Sprintf("ARP who-has %v tell %v", target, sender)
	}
	return fmt.Sprintf("ARP reply %v is-at %s", sender, mac(p[8:14]))
}

func decodeIPv4(p []byte) string {
	if len(p) < 20 || p[0]>>4 != 4 {
		return "IPv4 malformed"
	}
	ihl := int(p[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(p[2:4]))
	if ihl < 20 || total < ihl || total > len(p) {
		return "IPv4 bad length"
	}
	ttl, proto := p[8], p[9]
	src, dst := addr4(p[12:16]), addr4(p[16:20])
	l4 := p[ihl:total]
	switch proto {
	case 6:
		if len(l4) < 20 {
			return "TCP truncated"
		}
		off := int(l4[12]>>4) * 4
		if off < 20 || off > len(l4) {
			return "TCP bad offset"
		}
		return fmt.Sprintf("IP %v:%d > %v:%d TCP [%s] seq %d ack %d len %d ttl %d",
			src, binary.BigEndian.Uint16(l4[0:2]), dst, binary.BigEndian.Uint16(l4[2:4]),
			tcpFlags(l4[13]), binary.BigEndian.Uint32(l4[4:8]), binary.BigEndian.Uint32(l4[8:12]),
			len(l4)-off, ttl)
	case 17:
		if len(l4) < 8 {
			return "UDP truncated"
		}
		return fmt.Sprintf("IP %v:%d > %v:%d UDP len %d ttl %d %q",
			src, binary.BigEndian.Uint16(l4[0:2]), dst, binary.BigEndian.Uint16(l4[2:4]),
			binary.BigEndian.Uint16(l4[4:6])-8, ttl, l4[8:])
	case 1:
		return fmt.Sprintf("IP %v > %v ICMP type %d", src, dst, l4[0])
	}
	return fmt.Sprintf("IP %v > %v proto %d", src, dst, proto)
}

// tcpFlags spells the flags as tcpdump does: S(YN) F(IN) R(ST) P(USH) and . for ACK.
func tcpFlags(b byte) string {
	var s strings.Builder
	for _, f := range []struct {
		bit  byte
		name string
	}{{0x02, "S"}, {0x01, "F"}, {0x04, "R"}, {0x08, "P"}, {0x10, "."}} {
		if b&f.bit != 0 {
			s.WriteString(f.name)
		}
	}
	return s.String()
}

func mac(b []byte) string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3], b[4], b[5])
}

func addr4(b []byte) netip.Addr { return netip.AddrFrom4([4]byte(b)) }

// traffic makes one UDP datagram (answered) and one TCP connection.
func traffic(srv, me vnet.Host) {
	u, _ := srv.Net.Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
	defer u.Close()
	u.Bind(socket.Inet("0.0.0.0", 20011))
	c, _ := me.Net.Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
	defer c.Close()
	c.SendTo([]byte("hi"), 0, socket.Inet(srv.Addr, 20011))
	buf := make([]byte, 100)
	n, from, err := u.RecvFrom(buf, 0)
	if err != nil {
		log.Fatal(err)
	}
	u.SendTo(buf[:n], 0, from)
	c.Recv(buf, 0)

	ls, _ := srv.Net.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	defer ls.Close()
	ls.Bind(socket.Inet("0.0.0.0", 20012))
	ls.Listen(1)
	t, _ := me.Net.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	if err := t.Connect(socket.Inet(srv.Addr, 20012)); err != nil {
		log.Fatal(err)
	}
	a, _, err := ls.Accept()
	if err != nil {
		log.Fatal(err)
	}
	t.SendAll([]byte("hello"), 0)
	a.Recv(buf, 0)
	// The server closes first, then the client: FIN one way, FIN the other.
	a.Close()
	t.Recv(buf, 0) // 0: the server's FIN arrived
	t.Close()
}
