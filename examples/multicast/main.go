// Command multicast is the multicast sender and receiver: receivers bind
// the group's port and join the group (IP_ADD_MEMBERSHIP, which makes the
// host send an IGMP report), the sender just sends to the group address
// with a TTL (IP_MULTICAST_TTL, 1 = this link only). With
// IP_MULTICAST_LOOP on (the default, as in Linux) the sender's own host
// gets a copy too; a receiver that leaves the group gets nothing more.
//
//	go run ./examples/multicast
package main

import (
	"errors"
	"fmt"
	"log"
	"net/netip"
	"syscall"
	"time"

	"github.com/sockstack/sockstack/examples/internal/vnet"
	"github.com/sockstack/sockstack/socket"
)

const port = 5007

var group = netip.MustParseAddr("224.1.1.1")

func main() {
	nw := vnet.New("sender", "r1", "r2")
	defer nw.Close()
	snd := nw.Hosts[0]

	// Receivers on r1, r2, and one on the sender's own host.
	local := receiver(snd)
	r1 := receiver(nw.Hosts[1])
	r2 := receiver(nw.Hosts[2])
	all := []*socket.Socket{local, r1, r2}
	names := []string{"sender's host", "r1", "r2"}

	s, err := snd.Net.Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
	if err != nil {
		log.Fatal(err)
	}
	// TTL 1: routers do not forward it beyond this network (the default
	// for multicast is 1 as well; set it to say so).
	s.SetSockOptInt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
	dst := socket.InetAddr(netip.AddrPortFrom(group, port))

	fmt.Println("-- send with loopback on (the default)")
	s.SendTo([]byte("hello group"), 0, dst)
	show(all, names)

	fmt.Println("-- send with IP_MULTICAST_LOOP off")
	s.SetSockOptInt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
	s.SendTo([]byte("not for my own host"), 0, dst)
	show(all, names)

	fmt.Println("-- r2 leaves the group")
	r2Joined := nw.Hosts[2].Stack.Stats().IGMP.OutV3Reports.Load()
	if err := r2.SetSockOpt(socket.IPPROTO_IP, socket.IP_DROP_MEMBERSHIP, socket.IPMreq{Multiaddr: group}); err != nil {
		log.Fatal(err)
	}
	s.SendTo([]byte("after the leave"), 0, dst)
	show(all, names)
	// IGMPv3 (the default): a join is a TO_EX record, a leave a TO_IN
	// one, each retransmitted once within a second.
	fmt.Printf("IGMPv3 report on r1's join: %v, on r2's leave: %v\n",
		nw.Hosts[1].Stack.Stats().IGMP.OutV3Reports.Load() > 0, nw.Hosts[2].Stack.Stats().IGMP.OutV3Reports.Load() > r2Joined)
}

// receiver binds the group's port and joins the group on h.
func receiver(h vnet.Host) *socket.Socket {
	r, err := h.Net.Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
	if err != nil {
		log.Fatal(err)
	}
	// Several programs on one host may listen to the same group.
	r.SetSockOptInt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
	if err := r.Bind(socket.Inet("0.0.0.0", port)); err != nil {
		log.Fatal(err)
	}
	// The interface is left unspecified: the route to the group picks it.
	if err := r.SetSockOpt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, socket.IPMreq{Multiaddr: group}); err != nil {
		log.Fatal(err)
	}
	return r
}

// show prints what each receiver got, or that nothing came within 300 ms.
func show(rs []*socket.Socket, names []string) {
	buf := make([]byte, 1500)
	for i, r := range rs {
		r.SetTimeout(300 * time.Millisecond)
		n, from, err := r.RecvFrom(buf, 0)
		switch {
		case errors.Is(err, syscall.EAGAIN):
			fmt.Printf("  %-13s: nothing\n", names[i])
		case err != nil:
			log.Fatal(err)
		default:
			fmt.Printf("  %-13s: %q from %v\n", names[i], buf[:n], from)
		}
	}
}
