// Command router joins two networks with a third host that forwards
// between them, and shows what a router does to the packets that cross
// it, over IPv4 and IPv6 alike:
//
//	client 10.0.1.2, fd00:1::2  ──  router  ──  server 10.0.2.2, fd00:2::2
//	            (10.0.1.1, fd00:1::1)  (10.0.2.1, fd00:2::1)
//
// First traceroute, written as the classic program is: UDP datagrams to a
// port nobody listens on, sent with a time to live (hop limit) of 1, 2,
// ...; each hop that drops one because its TTL ran out answers with ICMP
// "time exceeded", and the destination with "port unreachable". A raw
// ICMP socket reads those answers; the quoted header inside each tells
// which probe it answers. Then a TCP echo crosses the router, and the
// router's counters show what it forwarded.
//
// Raw sockets need root on the kernel, so this runs on the virtual
// network only.
//
//	go run ./examples/router
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"log"
	"net/netip"
	"time"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/wire"
)

const probePort = 33434 // traceroute's first port: nobody listens there

func main() {
	flag.Parse() // no flags: -kernel is refused, as raw sockets need root there
	client, router, server := build()
	defer client.Close()
	defer router.Close()
	defer server.Close()
	cn, sn := socket.New(client), socket.New(server)

	for _, target := range []string{"10.0.2.2", "fd00:2::2"} {
		traceroute(cn, target)
	}
	for _, target := range []string{"10.0.2.2", "fd00:2::2"} {
		echo(cn, sn, target)
	}
	st := router.Stats()
	fmt.Printf("router: forwarded %d IPv4 and %d IPv6 packets; TTL ran out for %d IPv4 and %d IPv6 probes\n",
		st.IP.ForwDatagrams.Load(), st.IP6.ForwDatagrams.Load(), st.IP.TTLExceeded.Load(), st.IP6.InHopLimitExceeded.Load())
}

// build makes the three hosts and the two links between them.
func build() (client, router, server *stack.Stack) {
	// No duplicate address detection: the addresses are fixed and unique.
	client = stack.New(stack.Options{Name: "client", DADTransmits: -1})
	router = stack.New(stack.Options{Name: "router", DADTransmits: -1, Forwarding: true})
	server = stack.New(stack.Options{Name: "server", DADTransmits: -1})
	c0, r0 := link.NewPipe(wire.MAC{2, 0, 0, 0, 1, 2}, wire.MAC{2, 0, 0, 0, 1, 1}, 1500)
	r1, s0 := link.NewPipe(wire.MAC{2, 0, 0, 0, 2, 1}, wire.MAC{2, 0, 0, 0, 2, 2}, 1500)
	cnic, snic := client.AddNIC("eth0", c0), server.AddNIC("eth0", s0)
	rnic0, rnic1 := router.AddNIC("eth0", r0), router.AddNIC("eth1", r1)
	addr(cnic, "10.0.1.2/24", "fd00:1::2/64")
	addr(rnic0, "10.0.1.1/24", "fd00:1::1/64")
	addr(rnic1, "10.0.2.1/24", "fd00:2::1/64")
	addr(snic, "10.0.2.2/24", "fd00:2::2/64")
	// The ends know one way out: their default route through the
	// router. The router needs no route: both networks are its own.
	via(client, cnic, "0.0.0.0/0", "10.0.1.1")
	via(client, cnic, "::/0", "fd00:1::1")
	via(server, snic, "0.0.0.0/0", "10.0.2.1")
	via(server, snic, "::/0", "fd00:2::1")
	return client, router, server
}

func addr(n *stack.NIC, prefixes ...string) {
	for _, p := range prefixes {
		if err := n.AddAddress(netip.MustParsePrefix(p)); err != nil {
			log.Fatal(err)
		}
	}
}

func via(s *stack.Stack, n *stack.NIC, to, gw string) {
	s.AddRoute(stack.Route{Prefix: netip.MustParsePrefix(to), Gateway: netip.MustParseAddr(gw), NIC: n})
}

// traceroute sends one UDP probe per TTL and prints who answered.
func traceroute(n *socket.Net, target string) {
	dst := netip.MustParseAddr(target)
	v6 := dst.Is6()
	family, icmpProto, ttlLevel, ttlOpt := socket.AF_INET, socket.IPPROTO_ICMP, socket.IPPROTO_IP, socket.IP_TTL
	if v6 {
		family, icmpProto, ttlLevel, ttlOpt = socket.AF_INET6, socket.IPPROTO_ICMPV6, socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS
	}
	probe := must(n.Socket(family, socket.SOCK_DGRAM, 0))
	defer probe.Close()
	icmp := must(n.Socket(family, socket.SOCK_RAW, icmpProto))
	defer icmp.Close()
	icmp.SetTimeout(time.Second)
	fmt.Printf("traceroute to %s, 30 hops max\n", target)
	buf := make([]byte, 1500)
	for ttl := 1; ttl <= 30; ttl++ {
		if err := probe.SetSockOpt(ttlLevel, ttlOpt, ttl); err != nil {
			log.Fatal(err)
		}
		port := probePort + ttl // the port tells the answers apart
		to := socket.Inet(target, port)
		if v6 {
			to = socket.Inet6(target, port)
		}
		if _, err := probe.SendTo([]byte("probe"), 0, to); err != nil {
			log.Fatal("sendto: ", err)
		}
		for {
			k, from, err := icmp.RecvFrom(buf, 0)
			if err != nil {
				fmt.Printf("%2d  * (%v)\n", ttl, err)
				break
			}
			typ, quotedPort, ok := parseICMP(buf[:k], v6)
			if !ok || quotedPort != port {
				continue // not an answer to this probe
			}
			hop := from.(*socket.SockaddrInet).AddrPort.Addr()
			fmt.Printf("%2d  %s  %s\n", ttl, hop, typ)
			if hop == dst {
				return
			}
			break
		}
	}
}

// parseICMP reads an ICMP error: its kind and the destination port of
// the UDP header it quotes. A raw IPv4 socket receives the IP header
// first (its length in the low nibble of byte 0); a raw ICMPv6 socket
// receives the ICMPv6 message alone, as on Linux.
func parseICMP(b []byte, v6 bool) (kind string, port int, ok bool) {
	if !v6 {
		if len(b) < 20 || int(b[0]&0x0f)*4 > len(b) {
			return "", 0, false
		}
		b = b[int(b[0]&0x0f)*4:]
	}
	// 8 bytes of ICMP header, then the packet that caused the error: its
	// IP header (IPv4: variable, IPv6: 40 bytes) and UDP header.
	if len(b) < 8 {
		return "", 0, false
	}
	q := b[8:]
	var hl int
	switch {
	case v6 && b[0] == 3:
		kind, hl = "hop limit exceeded", 40
	case v6 && b[0] == 1 && b[1] == 4:
		kind, hl = "port unreachable", 40
	case !v6 && b[0] == 11:
		kind = "time exceeded"
	case !v6 && b[0] == 3 && b[1] == 3:
		kind = "port unreachable"
	default:
		return "", 0, false
	}
	if !v6 {
		if len(q) < 20 {
			return "", 0, false
		}
		hl = int(q[0]&0x0f) * 4
	}
	if len(q) < hl+4 {
		return "", 0, false
	}
	return kind, int(binary.BigEndian.Uint16(q[hl+2:])), true
}

// echo sends a line over TCP through the router and reads it back.
func echo(cn, sn *socket.Net, target string) {
	family, to := socket.AF_INET, socket.Inet(target, 7)
	if netip.MustParseAddr(target).Is6() {
		family, to = socket.AF_INET6, socket.Inet6(target, 7)
	}
	l := must(sn.Socket(family, socket.SOCK_STREAM, 0))
	defer l.Close()
	if err := l.Bind(to); err != nil {
		log.Fatal(err)
	}
	if err := l.Listen(1); err != nil {
		log.Fatal(err)
	}
	go func() {
		c, _, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 512)
		for {
			k, err := c.Recv(buf, 0)
			if k == 0 || err != nil {
				return
			}
			c.SendAll(buf[:k], 0)
		}
	}()
	c := must(cn.Socket(family, socket.SOCK_STREAM, 0))
	defer c.Close()
	c.SetTimeout(5 * time.Second)
	if err := c.Connect(to); err != nil {
		log.Fatal("connect: ", err)
	}
	msg := "across the router over " + map[int]string{socket.AF_INET: "IPv4", socket.AF_INET6: "IPv6"}[family]
	if err := c.SendAll([]byte(msg), 0); err != nil {
		log.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(reader{c}, got); err != nil {
		log.Fatal("recv: ", err)
	}
	fmt.Printf("tcp echo from %s: %q\n", target, got)
}

// reader lets io.ReadFull read a socket until it has the whole reply.
type reader struct{ s *socket.Socket }

func (r reader) Read(p []byte) (int, error) {
	k, err := r.s.Recv(p, 0)
	if k == 0 && err == nil {
		return 0, io.EOF
	}
	return k, err
}

func must(s *socket.Socket, err error) *socket.Socket {
	if err != nil {
		log.Fatal(err)
	}
	return s
}
