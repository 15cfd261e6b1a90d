package netconn_test

import (
	"fmt"
	"io"
	"net"
	"net/netip"

	"github.com/sockstack/sockstack/netconn"
	"github.com/sockstack/sockstack/stack"
)

// ListenTransparent with a divert rule is the accept loop of a
// tun2socks-style proxy: each conn's LocalAddr is where the client
// wanted to go (docs/transparent.md).
func ExampleListenTransparent() {
	client, proxy, stop := twoHosts() // 10.0.0.1 and 10.0.0.2
	defer stop()
	diverted := netip.MustParsePrefix("198.51.100.0/24")
	cs := client.Stack()
	cs.AddRoute(stack.Route{Prefix: diverted, Gateway: netip.MustParseAddr("10.0.0.2"), NIC: cs.NICByName("eth0")})
	proxy.Stack().AddTransparentRule(stack.TransparentRule{Proto: stack.TransparentTCP, Dst: diverted, ToPort: 9000})

	l, err := netconn.ListenTransparent(proxy, "tcp4", ":9000")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "you asked for %v", c.LocalAddr())
			c.Close()
		}
	}()
	for _, dst := range []string{"198.51.100.7:443", "198.51.100.80:80"} {
		c, err := netconn.Dial(client, "tcp4", dst)
		if err != nil {
			panic(err)
		}
		b, _ := io.ReadAll(c)
		fmt.Printf("%v: %s\n", c.RemoteAddr(), b)
		c.Close()
	}
	// Output:
	// 198.51.100.7:443: you asked for 198.51.100.7:443
	// 198.51.100.80:80: you asked for 198.51.100.80:80
}

// ListenTransparentUDP, ReadMsgOrigDst and WriteFromTo: a diverted
// datagram is answered from the address it was sent to.
func ExampleListenTransparentUDP() {
	client, proxy, stop := twoHosts()
	defer stop()
	diverted := netip.MustParsePrefix("198.51.100.0/24")
	cs := client.Stack()
	cs.AddRoute(stack.Route{Prefix: diverted, Gateway: netip.MustParseAddr("10.0.0.2"), NIC: cs.NICByName("eth0")})
	proxy.Stack().AddTransparentRule(stack.TransparentRule{Proto: stack.TransparentUDP, Dst: diverted, ToPort: 9000})

	u, err := netconn.ListenTransparentUDP(proxy, "udp4", ":9000")
	if err != nil {
		panic(err)
	}
	defer u.Close()
	go func() {
		b := make([]byte, 512)
		for {
			n, src, orig, err := u.ReadMsgOrigDst(b)
			if err != nil {
				return
			}
			netconn.WriteFromTo(proxy, []byte(fmt.Sprintf("%s for %v", b[:n], orig)), orig, src)
		}
	}()
	pc, err := netconn.ListenPacket(client, "udp4", ":0")
	if err != nil {
		panic(err)
	}
	defer pc.Close()
	pc.WriteTo([]byte("query"), net.UDPAddrFromAddrPort(netip.MustParseAddrPort("198.51.100.53:53")))
	b := make([]byte, 512)
	n, from, _ := pc.ReadFrom(b)
	fmt.Printf("%s from %v\n", b[:n], from)
	// Output:
	// query for 198.51.100.53:53 from 198.51.100.53:53
}
