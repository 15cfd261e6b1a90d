package stack_test

import (
	"fmt"
	"net/netip"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/wire"
)

// A host with one interface and a default gateway, and the routes it
// chooses for three destinations.
func ExampleStack_FindRoute() {
	ea, eb := link.NewPipe(wire.MAC{2, 0, 0, 0, 0, 1}, wire.MAC{2, 0, 0, 0, 0, 2}, 1500)
	defer eb.Close()
	st := stack.New(stack.Options{Name: "laptop"})
	defer st.Close()
	nic := st.AddNIC("eth0", ea)
	nic.AddAddress(netip.MustParsePrefix("192.168.1.10/24"))
	st.SetDefaultGateway(netip.MustParseAddr("192.168.1.1"))

	for _, dst := range []string{"192.168.1.20", "203.0.113.7", "127.0.0.1"} {
		r, err := st.FindRoute(netip.MustParseAddr(dst))
		if err != nil {
			fmt.Println(dst, err)
			continue
		}
		fmt.Printf("%-12s via %-12v from %v on %s, local %v\n", dst, r.NextHop, r.Src, r.NIC.Name(), r.Local)
	}
	// Output:
	// 192.168.1.20 via 192.168.1.20 from 192.168.1.10 on eth0, local false
	// 203.0.113.7  via 192.168.1.1  from 192.168.1.10 on eth0, local false
	// 127.0.0.1    via 127.0.0.1    from 127.0.0.1 on lo, local true
}

// Every event the stack counts is in Stats, like `netstat -s`: here a
// datagram to a closed port, answered with ICMP port unreachable.
func ExampleStack_Stats() {
	ea, eb := link.NewPipe(wire.MAC{2, 0, 0, 0, 0, 1}, wire.MAC{2, 0, 0, 0, 0, 2}, 1500)
	a, b := stack.New(stack.Options{Name: "a"}), stack.New(stack.Options{Name: "b"})
	defer a.Close()
	defer b.Close()
	a.AddNIC("eth0", ea).AddAddress(netip.MustParsePrefix("10.0.0.1/24"))
	b.AddNIC("eth0", eb).AddAddress(netip.MustParsePrefix("10.0.0.2/24"))

	s, _ := socket.New(a).Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
	s.Connect(socket.Inet("10.0.0.2", 9)) // connected: ICMP errors are reported to it
	s.Send([]byte("anyone?"), 0)
	_, err := s.Recv(make([]byte, 10), 0) // returns when the ICMP error arrives

	fmt.Println("a:", err)
	fmt.Println("b: UDP no port", b.Stats().UDP.NoPorts.Load(), "- ICMP unreachable sent", b.Stats().ICMP.OutDestUnreachs.Load())
	fmt.Println("a: ICMP unreachable received", a.Stats().ICMP.InDestUnreachs.Load())
	// Output:
	// a: connection refused
	// b: UDP no port 1 - ICMP unreachable sent 1
	// a: ICMP unreachable received 1
}

// Two hosts joined by a switch learn each other's MAC address with ARP.
func ExampleNIC_Neighbors() {
	sw := link.NewSwitch(1500)
	a, b := stack.New(stack.Options{Name: "a"}), stack.New(stack.Options{Name: "b"})
	defer a.Close()
	defer b.Close()
	na := a.AddNIC("eth0", sw.Port(wire.MAC{2, 0, 0, 0, 0, 1}))
	na.AddAddress(netip.MustParsePrefix("10.0.0.1/24"))
	b.AddNIC("eth0", sw.Port(wire.MAC{2, 0, 0, 0, 0, 2})).AddAddress(netip.MustParsePrefix("10.0.0.2/24"))

	// Any traffic to b makes a resolve it; a ping socket's echo is enough.
	s, _ := socket.New(a).Socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
	s.SendTo([]byte{8, 0, 0, 0, 0, 0, 0, 1}, 0, socket.Inet("10.0.0.2", 0))
	s.Recv(make([]byte, 64), 0) // the echo reply: ARP is done by now

	for _, n := range na.Neighbors() {
		fmt.Println(n.Addr, n.MAC)
	}
	// Output:
	// 10.0.0.2 02:00:00:00:00:02
}
